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


class SwitchToLBFGS(pl.Callback):
    """From epoch ``epoch`` on, optimise with L-BFGS instead of the model's own optimiser.

    The usual recipe for small full-batch scientific models (and pykan's own default): Adam gets
    the weights into the right basin, L-BFGS then converges far faster than Adam would. Use it
    with full-batch data (one step per epoch). Lightning hands L-BFGS the closure it needs.
    Written by hand because Lightning has no optimiser-switch callback; it replaces the
    strategy's optimiser list, which the trainer reads at every step.

    Args:
        epoch: First epoch trained with L-BFGS.
        lr: L-BFGS step length (1 with a line search).
        max_iter: Function evaluations per step (per epoch, full batch).
        history_size: Curvature pairs kept.
        line_search: Use the strong-Wolfe line search.
    """

    def __init__(self, epoch: int = 300, lr: float = 1.0, max_iter: int = 5, history_size: int = 20,
                 line_search: bool = True) -> None:
        super().__init__()
        if epoch < 0 or max_iter < 1 or history_size < 1 or not lr > 0:
            raise ValueError(
                f"SwitchToLBFGS needs epoch >= 0, lr > 0, max_iter >= 1 and history_size >= 1, got "
                f"{epoch}, {lr}, {max_iter}, {history_size}"
            )
        self.epoch, self.lr, self.max_iter, self.history_size = epoch, lr, max_iter, history_size
        self.line_search = line_search
        self.switched = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.switched or trainer.current_epoch < self.epoch:
            return
        params = [p for p in pl_module.parameters() if p.requires_grad]
        trainer.strategy.optimizers = [
            torch.optim.LBFGS(
                params, lr=self.lr, max_iter=self.max_iter, history_size=self.history_size,
                line_search_fn="strong_wolfe" if self.line_search else None,
                tolerance_grad=0.0, tolerance_change=0.0,
            )
        ]
        trainer.strategy.lr_scheduler_configs = []
        self.switched = True
        rank_zero_info(f"SwitchToLBFGS: L-BFGS from epoch {trainer.current_epoch}")
