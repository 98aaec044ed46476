"""Callbacks the tests hand to the real CLI (``--trainer.callbacks+=tests.helpers.X``)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """SIGKILL this process (no clean-up of any kind) once ``global_step`` reaches ``step``.

    Args:
        step: The optimizer step after which the process dies.
        log_file: A file that gets one line per kill (to count attempts), if set.
    """

    def __init__(self, step: int, log_file: str | None = None) -> None:
        self.step = step
        self.log_file = log_file

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            if self.log_file:
                with open(self.log_file, "a") as f:
                    f.write(f"killed pid {os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)


class SigintAtStep(pl.Callback):
    """Send this process SIGINT (what Ctrl-C does) once ``global_step`` reaches ``step``.

    Args:
        step: The optimizer step after which the signal is sent.
    """

    def __init__(self, step: int) -> None:
        self.step = step
        self.sent = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            # a process started in the background by a non-interactive shell ignores SIGINT from
            # birth (Python then installs no KeyboardInterrupt handler); Ctrl-C reaches a
            # foreground process, so restore what it would have
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
