"""Time one negative log-likelihood and one gradient at the nominal parameters for every PEtab
problem in a folder (each problem's own subfolder holding its YAML), best of ``--repeats``.

    python bench/petab_nllh.py ../shared/petab-benchmark [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stiffml.petab import Problem
from stiffml.petab.problem import problems_in


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    paths = problems_in(a.folder)
    if not paths:
        raise SystemExit(f"no PEtab problem YAML files under {a.folder}")
    print(f"{'problem':<32} {'params':>6} {'states':>6} {'exps':>4} {'nllh':>14} {'nllh s':>8} {'grad s':>8} {'ratio':>6}")
    for path in paths:
        problem = Problem(path)
        value = problem.nllh()
        t_nllh = best(problem.nllh, a.repeats)
        t_grad = best(problem.value_and_gradient, a.repeats)
        print(f"{path.stem[:32]:<32} {len(problem.parameter_ids):>6} {problem.model.n:>6} "
              f"{len(problem.experiments):>4} {value:>14.6f} {t_nllh:>8.3f} {t_grad:>8.3f} {t_grad / t_nllh:>6.2f}")


if __name__ == "__main__":
    main()
