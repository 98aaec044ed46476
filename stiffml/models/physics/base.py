"""Base class of the physics family: a learned vector field, scored by free runs.

Validation and testing run under ``torch.inference_mode`` in Lightning, where no autograd graph
can be built; Hamiltonian and Lagrangian fields are gradients of a learned scalar, so every
evaluation path here re-enables autograd locally (:func:`autograd_enabled`): users need not set
``trainer.inference_mode: false``.
"""

from __future__ import annotations

import abc
import dataclasses

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn


from stiffml.models.physics.mechanics import SingularLagrangianError
from stiffml.evaluation.metrics import nmae
from stiffml.models.base import ACTIVATIONS, Activation, StiffModel, check_positive
from stiffml.evaluation.rollout import RolloutSettings, field_free_run
from stiffml.solvers import StepBudgetExceeded
from stiffml.systems import SolveError



@contextmanager
def autograd_enabled() -> Iterator[None]:
    """Autograd on, also inside Lightning's ``inference_mode`` validation/test/predict loops."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def mlp(n_in: int, n_out: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    """``layers`` linear layers (``layers − 1`` hidden ones of width ``hidden``), smooth activations."""
    check_positive(hidden=hidden, layers=layers)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {list(ACTIVATIONS)}")
    widths = [n_in] + [hidden] * (layers - 1) + [n_out]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(a, b))
        if i < layers - 1:
            mods.append(ACTIVATIONS[activation]())
    return nn.Sequential(*mods)


class PhysicsModel(StiffModel, abc.ABC):
    """A learned vector field ``u̇ = f(u)`` trained on ``(u, u̇)`` samples (the derivative representation).

    Subclasses implement :meth:`field`. Free runs integrate the field from the held-out initial
    states of an :class:`~stiffml.data.EnsembleDataModule` and report ``val_rollout_mse`` (over
    the training horizon), ``val_rollout_mse_<k>x`` (over ``k`` horizons) and, for a conservative
    system, ``val_energy_drift`` (mean over held-out trajectories of the largest relative change
    of the true energy along the learned trajectory, over the long horizon).

    The arguments every physics model takes are declared and documented here once; a subclass
    lists its own and passes these on with ``**kwargs`` (jsonargparse follows the call, so
    ``--help`` shows them all).

    Args:
        n_inputs: Linked from the datamodule (state width).
        n_outputs: Linked from the datamodule (state width).
        lr: Adam learning rate (the seed: 1e-3).
    """

    family = "physics"
    representation = "derivative"
    contract_datamodule: ClassVar[str] = "DuffingDataModule"
    needs_physical_units: ClassVar[bool] = False

    def __init__(
        self,
        n_inputs: int = 2,
        n_outputs: int = 2,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        if n_inputs != n_outputs:
            raise ValueError(f"{type(self).__name__} maps a state to its derivative: n_inputs == n_outputs, got {n_inputs}, {n_outputs}")

    # ------------------------------------------------------------------------------ the field
    @abc.abstractmethod
    def field(self, u: Tensor) -> Tensor:
        """``du/dt`` at a batch of states ``(B, n)`` (model units)."""

    def forward(self, u: Tensor) -> Tensor:
        return self.field(u)

    @property
    def create_graph(self) -> bool:
        """Whether gradient-based fields keep their graph (only when training)."""
        return self.training and torch.is_grad_enabled()

    def setup(self, stage: str) -> None:
        super().setup(stage)
        norm = self.data_spec.normalization if self.data_spec is not None else "none"
        if self.needs_physical_units and norm != "none":
            raise ValueError(
                f"{type(self).__name__} needs data.normalization 'none' (a per-state scaling breaks the "
                f"Hamiltonian/Lagrangian structure), got {norm!r}"
            )

    # ----------------------------------------------------------------------- eval with autograd
    def eval_forward(self, x: Tensor) -> Tensor:
        with autograd_enabled():
            return self(x.clone()).detach()  # a clone made here is a normal tensor, not an inference one

    # --------------------------------------------------------------------------------- free runs
    def free_run(self, dm: Any, settings: RolloutSettings | None = None) -> dict[str, np.ndarray]:
        """Integrate the learned field from every held-out initial state over the long horizon
        (default: torchdiffeq's dopri5; ``--rollout.*``).

        Returns ``t`` (T,), ``pred`` and ``reference`` (m, T, n) in physical units; a run that
        fails (step budget, non-finite values) has ``pred`` filled with NaN from there on.
        """
        settings = (settings or RolloutSettings()).resolved(solver="dopri5", atol=1e-8)
        data = dm.free_run_data()
        keep = settings.cut(len(data.times))
        ref, times = data.reference[:, :keep], data.times[:keep]
        param = next(self.parameters())
        # tolerances below the dtype's resolution (e.g. atol 1e-8 in float32) would make the
        # adaptive solver shrink its steps without end
        floor = 100 * torch.finfo(param.dtype).eps
        settings = dataclasses.replace(settings, rtol=max(settings.rtol, floor), atol=max(settings.atol, floor))
        was_training = self.training
        self.eval()
        try:
            with autograd_enabled():
                try:
                    pred = field_free_run(lambda _t, z: self.field(z), data, settings, param)["pred"]
                except (StepBudgetExceeded, SolveError):
                    pred = np.full_like(ref, np.nan)
                except SingularLagrangianError as err:
                    # a free run at the end of a long training run scores inf and says why;
                    # it does not throw the run away (in training the same error stops it)
                    rank_zero_warn(f"{type(self).__name__} free run stopped: {err}")
                    pred = np.full_like(ref, np.nan)
        finally:
            self.train(was_training)
        return {"t": times, "pred": pred, "reference": ref}

    def rollout_metrics(self, dm: Any, run: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """``val_rollout_nmae`` and ``val_rollout_mse`` (1× horizon), ``val_rollout_mse_<k>x`` and
        ``val_energy_drift``."""
        run = run if run is not None else self.free_run(dm)
        pred, ref = run["pred"], run["reference"]
        k = min(dm.horizon_index, pred.shape[1])
        long_key = f"val_rollout_mse_{dm.rollout_factor}x"
        finite = np.all(np.isfinite(pred))
        out = {
            # per held-out trajectory, over the training horizon, then averaged
            "val_rollout_nmae": float(np.mean([nmae(p[:k], r[:k]) for p, r in zip(pred, ref)])) if finite else float("inf"),
            "val_rollout_mse": float(np.mean((pred[:, :k] - ref[:, :k]) ** 2)) if finite else float("inf"),
            long_key: float(np.mean((pred - ref) ** 2)) if finite else float("inf"),
        }
        if dm.conservative and dm.energy(ref[:, :1]) is not None:
            e0 = dm.energy(ref[:, :1])
            drift = np.abs(dm.energy(pred) - e0) / np.maximum(np.abs(e0), 1e-12)
            out["val_energy_drift"] = float(np.mean(drift.max(axis=1))) if finite else float("inf")
        return out


class NODE(PhysicsModel):
    """Plain neural ODE on derivative data (the seed's baseline): ``u̇ = MLP(u)``, no structure.

    Args:
        hidden: Hidden width (32: the same network as the HNN's).
        layers: Linear layers (3: two hidden layers).
        activation: ``tanh`` | ``softplus`` | ``gelu`` | ``silu``.
        **kwargs: The physics models' arguments (:class:`PhysicsModel`).
    """

    def __init__(self, hidden: int = 32, layers: int = 3, activation: Activation = "tanh", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = mlp(self.hparams.n_inputs, self.hparams.n_outputs, hidden, layers, activation)

    def field(self, u: Tensor) -> Tensor:
        return self.net(u)
