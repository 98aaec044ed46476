"""Lagrangian neural networks (Cranmer et al. 2020): q̈ from a learned L(q, q̇)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stiffml.models.physics.mechanics import check_even, euler_lagrange_residual_loss, lagrangian_acceleration
from stiffml.models.physics.base import Activation, PhysicsModel, mlp


class LNN(PhysicsModel):
    """``u = (q, q̇)``, ``u̇ = (q̇, q̈)`` with q̈ from the Euler–Lagrange equations of ``L_NN``.

    The loss is the MSE of ``q̈`` only (the seed's LNN metric; the ``q̇`` half of the field is the
    input itself). A state where ``∂²L/∂q̇²`` is singular stops training or a free run with a
    one-line error naming the state (not NaNs). Needs ``data.normalization: none`` and a state
    laid out as positions then velocities (for Duffing, p = q̇).

    Args:
        hidden: Hidden width of L's MLP.
        layers: Linear layers of L's MLP.
        activation: ``softplus`` | ``tanh`` | ``gelu`` | ``silu`` (L needs third derivatives).
        hessian_eps: Smallest allowed ``|eigenvalue|`` of ``∂²L/∂q̇²``.
        dissipation: Add a learned Rayleigh term ``D = ½ q̇ᵀ C q̇`` (C = LLᵀ, PSD).
        train_loss: ``acceleration`` (MSE of q̈ = H⁻¹·rhs, Cranmer et al.) or ``residual``: the
            Euler–Lagrange residual ``‖H q̈_data − rhs‖²`` plus ``(mean tr H / d − 1)²`` to fix L's
            scale. The residual needs no inverse, so a Lagrangian whose ∂²L/∂q̇² passes near zero
            early in training cannot blow the loss up; validation always reports the q̈ MSE.
        **kwargs: The physics models' arguments (:class:`~stiffml.models.physics.PhysicsModel`;
            ``n_inputs`` even).
    """

    needs_physical_units = True

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 3,
        activation: Activation = "softplus",
        hessian_eps: float = 1e-8,
        dissipation: bool = False,
        train_loss: Literal["acceleration", "residual"] = "acceleration",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        n_inputs = self.hparams.n_inputs
        check_even(n_inputs, type(self).__name__)
        if train_loss not in ("acceleration", "residual"):
            raise ValueError(f"unknown train_loss {train_loss!r}; valid: ['acceleration', 'residual']")
        if not hessian_eps >= 0:
            raise ValueError(f"hessian_eps must be >= 0, got {hessian_eps}")
        self.lagrangian = self.build_lagrangian()
        d = n_inputs // 2
        self.rayleigh = nn.Parameter(0.1 * torch.eye(d)) if dissipation else None

    def build_lagrangian(self) -> nn.Module:
        """The network ``(B, 2d) → (B, 1)`` that represents L (overridden by :class:`KANLNN`)."""
        h = self.hparams
        return mlp(h.n_inputs, 1, h.hidden, h.layers, h.activation)

    def lagrangian_value(self, u: Tensor) -> Tensor:
        """The learned ``L(q, q̇)``, shape ``(B,)``."""
        return self.lagrangian(u).reshape(u.shape[0])

    def damping_matrix(self) -> Tensor | None:
        """The Rayleigh matrix ``C = LLᵀ`` (PSD), or None."""
        if self.rayleigh is None:
            return None
        lower = torch.tril(self.rayleigh)
        return lower @ lower.T

    def acceleration(self, u: Tensor) -> Tensor:
        """``q̈`` at states ``(B, 2d)``."""
        return lagrangian_acceleration(
            self.lagrangian_value, u, create_graph=self.create_graph,
            hessian_eps=self.hparams.hessian_eps, damping=self.damping_matrix(),
        )

    def field(self, u: Tensor) -> Tensor:
        d = u.shape[-1] // 2
        return torch.cat([u[:, d:], self.acceleration(u)], dim=-1)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        if self.hparams.get("train_loss", "acceleration") == "acceleration":
            return super().training_step(batch, batch_idx)
        u, du = batch
        loss = euler_lagrange_residual_loss(self.lagrangian_value, u, du, damping=self.damping_matrix())
        self.record_train_loss(loss, u.shape[0])
        return loss

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        d = pred.shape[-1] // 2
        return F.mse_loss(pred[:, d:], target[:, d:])
