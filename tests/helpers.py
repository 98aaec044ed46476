"""Callbacks the tests hand to the real CLI (``--trainer.callbacks+=tests.helpers.X``)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """SIGKILL this process (no clean-up of any kind) once ``global_step`` reaches ``step``.

    Args:
        step: The optimizer step after which the process dies.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
