"""ODE-Net on ROBER: stiff-aware scaling and loss on/off, and Rosenbrock23 vs dopri5 on the learned field.

1. Trains ODENet in derivative mode on ROBER (log-time grid 1e-5 … 1e5 s, z-scored states, full
   batch: Adam, then L-BFGS via the SwitchToLBFGS callback) through ``stiffml fit``'s own path, in
   three variants: stiff-aware output scaling with the ``scaled`` loss, no scaling, and scaling
   with the ``relative`` loss. For each: the held-out derivative error and the free run of the
   learned field (scipy Radau) over all ten decades, overall and per decade.
2. Integrates the best learned field from the initial state to one output per decade with the
   differentiable Rosenbrock23 and with torchdiffeq's dopri5: steps, field evaluations, time and
   error against the reference at those times (dopri5 under a step budget per output interval).

    python bench/robertson.py [--adam-epochs 300] [--epochs 1000] [--max-steps 20000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from stiffml.training.callbacks import SwitchToLBFGS
from stiffml.commands.cli import StiffCLI
from stiffml.evaluation.metrics import rel_l2
from stiffml.solvers import StepBudgetExceeded, integrate

VARIANTS = {  # name: (scale_output, derivative_loss)
    "scaled output, scaled loss (default)": (True, "scaled"),
    "no output scaling, scaled loss": (False, "scaled"),
    "scaled output, relative loss": (True, "relative"),
}


def train(scale: bool, loss: str, adam_epochs: int, epochs: int, root: str):
    cli = StiffCLI(args=[
        "--config", "configs/robertson_odenet.yaml", "--model.mode", "derivative", "--model.lr", "1.0e-3",
        f"--model.scale_output={str(scale).lower()}", f"--model.derivative_loss={loss}",
        "--data.batch_size=100000", f"--trainer.max_epochs={epochs}", "--trainer.check_val_every_n_epoch=50",
        f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ], run=False)
    cli.trainer.callbacks.append(SwitchToLBFGS(epoch=adam_epochs, max_iter=20))
    t0 = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    seconds = time.perf_counter() - t0
    cli.trainer.validate(cli.model, cli.datamodule, verbose=False)
    m = cli.trainer.callback_metrics
    return cli, seconds, float(m["val_rel_l2"]), float(m.get("val_rollout_rel_l2", float("nan")))


def per_decade(cli) -> str:
    """Relative L2 of the Radau free run over each decade of time."""
    run = cli.model.free_run(cli.datamodule)
    t, pred, ref = run["t"], run["pred"], run["reference"]
    parts = []
    for lo in range(-5, 5):
        sel = (t > 10.0**lo) & (t <= 10.0 ** (lo + 1))
        parts.append(f"1e{lo}:{rel_l2(pred[sel], ref[sel]):.2g}")
    return " ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adam-epochs", type=int, default=300)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--root", default="bench/out/robertson")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    results = {}
    for name, (scale, loss) in VARIANTS.items():
        cli, seconds, d_err, run_err = train(scale, loss, a.adam_epochs, a.epochs, f"{a.root}/{scale}_{loss}")
        results[name] = (run_err, cli)
        print(f"{name}: fit {seconds:.1f} s, held-out derivative rel. L2 {d_err:.3g}, free run (Radau) "
              f"rel. L2 {run_err:.3g}; per decade {per_decade(cli)}", flush=True)
    best = min(results, key=lambda k: results[k][0] if np.isfinite(results[k][0]) else np.inf)
    model, dm = results[best][1].model, results[best][1].datamodule
    print(f"solvers on the field learned with '{best}', one output per decade:")
    times = np.concatenate([[0.0], 10.0 ** np.arange(-5, 6)])
    ref = dm.system.solve(times[1:], rtol=1e-12, atol=1e-16).y
    z0 = torch.as_tensor(dm.target_scaler.transform(dm.reference[:1]), dtype=torch.float64)
    t = torch.as_tensor(times, dtype=torch.float64)
    for method in ("rosenbrock23", "dopri5"):
        stats: dict = {}
        start = time.perf_counter()
        try:
            with torch.no_grad() if method == "dopri5" else torch.enable_grad():
                z = integrate(model.field, z0, t, method=method, rtol=1e-6, atol=1e-9,
                              max_steps=a.max_steps, stats=stats)
            pred = dm.target_scaler.inverse(z[1:, 0].detach().numpy())
            outcome = f"rel. L2 {rel_l2(pred, ref):.3g}"
        except StepBudgetExceeded as exc:
            outcome = f"failed: {exc}"
        print(f"  {method}: {time.perf_counter() - start:.1f} s, stats {stats}, {outcome}", flush=True)


if __name__ == "__main__":
    main()
