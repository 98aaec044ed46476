"""Score stiffml on PEtab test cases: ``stiffml petab-suite FOLDER``.

A case is a folder named by digits (``0001/``) holding a PEtab problem (``_0001.yaml`` and its
tables) and ``_0001_solution.yaml`` with the expected ``llh``, ``chi2`` and simulation table and
their tolerances (``tol_llh``, ``tol_chi2``, ``tol_simulations``), as in the official PEtab test
suite (the ``petabtests`` package's ``cases/v1.0.0/sbml``). A case passes when
``|llh − expected| < tol_llh``, ``|chi2 − expected| < tol_chi2`` and the mean absolute difference of
the simulation tables (rows matched by observable, conditions and time) is below
``tol_simulations``, the suite's own criteria. A problem stiffml refuses by name counts as
unsupported, with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from stiffml.petab.problem import PEtabError, PEtabUnsupported, Problem
from stiffml.sbml.suite import Outcome, score  # one result type and summary for both suites


def _sorted_simulations(df) -> np.ndarray:
    keys = [c for c in ("observableId", "preequilibrationConditionId", "simulationConditionId") if c in df]
    table = df.copy()
    for c in keys:
        table[c] = table[c].fillna("").astype(str)
    table["time"] = table["time"].astype(float)
    return table.sort_values([*keys, "time", "simulation"])["simulation"].to_numpy(dtype=float)


def run_case(folder: Path) -> Outcome:
    """Evaluate one case against its solution file."""
    import pandas as pd
    import yaml

    name = folder.name
    solution_path = folder / f"_{name}_solution.yaml"
    problem_path = folder / f"_{name}.yaml"
    if not solution_path.is_file() or not problem_path.is_file():
        return Outcome(name, "failed", f"incomplete case: needs _{name}.yaml and _{name}_solution.yaml")
    try:
        solution = yaml.safe_load(solution_path.read_text())
        problem = Problem(problem_path)
        llh, chi2 = -problem.nllh(), problem.chi2()
        simulated = problem.simulate()
    except PEtabUnsupported as err:
        return Outcome(name, "unsupported", str(err))
    except Exception as err:  # a case that cannot run is a failure with its reason, not a crash
        kind = "" if isinstance(err, PEtabError) else f"{type(err).__name__}: "
        return Outcome(name, "failed", f"{kind}{' '.join(str(err).split())}")
    problems = []
    if abs(llh - solution["llh"]) >= solution.get("tol_llh", 1e-3):
        problems.append(f"llh {llh:.10g}, expected {solution['llh']:.10g}")
    if abs(chi2 - solution["chi2"]) >= solution.get("tol_chi2", 1e-3):
        problems.append(f"chi2 {chi2:.10g}, expected {solution['chi2']:.10g}")
    for sim_file in solution.get("simulation_files") or []:
        expected = pd.read_csv(folder / sim_file, sep="\t")
        a, b = _sorted_simulations(simulated), _sorted_simulations(expected)
        if a.shape != b.shape:
            problems.append(f"{a.size} simulated rows, {b.size} expected")
            continue
        distance = float(np.abs(a - b).sum() / max(a.size, 1))
        if not distance < solution.get("tol_simulations", 1e-3):
            problems.append(f"simulations off by {distance:.3g} on average")
    return Outcome(name, "failed", "; ".join(problems)) if problems else Outcome(name, "passed")


def find_cases(folder: Path) -> list[Path]:
    """Case folders (names of digits) under ``folder``."""
    if not folder.is_dir():
        raise PEtabError(f"suite folder '{folder}' not found")
    cases = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if not cases:
        raise PEtabError(f"no test cases (folders named by number) in '{folder}'")
    return cases


def main(argv: list[str] | None = None) -> int:
    """``stiffml petab-suite FOLDER``: exit 0 when no case failed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="stiffml petab-suite", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of case folders (e.g. petabtests' cases/v1.0.0/sbml)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    return score(find_cases(args.folder), run_case, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
