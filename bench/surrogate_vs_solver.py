"""A trained surrogate's free runs against the reference solver, over a held-out ensemble.

Loads a trained run (an ODE-Net on an ensemble datamodule), times its free run from every held-out
initial state (one batched solve, the model's own free-run settings), scores it (NMAE against the
datamodule's tight reference), then times the reference solver on the same initial states at the
loosest tolerance whose own NMAE against that reference is no worse than the surrogate's (matched
accuracy), solving each member and all of them as one stacked system; where the system has an
SBML form (ROBER's shipped example), libroadrunner's CVODE is timed the same way, one member at a
time. Members with their own rate constants (``rate_constants``) are solved with them. It prints
the times and the ratio to the fastest solver; a surrogate slower than the solver it imitates
says so.

    python bench/surrogate_vs_solver.py --ckpt RUN/checkpoints/last.ckpt [--solver Radau] [--repeats 3]
        [--free-run-solver rosenbrock23 --free-run-rtol 1e-4] [--sbml robertson]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from stiffml.commands.symbolic import load
from stiffml.evaluation.free_run import member_errors
from stiffml.evaluation.metrics import state_range
from stiffml.evaluation.rollout import RolloutSettings
from stiffml.sbml.examples import EXAMPLES


def best(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--solver", default="Radau", choices=["Radau", "BDF", "LSODA"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--members", type=int, default=None, help="use the first N held-out members (tiny runs)")
    p.add_argument("--free-run-solver", default="auto", help="the surrogate's free-run solver (--rollout.solver)")
    p.add_argument("--free-run-rtol", type=float, default=1e-6, help="its relative tolerance (--rollout.rtol)")
    p.add_argument("--sbml", default=None, help="an SBML form of the system, timed with libroadrunner's CVODE "
                   "(default: the shipped example of the system's name, if any; '' for none)")
    a = p.parse_args()
    torch.set_num_threads(1)

    model, dm = load(str(a.ckpt))
    data = dm.free_run_data()
    if a.members is not None:
        import dataclasses

        data = dataclasses.replace(data, reference=data.reference[:a.members],
                                   conditions=None if data.conditions is None else data.conditions[:a.members])
    dm.free_run_data = lambda: data  # the model's free run reads the (possibly cut) held-out set
    y0s, times, ref = data.initial_states(), data.times, data.reference
    span = state_range(ref)
    print(f"{type(model).__name__} on {type(dm).__name__}: {len(y0s)} held-out members, {len(times)} output times "
          f"from {times[0]:g} to {times[-1]:g}")

    settings = RolloutSettings(solver=a.free_run_solver, rtol=a.free_run_rtol)
    surrogate_s, run = best(lambda: model.free_run(dm, settings), a.repeats)
    keep = slice(len(times) - run["pred"].shape[1], None)  # scored as the model scores it (without t0)
    errors = member_errors(run["pred"], ref[:, keep], span)
    target = float(np.median(errors))
    print(f"surrogate ({a.free_run_solver}, rtol {a.free_run_rtol:g}): {surrogate_s:.3f} s for all members (batched), NMAE median {target:.2e}, worst {errors.max():.2e}")

    members = None
    if getattr(dm, "member_parameters", None) is not None and dm.member_parameters() is not None:
        names = dm.parameter_distribution.names  # every member with its own rate constants
        rows = dm.member_parameters()[dm.val_trajectories][:len(y0s)]
        members = [dict(zip(names, map(float, r))) for r in rows]
    system = dm.system
    solvers = [(a.solver, scipy_solves(system, y0s, times, members, a.solver))]
    sbml = a.sbml if a.sbml is not None else (system.name if system.name in EXAMPLES else "")
    if sbml:  # the SBML form of the same model, solved by libroadrunner's CVODE
        from stiffml.sbml import SBMLSystem

        form = SBMLSystem(sbml)
        if tuple(form.state_names) != tuple(system.state_names):
            raise SystemExit(f"SBML model {sbml!r} has states {form.state_names}, not {system.state_names}")
        solvers.append(("CVODE (libroadrunner)", cvode_solves(form, y0s, times, members)))
    fastest_name, fastest = None, np.inf
    for name, (stacked, each) in solvers:
        chosen = None
        for rtol in (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6, 1e-7, 1e-8):
            y = each(rtol)
            err = float(np.median(member_errors(y[:, keep], ref[:, keep], span)))
            if err <= target:
                chosen = (rtol, err)
                break
        if chosen is None:
            print(f"{name} did not reach the surrogate's accuracy at rtol down to 1e-8")
            continue
        rtol, err = chosen
        each_s, _ = best(lambda: each(rtol), a.repeats)
        line = f"{name} at rtol {rtol:g} (NMAE median {err:.2e}, matched): {each_s:.3f} s one member at a time"
        took = each_s
        if stacked is not None:
            stacked_s, _ = best(lambda: stacked(rtol), a.repeats)
            line += f", {stacked_s:.3f} s stacked"
            took = min(took, stacked_s)
        print(line)
        if took < fastest:
            fastest_name, fastest = name, took
    if fastest_name is None:
        return
    verdict = "faster" if surrogate_s < fastest else "SLOWER"
    print(f"surrogate / solver time: {surrogate_s / fastest:.2f} (the surrogate is {verdict} than {fastest_name}, "
          "the fastest solver at matched accuracy)")


def scipy_solves(system, y0s, times, members, method):
    """(stacked, one at a time) solves at a tolerance, each member with its own rate constants."""
    def stacked(rtol):
        return system.solve_ensemble(y0s, times, rtol=rtol, atol=rtol * 1e-6, method=method, params=members)

    def each(rtol):
        return np.concatenate([system.solve_ensemble(y[None], times, rtol=rtol, atol=rtol * 1e-6, method=method,
                                                     params=None if members is None else [members[i]])
                               for i, y in enumerate(y0s)])
    return stacked, each


def cvode_solves(form, y0s, times, members):
    """CVODE one member at a time (libroadrunner integrates one model instance per call)."""
    systems = [form if members is None else form.with_params(**p) for p in (members or [None] * len(y0s))]

    def each(rtol):
        return np.stack([sys.solve(times, rtol=rtol, atol=rtol * 1e-6, method="CVODE", y0=y, t0=times[0]).y
                         for sys, y in zip(systems, y0s)])
    return None, each

if __name__ == "__main__":
    main()
