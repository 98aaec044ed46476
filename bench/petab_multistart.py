"""Multistart local optimisation of a PEtab problem: wall time, and how many starts reach the best optimum.

    python bench/petab_multistart.py ../shared/petab-benchmark/Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml \
        [--starts 20] [--seed 0] [--method fides|L-BFGS-B] [--target 138.222] [--within 0.01]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stiffml.petab import Problem
from stiffml.petab.optimize import METHODS, latin_hypercube, local_fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("problem", type=Path)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iterations", type=int, default=500)
    p.add_argument("--method", choices=METHODS, default="fides")
    p.add_argument("--target", type=float, default=None, help="published optimum (nllh)")
    p.add_argument("--within", type=float, default=0.01)
    a = p.parse_args()
    began = time.perf_counter()
    problem = Problem(a.problem)
    results = []
    for k, x0 in enumerate(latin_hypercube(problem, a.starts, a.seed)):
        r = local_fit(problem, x0, a.max_iterations, a.method)
        results.append(r)
        print(f"start {k:>3}: nllh {r.nllh:14.6f}  {r.evaluations:>4} evaluations  {r.seconds:6.1f} s  {r.message[:40]}",
              flush=True)
    total = time.perf_counter() - began
    best = min(r.nllh for r in results)
    target = a.target if a.target is not None else best
    hits = sum(abs(r.nllh - target) <= a.within for r in results)
    print(f"best nllh {best:.6f}; {hits} of {a.starts} starts within {a.within} of {target}; "
          f"wall {total:.1f} s (loading included)")


if __name__ == "__main__":
    main()
