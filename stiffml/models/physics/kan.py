"""Kolmogorov–Arnold networks (pykan) as a field regressor and as a learned Lagrangian.

pykan's own ``fit()`` builds its optimiser and writes checkpoints into ``./model``; here a KAN is
a plain ``nn.Module`` trained by Lightning: built with ``auto_save=False`` and in pykan's speed
mode (no activation statistics), with pykan's grid updates replayed on the training inputs at
the start of the first epochs (as ``fit()`` does in its first steps).
"""

from __future__ import annotations

import abc

import random
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from stiffml.models.base import check_positive
from stiffml.models.physics.base import PhysicsModel
from stiffml.models.physics.lagrangian import LNN


def make_kan(width: list[int], grid: int, k: int, seed: int, grid_range: tuple[float, float]) -> nn.Module:
    """A pykan ``KAN`` that never touches the file system, built without disturbing global RNGs.

    (pykan's constructor re-seeds torch, numpy and ``random``; the states are restored here so a
    run's other random draws do not depend on whether it contains a KAN.)
    """
    check_positive(grid=grid, k=k)
    if len(width) < 2 or any(w < 1 for w in width):
        raise ValueError(f"KAN width must list at least two positive layer sizes, got {width}")
    if not grid_range[1] > grid_range[0]:
        raise ValueError(f"grid_range must be increasing, got {list(grid_range)}")
    from kan import KAN as PyKAN  # noqa: PLC0415 (sympy, sklearn, pandas: only when a KAN is built)

    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        net = PyKAN(
            width=list(width), grid=grid, k=k, seed=seed, grid_range=list(grid_range),
            auto_save=False, save_act=False, symbolic_enabled=False, device="cpu",
        )
    np.random.set_state(np_state)
    random.setstate(py_state)
    return net.speed()


class _KANMixin:
    """Grid updates on the training inputs during the first epochs (pykan ``fit()``'s schedule)."""

    hparams: Any

    @abc.abstractmethod
    def kan_modules(self) -> list[nn.Module]:
        """The pykan networks whose grids are updated."""

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()  # type: ignore[misc]
        h = self.hparams
        epoch = self.current_epoch  # type: ignore[attr-defined]
        if h.grid_update_every <= 0 or epoch >= h.grid_update_until or epoch % h.grid_update_every:
            return
        dm = self._datamodule()  # type: ignore[attr-defined]
        if dm is None or getattr(dm, "samples", None) is None:
            return
        x, _ = dm.samples.batch(dm.train_idx)
        with torch.no_grad():
            for net in self.kan_modules():
                net.update_grid_from_samples(x)


class KAN(_KANMixin, PhysicsModel):
    """A pykan KAN as a plain regressor of the field: ``u̇ = KAN(u)``.

    Args:
        n_inputs: Linked from the datamodule (state width).
        n_outputs: Linked from the datamodule (state width).
        lr: Adam learning rate.
        hidden: Widths of the hidden KAN layers (``[5]``: width ``[n, 5, n]``).
        grid: B-spline grid intervals per edge.
        k: B-spline order.
        grid_range: Initial grid range (grid updates then fit it to the data).
        grid_update_every: Re-fit the grids to the training inputs every this many epochs (0: never).
        grid_update_until: Stop grid updates from this epoch on.
        seed: pykan's initialisation seed.
    """

    def __init__(
        self,
        n_inputs: int = 2,
        n_outputs: int = 2,
        lr: float = 1e-3,
        hidden: list[int] | None = None,
        grid: int = 5,
        k: int = 3,
        grid_range: tuple[float, float] = (-3.0, 3.0),
        grid_update_every: int = 5,
        grid_update_until: int = 50,
        seed: int = 0,
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        hidden = [5] if hidden is None else list(hidden)
        self.net = make_kan([n_inputs, *hidden, n_outputs], grid, k, seed, grid_range)

    def kan_modules(self) -> list[nn.Module]:
        return [self.net]

    def field(self, u: Tensor) -> Tensor:
        return self.net(u)


class KANLNN(_KANMixin, LNN):
    """An LNN whose Lagrangian is a pykan KAN: ``L = Σ_j ψ_j(φ_1j(q) + φ_2j(q̇))`` (the seed's eq. 24).

    ``stiffml symbolic --ckpt ...`` prints the formula the KAN has learned, normalised for
    comparison with the true Lagrangian.

    Args:
        n_inputs: Linked from the datamodule (state width, even).
        n_outputs: Linked from the datamodule (state width).
        lr: Adam learning rate.
        hidden: Widths of the hidden KAN layers (the seed: ``[10]``, i.e. width ``[2, 10, 1]``).
        grid: B-spline grid intervals per edge.
        k: B-spline order (3: cubic; L needs second derivatives in the field, third in the loss).
        grid_range: Initial grid range (grid updates then fit it to the data).
        grid_update_every: Re-fit the grids to the training inputs every this many epochs (0: never).
        grid_update_until: Stop grid updates from this epoch on.
        seed: pykan's initialisation seed.
        hessian_eps: Smallest allowed ``|eigenvalue|`` of ``∂²L/∂q̇²``.
        dissipation: Add a learned Rayleigh dissipation term.
        train_loss: ``residual`` (default: a randomly initialised KAN's ∂²L/∂q̇² crosses zero, which
            makes the q̈ loss explode) or ``acceleration`` (see :class:`LNN`).
    """

    def __init__(
        self,
        n_inputs: int = 2,
        n_outputs: int = 2,
        lr: float = 1e-3,
        hidden: list[int] | None = None,
        grid: int = 5,
        k: int = 3,
        grid_range: tuple[float, float] = (-3.0, 3.0),
        grid_update_every: int = 5,
        grid_update_until: int = 50,
        seed: int = 0,
        hessian_eps: float = 1e-8,
        dissipation: bool = False,
        train_loss: Literal["acceleration", "residual"] = "residual",
    ) -> None:
        self._kan_spec = (hidden, grid, k, seed, grid_range)
        super().__init__(n_inputs=n_inputs, n_outputs=n_outputs, lr=lr, hessian_eps=hessian_eps, dissipation=dissipation,
                         train_loss=train_loss)

    def build_lagrangian(self) -> nn.Module:
        hidden, grid, k, seed, grid_range = self._kan_spec
        hidden = [10] if hidden is None else list(hidden)
        return make_kan([self.hparams.n_inputs, *hidden, 1], grid, k, seed, grid_range)

    def kan_modules(self) -> list[nn.Module]:
        return [self.lagrangian]
