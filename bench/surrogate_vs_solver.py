"""A trained surrogate's free runs against the reference solver, over a held-out ensemble.

Loads a trained run (an ODE-Net on an ensemble datamodule), times its free run from every held-out
initial state (one batched solve, the model's own free-run settings), scores it (NMAE against the
datamodule's tight reference), then times the reference solver on the same initial states at the
loosest tolerance whose own NMAE against that reference is no worse than the surrogate's (matched
accuracy), solving each member and all of them as one stacked system. It prints the times and
their ratio; a surrogate slower than the solver it imitates says so.

    python bench/surrogate_vs_solver.py --ckpt RUN/checkpoints/last.ckpt [--solver Radau] [--repeats 3]
        [--free-run-solver rosenbrock23 --free-run-rtol 1e-4]
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
    a = p.parse_args()
    torch.set_num_threads(1)

    model, dm = load(str(a.ckpt))
    data = dm.free_run_data()
    if a.members is not None:
        import dataclasses

        data = dataclasses.replace(data, reference=data.reference[:a.members])
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

    system = dm.system
    chosen = None
    for rtol in (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6, 1e-7, 1e-8):
        y = system.solve_ensemble(y0s, times, rtol=rtol, atol=rtol * 1e-6, method=a.solver)
        err = float(np.median(member_errors(y[:, keep], ref[:, keep], span)))
        if err <= target:
            chosen = (rtol, err)
            break
    if chosen is None:
        print(f"{a.solver} did not reach the surrogate's accuracy at rtol down to 1e-8")
        return
    rtol, err = chosen
    stacked_s, _ = best(lambda: system.solve_ensemble(y0s, times, rtol=rtol, atol=rtol * 1e-6, method=a.solver), a.repeats)
    each_s, _ = best(lambda: [system.solve_ensemble(y[None], times, rtol=rtol, atol=rtol * 1e-6, method=a.solver)
                              for y in y0s], a.repeats)
    print(f"{a.solver} at rtol {rtol:g} (NMAE median {err:.2e}, matched): {stacked_s:.3f} s stacked, "
          f"{each_s:.3f} s one member at a time")
    fastest = min(stacked_s, each_s)
    verdict = "faster" if surrogate_s < fastest else "SLOWER"
    print(f"surrogate / solver time: {surrogate_s / fastest:.2f} (the surrogate is {verdict} than {a.solver} at matched "
          "accuracy)")


if __name__ == "__main__":
    main()
