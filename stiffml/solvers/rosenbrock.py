"""A differentiable, adaptive, batched Rosenbrock23 solver in PyTorch.

Hand-written because no PyTorch library ships a differentiable stiff solver: torchdiffeq 0.2.5
has explicit and Adams methods and a forward-only scipy wrapper. This is the 2(3) W-method of
MATLAB's ode23s (Shampine & Reichelt 1997), the Rosenbrock23 that Kim et al. (2021) used to
train stiff neural ODEs: linearly implicit (one LU of ``I - h d J`` per step, no Newton
iterations), L-stable, with an embedded third-order error estimate. Gradients flow through every
operation (Jacobian by ``torch.func.jacrev``, LU solves), i.e. discretise-then-optimise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

D = 1.0 / (2.0 + math.sqrt(2.0))
E32 = 6.0 + math.sqrt(2.0)


class StepBudgetExceeded(RuntimeError):
    """An adaptive solve needed more steps than allowed."""


def batched_jacobian(func: Callable[[Tensor, Tensor], Tensor], t: Tensor, y: Tensor) -> Tensor:
    """Per-sample Jacobians ``d func(t, y)_b / d y_b``, shape (B, n, n).

    Samples must be independent (no batch coupling such as BatchNorm in training mode): then
    the Jacobian of the batch sum w.r.t. the batch gives every per-sample Jacobian in n
    vector-Jacobian products.
    """
    jac = torch.func.jacrev(lambda yy: func(t, yy).sum(0))(y)  # (n, B, n)
    return jac.permute(1, 0, 2)


def rosenbrock23(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    first_step: float | None = None,
    stats: dict | None = None,
) -> Tensor:
    """Integrate ``dy/dt = func(t, y)`` for a batch of states and return them at times ``t``.

    Args:
        func: Batched right-hand side, (scalar t, (B, n)) → (B, n); samples independent.
        y0: Initial states (B, n).
        t: Increasing output times (T,), ``t[0]`` the initial time.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        max_steps: Step budget over the whole solve (accepted and rejected).
        first_step: Initial step size (default: from the initial derivative).
        stats: If a dict, receives ``steps`` (accepted), ``rejected`` and ``jacobians``.

    Returns:
        States at ``t``, shape (T, B, n).

    Raises:
        StepBudgetExceeded: More than ``max_steps`` steps were needed.
    """
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"tolerances must be positive, got rtol={rtol}, atol={atol}")
    n = y0.shape[-1]
    eye = torch.eye(n, dtype=y0.dtype, device=y0.device)
    out = [y0]
    y = y0
    tc = t[0]
    f0 = func(tc, y)
    span = float(t[-1] - t[0])
    if first_step is None:
        scale = atol + rtol * y.detach().abs()
        d1 = float((f0.detach() / scale).pow(2).mean().sqrt())
        h = 0.01 * span if d1 == 0 else min(0.01 * span, 0.01 / d1)
        # a fast transient from a state near zero (|f0| / atol huge) made the estimate fall under
        # the underflow floor below, so the solve failed on its first step: start at the floor
        # times 100 instead, from where accepted steps grow h fivefold each
        h = max(h, min(0.01 * span, 1e-12 * max(1.0, abs(float(t[0])))))
    else:
        h = first_step
    steps = rejected = jacs = 0
    t_now = float(t[0])
    for i in range(1, len(t)):
        t_target = float(t[i])
        while t_now < t_target:
            if steps + rejected >= max_steps:
                raise StepBudgetExceeded(
                    f"rosenbrock23 exceeded its step budget of {max_steps} steps at t={t_now:.4g} "
                    f"(target {t_target:.4g}, last step size {h:.3g})"
                )
            last = t_target - t_now <= h * (1 + 1e-12)
            h_try = t_target - t_now if last else h
            tc = torch.as_tensor(t_now, dtype=y.dtype, device=y.device)
            jac = batched_jacobian(func, tc, y)
            jacs += 1
            lu = torch.linalg.lu_factor(eye - (h_try * D) * jac)

            def wsolve(rhs: Tensor) -> Tensor:
                return torch.linalg.lu_solve(*lu, rhs.unsqueeze(-1)).squeeze(-1)

            k1 = wsolve(f0)
            f1 = func(tc + 0.5 * h_try, y + 0.5 * h_try * k1)
            k2 = wsolve(f1 - k1) + k1
            y_new = y + h_try * k2
            f2 = func(tc + h_try, y_new)
            k3 = wsolve(f2 - E32 * (k2 - f1) - 2.0 * (k1 - f0))
            err = (h_try / 6.0) * (k1 - 2.0 * k2 + k3)
            scale = atol + rtol * torch.maximum(y.detach().abs(), y_new.detach().abs())
            err_norm = float((err.detach() / scale).pow(2).mean().sqrt())
            if not math.isfinite(err_norm):
                err_norm = float("inf")
            if err_norm <= 1.0:
                steps += 1
                t_now = t_target if last else t_now + h_try
                y, f0 = y_new, f2  # first same as last
            else:
                rejected += 1
            factor = 5.0 if err_norm == 0 else min(5.0, max(0.2, 0.8 * err_norm ** (-1.0 / 3.0)))
            if err_norm <= 1.0 and last and h_try < h:
                h = max(h, h_try * factor)  # a step cut short to hit an output time says nothing against h
            else:
                h = h_try * factor
            if h < 1e-14 * max(1.0, abs(t_now)):
                raise StepBudgetExceeded(f"rosenbrock23 step size underflow at t={t_now:.4g} (h={h:.3g})")
        out.append(y)
    if stats is not None:
        stats.update(steps=steps, rejected=rejected, jacobians=jacs)
    return torch.stack(out)
