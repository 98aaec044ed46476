"""Framework overhead: one FCNN epoch on B-Z through stiffml vs a minimal hand-written loop.

Same model class and size (Table 1's FCNN, 456,603 parameters), same data (1e5 samples, 80 %
for training), batch 100, float64, same thread count. The hand loop batches by tensor indexing,
as stiffml does. Prints the epoch times and their ratio, measured in this one run.

    python bench/overhead.py [--repeats 3] [--threads 2] [--hidden 300 --depth 6] [--dt 1e-4]

Checkpointing is off in the stiffml run (no validation, so nothing to monitor); the progress bar
and the default callbacks (divergence stop, free-run evaluation) stay on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch

from stiffml.commands.cli import StiffCLI
from stiffml.data import BZDataModule
from stiffml.models import FCNN
from stiffml.models.base import make_adam


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (excludes validation and setup)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t0)


def stiffml_epoch(hidden: int, depth: int, dt: float, cache_dir: str | None, root: str, extra: list[str]) -> float:
    """One epoch through ``stiffml fit``'s own path: StiffCLI builds trainer, model and data."""
    args = [
        "--model=FCNN", f"--model.hidden={hidden}", f"--model.depth={depth}",
        "--data=BZDataModule", "--data.batch_size=100", f"--data.dt={dt}", "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0", "--checkpoint.every_n_epochs=0", "--last_checkpoint.every_n_epochs=0",
        f"--trainer.default_root_dir={root}",
    ] + ([f"--data.cache_dir={cache_dir}"] if cache_dir else []) + extra
    cli = StiffCLI(args=args, run=False)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    return timer.times[0]


def hand_epoch(hidden: int, depth: int, dt: float, cache_dir: str | None, device: str) -> float:
    """One epoch of a minimal PyTorch loop on the same tensors."""
    dm = BZDataModule(representation="pointwise", batch_size=100, dt=dt, cache_dir=cache_dir)
    dm.setup("fit")
    dtype = torch.float64 if device == "cpu" else torch.float32
    x_all = dm.samples.tensors["t_in"].unsqueeze(-1).to(device, dtype)
    y_all = dm.samples.tensors["y"].to(device, dtype)
    train = dm.train_idx.to(device)
    torch.manual_seed(0)
    model = FCNN(n_inputs=1, n_outputs=3, lr=1e-3, hidden=hidden, depth=depth).to(device, dtype)
    opt = make_adam(model.parameters(), 1e-3)  # the optimizer stiffml uses
    model.train()
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    perm = train[torch.randperm(len(train))]
    for i in range(len(perm) // 100):
        idx = perm[i * 100 : (i + 1) * 100]
        loss = torch.nn.functional.mse_loss(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--dt", type=float, default=1e-4, help="B-Z sampling step (1e-4: the paper's 1e5 points)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--device", default="cpu", help="cpu (float64) or cuda (float32)")
    p.add_argument("--root", default="bench/out")
    p.add_argument("cli_args", nargs="*", help="extra stiffml CLI arguments, e.g. --trainer.enable_progress_bar=false")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ours, hand = [], []
    for _ in range(a.repeats):  # interleaved, so drift in machine load hits both
        hand.append(hand_epoch(a.hidden, a.depth, a.dt, a.cache_dir, a.device))
        gpu = ["--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.precision=32-true"]
        ours.append(stiffml_epoch(a.hidden, a.depth, a.dt, a.cache_dir, a.root, a.cli_args + (gpu if a.device != "cpu" else [])))
    dtype = "float64" if a.device == "cpu" else "float32"
    samples = int(round(0.8 * (10 / a.dt + 1)))
    print(f"device={a.device} threads={torch.get_num_threads()} samples/epoch~{samples} batch=100 dtype={dtype}")
    print(f"hand loop epoch : min {min(hand):.3f}s  median {statistics.median(hand):.3f}s  all {[round(t, 3) for t in hand]}")
    print(f"stiffml epoch   : min {min(ours):.3f}s  median {statistics.median(ours):.3f}s  all {[round(t, 3) for t in ours]}")
    paired = [o / h for o, h in zip(ours, hand)]  # each repeat's two epochs ran back to back
    print(f"ratio stiffml/hand: min over repeats {min(ours) / min(hand):.3f}, "
          f"median of paired repeats {statistics.median(paired):.3f}")


if __name__ == "__main__":
    main()
