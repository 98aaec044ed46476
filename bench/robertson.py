"""ODE-Net on ROBER: stiff-aware scaling on/off, and Rosenbrock23 vs dopri5 on the learned field.

1. Trains ODENet in derivative mode on ROBER (log-time grid 1e-5 … 1e5 s, z-scored states) with
   and without ``scale_output``, through ``stiffml fit``'s own path, and reports the held-out
   derivative error and the free run of the learned field (scipy Radau) over all decades.
2. Integrates the field learned with scaling over the same grid with the differentiable
   Rosenbrock23 and with torchdiffeq's dopri5: steps, time and error against the reference.

    python bench/robertson.py [--epochs 30] [--max-steps 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stiffml.cli import StiffCLI
from stiffml.metrics import rel_l2
from stiffml.solvers import StepBudgetExceeded, integrate


def train(scale: bool, epochs: int, root: str):
    cli = StiffCLI(args=[
        "--config", "configs/robertson_odenet.yaml", "--model.mode", "derivative", "--model.lr", "1.0e-3",
        f"--model.scale_output={str(scale).lower()}", f"--trainer.max_epochs={epochs}",
        f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ], run=False)
    t0 = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    seconds = time.perf_counter() - t0
    m = cli.trainer.callback_metrics
    return cli, seconds, float(m["val_rel_l2"]), float(m.get("val_rollout_rel_l2", float("nan")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--root", default="bench/out/robertson")
    a = p.parse_args()
    torch.set_num_threads(2)
    results = {}
    for scale in (True, False):
        cli, seconds, d_err, run_err = train(scale, a.epochs, f"{a.root}/scale_{scale}")
        results[scale] = cli
        print(f"scale_output={scale}: fit {seconds:.1f} s, held-out derivative rel. L2 {d_err:.3g}, "
              f"free run (Radau) rel. L2 {run_err:.3g}")
    cli = results[True]
    model, dm = cli.model, cli.datamodule
    z0 = torch.as_tensor(dm.target_scaler.transform(dm.reference[:1]), dtype=torch.float64)
    t = torch.as_tensor(dm.times, dtype=torch.float64)
    for method in ("rosenbrock23", "dopri5"):
        stats: dict = {}
        start = time.perf_counter()
        try:
            with torch.no_grad() if method == "dopri5" else torch.enable_grad():
                z = integrate(model.field, z0, t, method=method, rtol=1e-6, atol=1e-9,
                              max_steps=a.max_steps, stats=stats)
            pred = dm.target_scaler.inverse(z[:, 0].detach().numpy())
            err = rel_l2(pred, dm.reference)
            outcome = f"rel. L2 {err:.3g}"
        except StepBudgetExceeded as exc:
            outcome = f"failed: {exc}"
        print(f"{method}: {time.perf_counter() - start:.1f} s, stats {stats}, {outcome}")


if __name__ == "__main__":
    main()
