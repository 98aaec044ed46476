"""The shipped SBML examples: compile time, reference solve times (roadrunner's CVODE against
scipy's Radau on the generated math), their agreement, the B-Z example against the built-in
system, and stiffness ratios along each reference. All figures come from this one run.

Usage: ``python bench/sbml_examples.py [--every 1]`` (``--every K`` keeps every K-th grid point).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from stiffml.sbml import EXAMPLES, SBMLSystem
from stiffml.sbml import system as sbml_system
from stiffml.systems import get_system


def range_error(a: np.ndarray, b: np.ndarray) -> float:
    span = np.ptp(b, axis=0)
    return float(np.max(np.abs(a - b).max(axis=0) / np.where(span > 0, span, 1.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="keep every K-th point of each example's grid")
    args = parser.parse_args()
    print(f"{'model':<14} {'n':>2} {'points':>7} {'compile s':>9} {'CVODE s':>8} {'Radau s':>8} "
          f"{'Radau vs CVODE':>15} {'max stiffness':>14}")
    for name, example in EXAMPLES.items():
        sbml_system._COMPILED.clear()  # time the compile, not the per-process cache
        t0 = time.perf_counter()
        s = SBMLSystem(name)
        t1 = time.perf_counter()
        grid = s.default_grid()[:: args.every]
        cvode = s.solve(grid)
        t2 = time.perf_counter()
        radau = s.solve(grid, method="Radau")
        t3 = time.perf_counter()
        stiff = max(s.stiffness_ratio(y) for y in cvode.y[:: max(1, len(grid) // 200)])
        print(f"{name:<14} {s.n:>2} {len(grid):>7} {t1 - t0:>9.2f} {t2 - t1:>8.2f} {t3 - t2:>8.2f} "
              f"{range_error(radau.y, cvode.y):>15.2e} {stiff:>14.3g}")
    bz, sbml = get_system("bz"), SBMLSystem("bz")
    grid = sbml.default_grid()[:: args.every]
    ref = bz.solve(grid, rtol=1e-12, atol=1e-14)
    for method in ("CVODE", "Radau"):
        err = range_error(sbml.solve(grid, rtol=1e-12, atol=1e-14, method=method).y, ref.y)
        print(f"bz example ({method}, rtol 1e-12) vs built-in bz (Radau, rtol 1e-12): max error / range {err:.2e}")


if __name__ == "__main__":
    main()
