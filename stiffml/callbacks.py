"""Training callbacks that Lightning does not ship."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info


class StopOnLossBelow(pl.Callback):
    """Stop in the step where a training batch loss first falls below ``threshold``.

    The paper's rule for the temporal models (threshold 1e-6). Lightning's ``EarlyStopping``
    with ``stopping_threshold`` only checks at epoch or validation end, hence this callback.
    Under DDP the decision is reduced over ranks, so all stop in the same step. Deciding on the
    host costs one device-to-host sync per check; ``check_every_n_steps`` thins the checks.

    Args:
        threshold: Stop once a batch loss is below this (> 0).
        check_every_n_steps: Check every n-th training step.
    """

    def __init__(self, threshold: float = 1.0e-6, check_every_n_steps: int = 1) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"StopOnLossBelow threshold must be positive, got {threshold}")
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be a positive integer, got {check_every_n_steps}")
        self.threshold = float(threshold)
        self.check_every_n_steps = check_every_n_steps
        self.stopped_step: int | None = None
        self.stop_loss: float | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.check_every_n_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss_value = float(loss.detach())
        if not trainer.strategy.reduce_boolean_decision(loss_value < self.threshold, all=False):
            return
        trainer.should_stop = True
        self.stopped_step = trainer.global_step
        self.stop_loss = loss_value
        rank_zero_info(
            f"StopOnLossBelow: batch loss {loss_value:.3e} < {self.threshold:.1e} at step "
            f"{trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx}); stopping"
        )
        for logger in trainer.loggers:
            logger.log_metrics({"stop_step": float(trainer.global_step), "stop_loss": loss_value}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"stopped_step": self.stopped_step, "stop_loss": self.stop_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stopped_step = state_dict.get("stopped_step")
        self.stop_loss = state_dict.get("stop_loss")
