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
``tol_grad_llh`` (absolute, and relative to the entry's size). The suite's two other kinds read
too: network-import cases (``solutions.yaml`` naming ``net_file``, ``net_input``, ``net_ps``,
``net_output``) and initialization cases (``parameter_files``: the networks' expected values).
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
                arr = np.asarray(arr, dtype=float)
                if arr.size == 0:  # an empty array marks a frozen one: it has no gradient
                    continue
                mine = np.asarray(got.get(key, {}).get(name, np.nan), dtype=float)
                if mine.shape != arr.shape or not np.all(np.abs(mine - arr) <= tol * (1 + np.abs(arr))):
                    problems.append(f"gradient of {key}.{name} differs")
        elif not abs(float(got.get(key, np.nan)) - float(value)) <= tol * (1 + abs(float(value))):
            problems.append(f"gradient of {key}: {got.get(key)} expected {value}")
    return problems


def run_sciml_case(folder: Path) -> Outcome:
    """Evaluate one PEtab SciML case: llh, simulations and gradients."""
    import pandas as pd
    import yaml

    name = _sciml_name(folder)
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


def _h5_data(path: Path, group: str) -> np.ndarray:
    """``/<group>/<first entry>/data`` of a test-suite input or output file (PyTorch's layout)."""
    import h5py

    with h5py.File(path, "r") as f:
        (entry,) = list(f[group].values())[:1]
        return np.asarray(entry["data"], dtype=np.float64)


def _sciml_name(folder: Path) -> str:
    """``ml_model_import/001`` for the suite's numbered folders, else the folder's name."""
    return f"{folder.parent.name}/{folder.name}" if folder.name.isdigit() else folder.name


def run_ml_import_case(folder: Path, solution: dict) -> Outcome:
    """A network-import case of the PEtab SciML suite: the network file read, its parameters
    loaded from ``net_ps_<i>.hdf5``, the output of ``net_input_<i>.hdf5`` equal to
    ``net_output_<i>.hdf5`` within 1e-3 absolute (the suite's tolerance), the module in training
    mode as in the suite's reference; with ``dropout: N``, the mean of N forward passes."""
    import torch

    from stiffml.hybrid.network_file import load_parameters, read_arrays, read_network

    name = _sciml_name(folder)
    try:
        net = read_network(folder / solution["net_file"])
        module = net.module.double().train()
        inputs = solution.get("net_input")
        args = [inputs] if inputs else [solution[k] for k in sorted(solution) if k.startswith("net_input_arg")]
        outputs = solution.get("net_output")
        outs = [outputs] if outputs else [solution[k] for k in sorted(solution) if k.startswith("net_output_arg")]
        problems = []
        for i in range(len(args[0])):
            if solution.get("net_ps"):
                stored = read_arrays(folder / solution["net_ps"][i])["parameters"]
                load_parameters(net, stored.get(net.net_id) or next(iter(stored.values()), {}), str(folder))
            x = [torch.as_tensor(_h5_data(folder / a[i], "inputs")) for a in args]
            want = [_h5_data(folder / o[i], "outputs") for o in outs]
            passes = int(solution.get("dropout") or 1)
            with torch.no_grad():
                got = module(*x)
                got = list(got) if isinstance(got, (tuple, list)) else [got]
                if passes > 1:
                    for _ in range(passes - 1):
                        more = module(*x)
                        for j, m in enumerate(more if isinstance(more, (tuple, list)) else [more]):
                            got[j] = got[j] + m
                    got = [g / passes for g in got]
            for j, (g, w) in enumerate(zip(got, want)):
                g = g.numpy()
                if g.shape != w.shape:
                    problems.append(f"input {i + 1}: output {j} has shape {g.shape}, expected {w.shape}")
                elif not np.all(np.abs(g - w) <= 1e-3):
                    problems.append(f"input {i + 1}: output {j} off by {np.max(np.abs(g - w)):.3g}")
    except PEtabUnsupported as err:
        return Outcome(name, "unsupported", str(err))
    except Exception as err:
        return Outcome(name, "failed", f"{type(err).__name__}: {' '.join(str(err).split())}")
    return Outcome(name, "failed", "; ".join(problems)) if problems else Outcome(name, "passed")


def run_initialization_case(folder: Path, solution: dict) -> Outcome:
    """An initialization case of the PEtab SciML suite: the networks of the problem, at nominal
    values, equal the reference parameter files within ``tol``."""
    from stiffml.hybrid.network_file import read_arrays

    name = _sciml_name(folder)
    tol = float(solution.get("tol", 1e-3))
    try:
        problem = Problem(folder / "petab" / "problem.yaml")
        problems = []
        for net_id, file in (solution.get("parameter_files") or {}).items():
            reference = read_arrays(folder / file)["parameters"].get(net_id, {})
            state = problem.networks[net_id].state_dict()
            for layer, arrays in reference.items():
                for array, want in arrays.items():
                    got = state.get(f"{layer}.{array}")
                    if want.size == 0:
                        continue
                    if got is None or tuple(got.shape) != want.shape:
                        problems.append(f"{net_id}.{layer}.{array}: missing or of another shape")
                    elif not np.all(np.abs(got.detach().numpy() - want) <= tol):
                        problems.append(f"{net_id}.{layer}.{array} differs by "
                                        f"{np.max(np.abs(got.detach().numpy() - want)):.3g}")
    except PEtabUnsupported as err:
        return Outcome(name, "unsupported", str(err))
    except Exception as err:
        return Outcome(name, "failed", f"{type(err).__name__}: {' '.join(str(err).split())}")
    return Outcome(name, "failed", "; ".join(problems)) if problems else Outcome(name, "passed")


def run_case(folder: Path) -> Outcome:
    """Evaluate one case against its solution file."""
    import pandas as pd
    import yaml

    name = folder.name
    if (folder / "solutions.yaml").is_file():
        solution = yaml.safe_load((folder / "solutions.yaml").read_text()) or {}
        if "net_file" in solution:
            return run_ml_import_case(folder, solution)
        if "parameter_files" in solution and "llh" not in solution:
            return run_initialization_case(folder, solution)
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
    if not cases:  # the PEtab SciML suite's test_cases/: one folder per kind of case
        cases = sorted(p.parent for p in folder.glob("*/*/solutions.yaml"))
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
