"""The model base class every architecture family (built-in or plugin) subclasses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from stiffml.data.base import DataSpec
from stiffml.evaluation.metrics import NormalizedMAE, RelativeL2Error


# Smooth activations for learned vector fields and energies (ODE-Net, the physics family).
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh, "softplus": torch.nn.Softplus, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU,
}
Activation = Literal["tanh", "softplus", "gelu", "silu"]


def check_positive(**sizes: int) -> None:
    """Raise a one-line ValueError unless every size is a positive integer (>= 1)."""
    if any(v < 1 for v in sizes.values()):
        names = list(sizes)
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        raise ValueError(f"{joined} must be positive, got {', '.join(map(str, sizes.values()))}")


def make_adam(params: Any, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where torch supports it (about 25 % faster per step on the CPU for these
    small models, measured with bench/overhead.py); plain Adam otherwise."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


class EpochMean:
    """The running epoch sum of the training loss, kept on the device (no host sync), and the
    sample count. A plain object: updating it per step skips ``nn.Module.__setattr__``."""

    __slots__ = ("total", "count")

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.count = 0

    def reset(self) -> None:
        self.total, self.count = None, 0

    def add(self, loss: Tensor, n: int) -> None:
        if self.total is None:
            self.total = torch.zeros((), dtype=torch.float64, device=loss.device)
        self.total.add_(loss, alpha=n)
        self.count += n


class StiffModel(pl.LightningModule):
    """A model trained on one sample representation of a stiff system.

    Subclasses set ``family`` and ``representation`` (the samples they consume: ``pointwise``,
    ``window``, ``pair``, ``segment`` or ``derivative``), build their layers in ``__init__`` after calling
    ``super().__init__(n_inputs, n_outputs, lr)``, and implement ``forward``. They may override
    :meth:`loss` and :meth:`consumes`. ``n_inputs``/``n_outputs`` are linked from the datamodule
    by the CLI: users never set them.

    Args:
        n_inputs: Input width (pointwise: 1 for t; otherwise the state width).
        n_outputs: Number of predicted states.
        lr: Adam learning rate.
    """

    family: ClassVar[str] = ""
    representation: ClassVar[str] = "pointwise"
    # what the model knows of its data (scaler, reference series, widths): set once in setup
    data_spec: DataSpec | None = None

    # Optional capabilities, declared here so a plugin author sees them in one place; a family
    # that has one defines the method, and callers test ``model.<hook> is not None``.
    #: ``free_run(datamodule, settings: RolloutSettings) -> dict``: integrate the model from the
    #: reference's first state(s) over its times (``t``, ``pred``, ``reference`` in physical
    #: units, ``states``); scored as ``val_rollout_*`` by ``RolloutEvaluation`` and written by
    #: ``stiffml predict``. ``None``: the model's prediction is already free-running (pointwise).
    free_run: ClassVar[Callable[..., dict] | None] = None
    #: ``rollout_metrics(datamodule, run) -> dict[str, float]``: the scores of a free run, where a
    #: family scores more than the common ones (the physics family's ensemble and energy drift).
    #: ``None``: :func:`stiffml.evaluation.rollout_errors`.
    rollout_metrics: ClassVar[Callable[..., dict[str, float]] | None] = None
    #: ``symbolic_report(datamodule, opts) -> str``: what ``stiffml symbolic`` prints for the
    #: model (``None``: the built-in reports of the physics family, or none).
    symbolic_report: ClassVar[Callable[..., str] | None] = None
    #: Whether the model reads an ensemble's per-member rate constants (``n_conditions`` inputs
    #: besides the state, linked from the datamodule): ``ODENet``'s conditioned field.
    reads_conditions: ClassVar[bool] = False

    def __init__(self, n_inputs: int = 1, n_outputs: int = 1, lr: float = 1e-3) -> None:
        super().__init__()
        if n_inputs < 1 or n_outputs < 1:
            raise ValueError(f"n_inputs and n_outputs must be positive, got {n_inputs}, {n_outputs}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.save_hyperparameters()
        self.val_rel_l2 = RelativeL2Error()
        self.test_rel_l2 = RelativeL2Error()
        self.val_nmae = NormalizedMAE()
        self.test_nmae = NormalizedMAE()
        self._epoch = EpochMean()

    @classmethod
    def consumes(cls, init_args: dict[str, Any]) -> str:
        """The representation this model consumes, given its init arguments."""
        return cls.representation

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Training objective on normalised data (MSE, as the paper)."""
        return F.mse_loss(pred, target)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_adam((p for p in self.parameters() if p.requires_grad), self.hparams.lr)

    # ------------------------------------------------------------------------ wiring checks
    def _datamodule(self) -> Any:
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def setup(self, stage: str) -> None:
        trainer = self._trainer
        if trainer is not None and str(trainer.precision).startswith("64"):
            # Lightning loads a checkpoint's state dict before its precision plugin converts the
            # module, so a float32-built model would round float64 weights on restore.
            self.double()
        dm = self._datamodule()
        rep = getattr(dm, "representation", None)
        if rep is None:
            return
        want = self.consumes(dict(self.hparams))
        if rep != want:
            raise ValueError(
                f"{type(self).__name__} consumes '{want}' samples but {type(dm).__name__} serves '{rep}'"
            )
        dims = (dm.n_inputs, dm.n_outputs)
        if dims != (self.hparams.n_inputs, self.hparams.n_outputs):
            raise ValueError(
                f"{type(self).__name__} was built for n_inputs/n_outputs "
                f"{(self.hparams.n_inputs, self.hparams.n_outputs)} but {type(dm).__name__} serves {dims}"
            )
        served = getattr(dm, "n_conditions", None) or 0
        # a constructor passing **kwargs on records the linked n_conditions even if nothing reads it
        reads = (self.hparams.get("n_conditions", 0) or 0) if self.reads_conditions else 0
        if served != reads:
            if not reads:
                raise ValueError(f"{type(dm).__name__} draws {served} rate constants per member (data.rate_constants) "
                                 f"but {type(self).__name__} does not read them; use ODENet (mode trajectory or "
                                 "derivative), whose field is conditioned on them")
            raise ValueError(f"{type(self).__name__} was built for n_conditions={reads} but {type(dm).__name__} "
                             f"serves {served}")
        if getattr(dm, "samples", None) is not None:
            self.data_spec = dm.spec()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The CLI links every model's n_inputs/n_outputs/n_parameters/n_conditions to the datamodule and a link
        # of value None is not applied; but a model whose constructor passes **kwargs on takes the
        # unapplied None into the hyperparameters LightningCLI records, and loading would hand it
        # to a constructor that has no such argument. Only what the model was built with is kept.
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict):
            for key in ("n_inputs", "n_outputs", "n_parameters", "n_conditions"):
                if key in hparams and hparams[key] is None:
                    del hparams[key]
        # the classes, so tools such as `stiffml symbolic --ckpt` can rebuild model and data
        dm = self._datamodule()
        checkpoint["stiffml"] = {
            "model": f"{type(self).__module__}.{type(self).__qualname__}",
            "datamodule": f"{type(dm).__module__}.{type(dm).__qualname__}" if dm is not None else None,
            # the running epoch mean, so a run resumed mid-epoch logs the same train_loss
            "epoch_loss": None if self._epoch.total is None else self._epoch.total.cpu(),
            "epoch_count": self._epoch.count,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before loading the weights: a checkpoint of other layer sizes
        # would otherwise end in torch's multi-line size-mismatch table
        own = self.state_dict()
        for key, value in (checkpoint.get("state_dict") or {}).items():
            if key in own and hasattr(value, "shape") and tuple(value.shape) != tuple(own[key].shape):
                raise ValueError(
                    f"the checkpoint was written for a {type(self).__name__} of other sizes: {key} is "
                    f"{tuple(value.shape)} there and {tuple(own[key].shape)} in this config; use the config the "
                    "checkpoint was trained with (config.yaml in its run folder)")
        info = checkpoint.get("stiffml") or {}
        loss = info.get("epoch_loss")
        self._epoch.total = None if loss is None else loss.to(self.device)
        self._epoch.count = int(info.get("epoch_count") or 0)

    def on_fit_start(self) -> None:
        rank_zero_info(f"{type(self).__name__}: {self.n_params:,} trainable parameters")
        if self.logger is not None:
            self.logger.log_hyperparams({"n_params": self.n_params})

    # ---------------------------------------------------------------------------------- steps
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.record_train_loss(loss, y.shape[0])
        return loss

    def record_train_loss(self, loss: Tensor, batch_size: int) -> None:
        """Write ``train_loss_step`` every ``log_every_n_steps`` and accumulate the epoch mean.

        Hand-written instead of ``self.log(on_step=True, on_epoch=True)``: each ``self.log`` call
        costs Lightning over ten milliseconds of Python on the CPU (it re-applies ``.to(device)``
        over its result collection), more than these models' whole step. The step loss goes
        straight to the loggers (one host sync per ``log_every_n_steps``); the epoch sum stays on
        the device and is logged once per epoch as ``train_loss``.
        """
        detached = loss.detach()
        self._epoch.add(detached, batch_size)
        trainer = self._trainer
        if trainer is not None and trainer.global_step % trainer.log_every_n_steps == 0:
            for logger in trainer.loggers:
                logger.log_metrics({"train_loss_step": detached}, step=trainer.global_step)

    def on_train_epoch_start(self) -> None:
        self._epoch.reset()

    def on_train_epoch_end(self) -> None:
        if self._epoch.count:
            self.log("train_loss", self._epoch.total / self._epoch.count, prog_bar=True, sync_dist=True)

    def to_physical(self, x: Any, out: Tensor) -> Tensor:
        """Model outputs (or targets) in physical units, float64; ``x`` is the batch input (the
        states at which ``derivative`` outputs are taken). Unscaled before the model has data."""
        if self.data_spec is not None:
            return self.data_spec.to_physical(x, out)
        return out.to(torch.float32 if out.device.type == "mps" else torch.float64)

    def eval_forward(self, x: Any) -> Tensor:
        """The prediction used by validation, test and predict (a hook: the physics family
        re-enables autograd inside Lightning's inference mode here)."""
        return self(x)

    def _evaluate(self, batch: Any, prefix: str) -> None:
        x, y = batch
        pred = self.eval_forward(x)
        n = y.shape[0]
        self.log(f"{prefix}_loss", self.loss(pred, y), prog_bar=prefix == "val", batch_size=n, sync_dist=True)
        pred, y = self.to_physical(x, pred), self.to_physical(x, y)
        for name in ("rel_l2", "nmae"):
            metric = getattr(self, f"{prefix}_{name}")
            metric.update(pred, y)
            self.log(f"{prefix}_{name}", metric, prog_bar=prefix == "val" and name == "nmae")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        x, y = batch
        return {"pred": self.to_physical(x, self.eval_forward(x)), "target": self.to_physical(x, y)}
