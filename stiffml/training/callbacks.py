"""Training callbacks that Lightning does not ship."""

from __future__ import annotations

import math
import os
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
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


class DivergenceError(RuntimeError):
    """Training stopped because a loss became non-finite or exceeded the configured ceiling."""


class StopOnDivergence(pl.Callback):
    """Stop a run, with an error and a non-zero exit, as soon as its loss diverges.

    A training batch loss or an epoch's validation loss (``monitor``) that is non-finite or above
    ``max_loss`` raises :class:`DivergenceError` in that very step: the message names the step,
    the value, the likely cause and the last good checkpoint. It fires before any checkpoint of
    that step or epoch is written (Lightning runs checkpoint callbacks last), so no checkpoint is
    ever scored by a diverged metric. On by default in the CLI (``--divergence.*``).

    On the CPU every step is checked (a float comparison). On an accelerator the check is folded
    into a flag on the device and read every ``sync_every_n_steps`` steps, so the hot path has no
    host-device sync; the error then says "at or before" the step.

    Args:
        max_loss: Ceiling for training and validation losses (None: only non-finite values).
        monitor: Validation metric checked at each validation end (None: training loss only).
        sync_every_n_steps: On accelerators, read the device-side flag every n steps.
    """

    def __init__(self, max_loss: float | None = 1.0e10, monitor: str | None = "val_loss",
                 sync_every_n_steps: int = 50) -> None:
        super().__init__()
        if max_loss is not None and not max_loss > 0:
            raise ValueError(f"StopOnDivergence max_loss must be positive or null, got {max_loss}")
        if sync_every_n_steps < 1:
            raise ValueError(f"sync_every_n_steps must be a positive integer, got {sync_every_n_steps}")
        self.max_loss = float(max_loss) if max_loss is not None else float("inf")
        self.monitor = monitor
        self.sync_every_n_steps = sync_every_n_steps
        self._flag: torch.Tensor | None = None

    def _bad(self, value: float) -> bool:
        return not math.isfinite(value) or value > self.max_loss

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach()
        if loss.device.type != "cpu":
            flag = ~torch.isfinite(loss) | (loss > self.max_loss)
            self._flag = flag if self._flag is None else self._flag | flag
            if trainer.global_step % self.sync_every_n_steps or not bool(self._flag):
                return
            where = "at or before"
        else:
            if not self._bad(float(loss)):
                return
            where = "at"
        self._stop(trainer, pl_module, f"training loss {float(loss):.4g} {where} step {trainer.global_step}")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor is None or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and self._bad(float(value)):
            self._stop(trainer, pl_module, f"{self.monitor} {float(value):.4g} at step {trainer.global_step}")

    def _stop(self, trainer: pl.Trainer, pl_module: pl.LightningModule, what: str) -> None:
        limit = "non-finite" if math.isinf(self.max_loss) else f"non-finite or above max_loss {self.max_loss:.3g}"
        lr = getattr(getattr(pl_module, "hparams", None), "get", lambda *_: None)("lr")
        cause = (f"the learning rate (lr={lr:g}) is likely too high" if lr is not None and trainer.global_step > 1
                 else "check the learning rate and the data (normalization, non-finite values)")
        raise DivergenceError(
            f"training diverged (epoch {trainer.current_epoch}): {what} is {limit}; {cause}; "
            f"{last_good_checkpoint(trainer)} (set --divergence.max_loss to change the ceiling)"
        )


def last_good_checkpoint(trainer: pl.Trainer) -> str:
    """A phrase naming the newest checkpoint this run wrote, for error messages."""
    paths = {p for cb in trainer.checkpoint_callbacks for p in (cb.last_model_path, cb.best_model_path)}
    found = [p for p in paths if p and os.path.isfile(p)]
    if not found:
        return "no checkpoint was written before it"
    return f"last good checkpoint: {max(found, key=os.path.getmtime)}"


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for the CLI's ``--step_checkpoint.*`` group (``last.ckpt`` every 5
    minutes of training by default, and every N training steps if asked). A class of its own because Lightning keys a callback's saved
    state by class name and trigger settings: as a plain ``ModelCheckpoint`` it would collide with
    the epoch-end ``last`` callback whenever their settings coincide (both switched off, say)."""
