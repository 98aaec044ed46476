"""Hamiltonian neural networks (Greydanus et al. 2019) and their dissipative extension."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from stiffml.models.physics.mechanics import check_even, gradient, symplectic
from stiffml.models.physics.base import Activation, PhysicsModel, mlp

Dissipation = Literal["constant", "block", "state"]


class HNN(PhysicsModel):
    """``u̇ = J ∇H_NN(u)`` with ``u = (q, p)``: the learned H is conserved along every free run.

    Args:
        hidden: Hidden width of H's MLP (the seed: 32).
        layers: Linear layers of H's MLP (the seed: 3).
        activation: ``tanh`` | ``softplus`` | ``gelu`` | ``silu`` (smooth: the field is ∇H).
        **kwargs: The physics models' arguments (:class:`~stiffml.models.physics.PhysicsModel`;
            ``n_inputs`` even).
    """

    needs_physical_units = True

    def __init__(self, hidden: int = 32, layers: int = 3, activation: Activation = "tanh", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        n_inputs = self.hparams.n_inputs
        check_even(n_inputs, type(self).__name__)
        self.hamiltonian = mlp(n_inputs, 1, hidden, layers, activation)

    def energy(self, u: Tensor) -> Tensor:
        """The learned Hamiltonian ``H_NN(u)``, shape ``(B,)``."""
        return self.hamiltonian(u).squeeze(-1)

    def grad_h(self, u: Tensor) -> Tensor:
        """``∇H_NN(u)``, shape ``(B, n)``."""
        return gradient(self.energy, u, self.create_graph)[1]

    def field(self, u: Tensor) -> Tensor:
        return symplectic(self.grad_h(u))


class DissipativeHNN(HNN):
    """``u̇ = (J − R) ∇H_NN(u)`` with ``R`` positive semidefinite: energy can only decrease.

    ``R = L Lᵀ`` by construction, so it stays positive semidefinite whatever the optimiser does.
    For Duffing's ``q̈ = −αq − βq³ − γq̇``, the true ``R`` has ``R_pp = γ`` and zeros elsewhere;
    the model logs its learned damping every epoch: ``learned_damping`` (the mean diagonal of the
    momentum block R_pp, i.e. γ) and ``learned_damping_q`` (of R_qq, ideally 0).

    Args:
        dissipation: ``block`` (the seed's eq. 11: constant R = diag(R_q, R_p), each block PSD),
            ``constant`` (a full constant PSD matrix) or ``state`` (``R(u) = A(u)ᵀA(u)`` with A
            an MLP, eq. 10 with the skew part kept so the system can still oscillate).
        damping_init: Initial diagonal of R.
        **kwargs: :class:`HNN`'s arguments (the MLP of H and the physics models' arguments).
    """

    def __init__(self, dissipation: Dissipation = "block", damping_init: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        hidden, layers, activation = self.hparams.hidden, self.hparams.layers, self.hparams.activation
        n_inputs = self.hparams.n_inputs
        if dissipation not in ("constant", "block", "state"):
            raise ValueError(f"unknown dissipation {dissipation!r}; valid: ['constant', 'block', 'state']")
        if not damping_init >= 0:
            raise ValueError(f"damping_init must be >= 0, got {damping_init}")
        n, d = n_inputs, n_inputs // 2
        root = damping_init**0.5
        if dissipation == "state":
            self.factor_net = mlp(n, n * n, hidden, layers, activation)
        else:
            size = n if dissipation == "constant" else d
            blocks = 1 if dissipation == "constant" else 2
            self.factor = nn.Parameter(root * torch.eye(size).repeat(blocks, 1, 1))
        self._last_r: Tensor | None = None

    def dissipation_matrix(self, u: Tensor | None = None) -> Tensor:
        """``R`` (n, n), or ``R(u)`` (B, n, n) for ``dissipation: state``; always PSD."""
        if self.hparams.dissipation == "state":
            if u is None:
                raise ValueError("dissipation 'state' needs the states u")
            n = self.hparams.n_inputs
            a = self.factor_net(u).reshape(-1, n, n)
            return a.transpose(1, 2) @ a
        lower = torch.tril(self.factor)
        blocks = lower @ lower.transpose(1, 2)
        return torch.block_diag(*blocks)

    def field(self, u: Tensor) -> Tensor:
        g = self.grad_h(u)
        r = self.dissipation_matrix(u)
        if r.dim() == 3:
            damp = (r @ g.unsqueeze(-1)).squeeze(-1)
            r = r.mean(dim=0)
        else:
            damp = g @ r.T
        if self.training:
            self._last_r = r.detach()
        return symplectic(g) - damp

    def learned_damping(self, r: Tensor | None = None) -> dict[str, Tensor]:
        """Mean diagonals of R's momentum and position blocks (for Duffing: γ and 0)."""
        r = r if r is not None else self._last_r
        if r is None:
            r = self.dissipation_matrix()
        d = r.shape[-1] // 2
        diag = torch.diagonal(r)
        return {"learned_damping": diag[d:].mean(), "learned_damping_q": diag[:d].mean()}

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self._last_r is not None:
            for key, value in self.learned_damping().items():
                self.log(key, value, prog_bar=key == "learned_damping")
