"""Training throughput of a config through ``stiffml fit``'s own path (any device/precision).

Trains ``--epochs`` epochs (validation off) and prints the last epoch's wall time, steps/s and
samples/s, so the first epoch's warm-up is excluded. Extra arguments go to the CLI, e.g.

    python bench/throughput.py --config configs/bz_fcnn.yaml --config configs/trainer/gpu_bf16.yaml
"""

from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl

from stiffml.commands.cli import StiffCLI


class EpochTimer(pl.Callback):
    """Wall time and steps of each training epoch."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, int]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._s0 = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append((time.perf_counter() - self._t0, trainer.global_step - self._s0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--root", default="bench/out")
    a, extra = p.parse_known_args()
    args = [*extra, f"--trainer.max_epochs={a.epochs}", "--trainer.limit_val_batches=0",
            "--checkpoint.every_n_epochs=0", "--last_checkpoint.every_n_epochs=0", f"--trainer.default_root_dir={a.root}", "--trainer.enable_progress_bar=false"]
    cli = StiffCLI(args=args, run=False)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    seconds, steps = timer.epochs[-1]
    batch = cli.datamodule.hparams.batch_size
    print(f"{type(cli.model).__name__} on {cli.trainer.strategy.root_device} precision={cli.trainer.precision}: "
          f"epoch {seconds:.2f} s, {steps / seconds:.0f} steps/s, {steps * batch / seconds:.0f} samples/s")


if __name__ == "__main__":
    main()
