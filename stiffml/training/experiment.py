"""One experiment — fit, then optionally validate and predict — shared by ``stiffml fit`` (through
:class:`~stiffml.commands.cli.StiffCLI`) and ``stiffml benchmark``, so both train through one path."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl

from stiffml.training.callbacks import DivergenceError, StopOnLossBelow


@dataclass
class Experiment:
    """What a finished experiment measured.

    Attributes:
        metrics: Final metrics (fit's, then validation's), as floats.
        fit_seconds: Wall time of ``trainer.fit``.
        steps: Optimizer steps trained.
        epochs: Epochs trained, fractional when a stop rule or ``max_time`` ended one part-way.
        stop_step: The step where :class:`StopOnLossBelow` stopped the run, if it did.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    steps: int = 0
    epochs: float = 0.0
    stop_step: int | None = None


def epochs_trained(trainer: Any) -> float:
    """Epochs trained, fractional when a stop rule or ``max_time`` ended one part-way."""
    per_epoch = trainer.num_training_batches
    if per_epoch and math.isfinite(per_epoch):
        return trainer.global_step / per_epoch
    return float(trainer.current_epoch)


def run_experiment(trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule | None,
                   ckpt_path: str | None = None, validate: bool = False, predict: bool = False,
                   **fit_kwargs: Any) -> Experiment:
    """Fit ``model`` (resuming from ``ckpt_path`` if given); then validate and write predictions.

    ``fit_kwargs`` go to ``trainer.fit`` as they are (e.g. ``weights_only``).

    Raises:
        DivergenceError: when training diverged (also when the final training or validation loss
            is non-finite although the divergence stop was configured away).
    """
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **fit_kwargs)
    seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if validate:
        trainer.validate(model, datamodule, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    bad = {k: metrics[k] for k in ("train_loss", "val_loss") if k in metrics and not math.isfinite(metrics[k])}
    if bad:
        raise DivergenceError("diverged: " + ", ".join(f"{k} {v}" for k, v in bad.items()))
    if predict:
        trainer.predict(model, datamodule, return_predictions=False)
    stops = [cb.stopped_step for cb in trainer.callbacks if isinstance(cb, StopOnLossBelow) and cb.stopped_step]
    return Experiment(metrics, seconds, trainer.global_step, epochs_trained(trainer), stops[0] if stops else None)
