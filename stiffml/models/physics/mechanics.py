"""Hamiltonian and Lagrangian vector fields by autograd, batched (pure torch, no Lightning).

States are laid out ``u = (q, p)`` (Hamiltonian) or ``u = (q, q̇)`` (Lagrangian), each half of
width ``d``; every function takes a batch of shape ``(B, 2d)``. Scalar functions (H, L) map
``(B, 2d) → (B,)`` or ``(B, 1)`` with independent samples, so one backward pass of their sum
gives every sample's gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class SingularLagrangianError(ValueError):
    """The Lagrangian's velocity Hessian ∂²L/∂q̇² is singular (or not finite) at some state."""


def check_even(n: int, model: str) -> None:
    """Raise a one-line error unless a (q, p) / (q, q̇) state of width ``n`` is possible."""
    if n < 2 or n % 2:
        raise ValueError(
            f"{model} needs an even state dimension (positions then momenta/velocities), got {n}"
        )


def _grad_input(u: Tensor) -> Tensor:
    """``u`` as a leaf that records gradients, unless it is already part of a graph."""
    return u if u.requires_grad else u.detach().requires_grad_(True)


def gradient(fn: Callable[[Tensor], Tensor], u: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """``(fn(u) as (B,), ∇fn(u) as (B, n))`` for a batched scalar function."""
    u = _grad_input(u)
    value = fn(u).reshape(u.shape[0])
    (grad,) = torch.autograd.grad(value.sum(), u, create_graph=create_graph)
    return value, grad


def symplectic(grad_h: Tensor) -> Tensor:
    """``J ∇H`` with ``J = [[0, I], [−I, 0]]``: ``(∂H/∂p, −∂H/∂q)``."""
    d = grad_h.shape[-1] // 2
    return torch.cat([grad_h[..., d:], -grad_h[..., :d]], dim=-1)


def hamiltonian_field(h: Callable[[Tensor], Tensor], u: Tensor, create_graph: bool = False) -> Tensor:
    """Hamilton's equations ``u̇ = J ∇H(u)`` for a batch of states ``(B, 2d)``."""
    return symplectic(gradient(h, u, create_graph)[1])


def lagrangian_acceleration(
    lagrangian: Callable[[Tensor], Tensor],
    u: Tensor,
    create_graph: bool = False,
    hessian_eps: float = 1e-8,
    damping: Tensor | None = None,
) -> Tensor:
    """``q̈`` from the Euler–Lagrange equations of a learned ``L(q, q̇)``, batched.

    ``q̈ = (∂²L/∂q̇²)⁻¹ (∂L/∂q − ∂²L/∂q̇∂q · q̇ − C q̇)``, where ``C`` (optional, ``(d, d)``
    positive semidefinite) is a Rayleigh dissipation ``D = ½ q̇ᵀ C q̇``. Second derivatives
    take ``d`` extra backward passes over the batch (``d`` is 1 for the Duffing oscillator),
    which works for any module, pykan's KAN included, unlike ``torch.func.vmap``.

    Args:
        lagrangian: Batched ``L(u)`` with ``u = (q, q̇)``.
        u: States ``(B, 2d)``.
        create_graph: Keep the graph (training: the loss backpropagates through ``q̈``).
        hessian_eps: Smallest allowed ``|eigenvalue|`` of ``∂²L/∂q̇²``.
        damping: Rayleigh matrix ``C``, or None.

    Raises:
        SingularLagrangianError: If ``∂²L/∂q̇²`` is singular or not finite at some state.
    """
    rhs, hess, u = euler_lagrange_terms(lagrangian, u, create_graph, damping)
    _check_hessian(hess, u, hessian_eps)
    if hess.shape[-1] == 1:
        return rhs / hess[:, :, 0]
    return torch.linalg.solve(hess, rhs.unsqueeze(-1)).squeeze(-1)


def euler_lagrange_terms(
    lagrangian: Callable[[Tensor], Tensor], u: Tensor, create_graph: bool = False, damping: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The Euler–Lagrange equations as ``hess · q̈ = rhs``; returns ``(rhs (B, d), hess (B, d, d), u)``.

    ``hess = ∂²L/∂q̇²`` and ``rhs = ∂L/∂q − ∂²L/∂q̇∂q · q̇ − C q̇`` (see
    :func:`lagrangian_acceleration`); ``u`` is the input as used (a leaf that records gradients).
    """
    u = _grad_input(u)
    d = u.shape[-1] // 2
    _, grad = gradient(lagrangian, u, create_graph=True)
    dl_dq, dl_dv = grad[:, :d], grad[:, d:]
    rows = [
        torch.autograd.grad(dl_dv[:, i].sum(), u, create_graph=create_graph, retain_graph=True)[0]
        for i in range(d)
    ]
    second = torch.stack(rows, dim=1)  # (B, d, 2d): ∂/∂u of ∂L/∂q̇_i
    mixed, hess = second[:, :, :d], second[:, :, d:]  # ∂²L/∂q̇_i∂q_j, ∂²L/∂q̇_i∂q̇_j
    v = u[:, d:]
    rhs = dl_dq - (mixed @ v.unsqueeze(-1)).squeeze(-1)
    if damping is not None:
        rhs = rhs - v @ damping.T
    return rhs, hess, u


def _check_hessian(hess: Tensor, u: Tensor, eps: float) -> None:
    # One host sync per call: a singular Hessian must stop the run with the offending state, not
    # fill the weights with NaNs. These models train in float64 on the CPU, where it costs nothing.
    h = hess.detach()
    smallest = h[:, 0, 0].abs() if h.shape[-1] == 1 else torch.linalg.eigvalsh(h).abs().min(dim=-1).values
    bad = ~torch.isfinite(smallest) | (smallest <= eps)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        d = u.shape[-1] // 2
        state = u[i].detach().cpu().tolist()
        raise SingularLagrangianError(
            f"singular Lagrangian Hessian ∂²L/∂q̇²: smallest |eigenvalue| {float(smallest[i]):.3g} "
            f"<= hessian_eps={eps:g} at q={[round(x, 6) for x in state[:d]]}, "
            f"q̇={[round(x, 6) for x in state[d:]]} ({int(bad.sum())} of {len(bad)} states); "
            "the learned L is degenerate there: lower lr, train in float64 or change the architecture"
        )


def euler_lagrange_residual_loss(
    lagrangian: Callable[[Tensor], Tensor], u: Tensor, du: Tensor, damping: Tensor | None = None
) -> Tensor:
    """The LNN residual objective: ``mean ‖H q̈_data − rhs‖² + (mean tr H / d − 1)²``.

    ``H = ∂²L/∂q̇²``; the second term fixes L's scale (L and c·L give the same motion). Needs no
    inverse of H, so it trains where H passes near singular. ``du`` holds ``(q̇, q̈)`` data.
    """
    d = u.shape[-1] // 2
    rhs, hess, _ = euler_lagrange_terms(lagrangian, u, create_graph=True, damping=damping)
    residual = (hess @ du[:, d:].unsqueeze(-1)).squeeze(-1) - rhs
    return residual.pow(2).mean() + (torch.diagonal(hess, dim1=-2, dim2=-1).mean() - 1.0) ** 2
