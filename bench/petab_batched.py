"""One joint solve of K starts against K solves of one start: the nllh and gradient at K
Latin-hypercube points of each PEtab problem in a folder, both ways, in one run.

    python bench/petab_batched.py ../shared/petab-benchmark [--starts 20] [--skip Zheng_PNAS2012]

Starts whose solve fails count in both timings (the joint solve then falls back to solving each
start alone). Prints the wall times, their ratio and the largest relative difference of the values.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from stiffml.petab import Problem
from stiffml.petab.optimize import latin_hypercube
from stiffml.petab.problem import problems_in
from stiffml.systems.base import SolveError


def one_at_a_time(problem: Problem, points: np.ndarray) -> np.ndarray:
    values = []
    for x in points:
        try:
            values.append(problem.value_and_gradient(x)[0])
        except SolveError:
            values.append(np.inf)
    return np.array(values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], help="problem names to leave out")
    a = p.parse_args()
    paths = [q for q in problems_in(a.folder) if q.stem not in a.skip]
    if not paths:
        raise SystemExit(f"no PEtab problem YAML files under {a.folder}")
    print(f"{'problem':<32} {'K':>3} {'failed':>6} {'one by one s':>12} {'joint s':>8} {'ratio':>6} {'max rel diff':>12}")
    for path in paths:
        problem = Problem(path)
        points = latin_hypercube(problem, a.starts, a.seed)
        start = time.perf_counter()
        single = one_at_a_time(problem, points)
        t_single = time.perf_counter() - start
        start = time.perf_counter()
        joint, _ = problem.values_and_gradients(points)
        t_joint = time.perf_counter() - start
        ok = np.isfinite(single) & np.isfinite(joint)
        diff = np.max(np.abs(joint[ok] - single[ok]) / np.abs(single[ok]), initial=0.0)
        print(f"{path.stem[:32]:<32} {a.starts:>3} {int((~np.isfinite(joint)).sum()):>6} {t_single:>12.2f} "
              f"{t_joint:>8.2f} {t_single / t_joint:>6.2f} {diff:>12.2e}")


if __name__ == "__main__":
    main()
