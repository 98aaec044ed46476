"""Score stiffml on PEtab test cases: ``stiffml petab-suite FOLDER``.

A case is a folder named by digits (``0001/``) holding a PEtab problem (``_0001.yaml`` and its
tables) and ``_0001_solution.yaml`` with the expected ``llh``, ``chi2`` and simulation table and
their tolerances (``tol_llh``, ``tol_chi2``, ``tol_simulations``), as in the official PEtab test
suite (the ``petabtests`` package's ``cases/v1.0.0/sbml``). A case passes when
``|llh − expected| < tol_llh``, ``|chi2 − expected| < tol_chi2`` and the mean absolute difference of
the simulation tables (rows matched by observable, conditions and time) is below
``tol_simulations``, the suite's own criteria. A problem stiffml refuses by name counts as
unsupported, with the reason.

PEtab SciML cases (the layout of the PEtab SciML test suite: ``petab/problem.yaml``,
``solutions.yaml`` with ``llh``, ``tol_llh``, ``tol_simulations``, ``tol_grad_llh``, the simulation
table and the expected gradients — ``grad`` inline or ``grad_files``: a TSV for the mechanistic
parameters and an HDF5 file per network) also pass on their gradients: every entry within
``tol_grad_llh`` (absolute, and relative to the entry's size).
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


def _expected_gradient(folder: Path, solution: dict) -> dict:
    import pandas as pd

    if "grad" in solution:
        return solution["grad"]
    out: dict = {}
    for key, file in (solution.get("grad_files") or {}).items():
        path = folder / file
        if path.suffix == ".tsv":
            table = pd.read_csv(path, sep="\t")
            out.update(dict(zip(table.iloc[:, 0].astype(str), table.iloc[:, 1].astype(float))))
        else:
            from stiffml.hybrid.network_file import read_arrays

            params = read_arrays(path)["parameters"]
            nets = params if key not in params else {key: params[key]}
            for net_id, layers in nets.items():
                out[net_id] = {f"{layer}.{name}": value for layer, arrays in layers.items()
                               for name, value in arrays.items()}
    return out


def _gradient_problems(got: dict, want: dict, tol: float) -> list[str]:
    problems = []
    for key, value in want.items():
        if isinstance(value, dict):
            for name, arr in value.items():
                mine = np.asarray(got.get(key, {}).get(name, np.nan), dtype=float)
                arr = np.asarray(arr, dtype=float)
                if mine.shape != arr.shape or not np.all(np.abs(mine - arr) <= tol * (1 + np.abs(arr))):
                    problems.append(f"gradient of {key}.{name} differs")
        elif not abs(float(got.get(key, np.nan)) - float(value)) <= tol * (1 + abs(float(value))):
            problems.append(f"gradient of {key}: {got.get(key)} expected {value}")
    return problems


def run_sciml_case(folder: Path) -> Outcome:
    """Evaluate one PEtab SciML case: llh, simulations and gradients."""
    import pandas as pd
    import yaml

    name = folder.name
    try:
        solution = yaml.safe_load((folder / "solutions.yaml").read_text())
        problem = Problem(folder / "petab" / "problem.yaml")
        # with priors, the suite's objective is the log-posterior (its "llh") and its gradient
        posterior = bool(getattr(problem, "has_priors", False))
        llh = -(problem.objective() if posterior else problem.nllh())
        simulated = problem.simulate()
        gradient = problem.gradient(prior=True) if posterior else problem.gradient()
    except PEtabUnsupported as err:
        return Outcome(name, "unsupported", str(err))
    except Exception as err:
        return Outcome(name, "failed", f"{type(err).__name__}: {' '.join(str(err).split())}")
    problems = []
    if abs(llh - solution["llh"]) >= solution.get("tol_llh", 1e-3):
        problems.append(f"llh {llh:.10g}, expected {solution['llh']:.10g}")
    for sim_file in solution.get("simulation_files") or ["simulations.tsv"]:
        if not (folder / sim_file).is_file():
            continue
        expected = pd.read_csv(folder / sim_file, sep="\t")
        keys = ["observableId", "experimentId", "time"]
        merged = expected.merge(simulated, on=keys, suffixes=("_expected", ""))
        if len(merged) != len(expected):
            problems.append(f"{len(simulated)} simulated rows, {len(expected)} expected")
            continue
        distance = float(np.abs(merged["simulation"] - merged["simulation_expected"]).mean())
        if not distance < solution.get("tol_simulations", 1e-3):
            problems.append(f"simulations off by {distance:.3g} on average")
    problems += _gradient_problems(gradient, _expected_gradient(folder, solution), solution.get("tol_grad_llh", 1e-3))
    return Outcome(name, "failed", "; ".join(problems)) if problems else Outcome(name, "passed")


def run_case(folder: Path) -> Outcome:
    """Evaluate one case against its solution file."""
    import pandas as pd
    import yaml

    name = folder.name
    if (folder / "solutions.yaml").is_file():
        return run_sciml_case(folder)
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
    """Case folders (names of digits, or SciML cases with ``solutions.yaml``) under ``folder``."""
    if not folder.is_dir():
        raise PEtabError(f"suite folder '{folder}' not found")
    cases = sorted(p for p in folder.iterdir() if p.is_dir() and (p.name.isdigit() or (p / "solutions.yaml").is_file()))
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
