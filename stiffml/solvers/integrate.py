"""One front end over torchdiffeq's solvers and the Rosenbrock23 stiff solver."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from stiffml.solvers.rosenbrock import StepBudgetExceeded, rosenbrock23

TORCHDIFFEQ_SOLVERS = (
    "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "euler", "midpoint", "rk4",
    "heun2", "heun3", "explicit_adams", "implicit_adams", "fixed_adams",
)
FIXED_STEP = ("euler", "midpoint", "rk4", "heun2", "heun3", "explicit_adams", "implicit_adams", "fixed_adams")
SOLVERS = ("rosenbrock23", *TORCHDIFFEQ_SOLVERS)


def check_solver(method: str, rtol: float, atol: float, step_size: float | None, adjoint: bool = False) -> None:
    """Validate solver settings with one-line errors listing what is allowed."""
    if method not in SOLVERS:
        raise ValueError(f"unknown ODE solver {method!r}; valid: {list(SOLVERS)}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"solver tolerances must be positive, got rtol={rtol}, atol={atol}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if method in FIXED_STEP and step_size is None:
        raise ValueError(f"fixed-step solver {method!r} needs step_size")
    if adjoint and method == "rosenbrock23":
        raise ValueError("adjoint gradients are available with torchdiffeq's solvers, not rosenbrock23")


def integrate(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    method: str = "rosenbrock23",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    step_size: float | None = None,
    adjoint: bool = False,
    max_steps: int = 100_000,
    params: tuple[Tensor, ...] = (),
    stats: dict | None = None,
) -> Tensor:
    """Solve ``dy/dt = func(t, y)`` for a batch ``y0`` (B, n) at times ``t``; returns (T, B, n).

    Args:
        func: Batched right-hand side with independent samples.
        y0: Initial states.
        t: Output times, increasing.
        method: ``rosenbrock23`` (stiff, differentiable) or a torchdiffeq solver.
        rtol: Relative tolerance (adaptive solvers).
        atol: Absolute tolerance (adaptive solvers).
        step_size: Step of the fixed-step solvers.
        adjoint: Gradients by torchdiffeq's adjoint method (``odeint_adjoint``) instead of
            backpropagation through the solver; torchdiffeq solvers only.
        max_steps: Step budget of adaptive solvers; exceeding it raises ``StepBudgetExceeded``.
            Rosenbrock23 counts steps over the whole solve; torchdiffeq counts them per output
            interval (its ``max_num_steps``), so a long output grid allows proportionally more.
        params: Parameters of ``func`` (needed by the adjoint method).
        stats: If a dict, receives solver statistics (steps taken, function evaluations).
    """
    check_solver(method, rtol, atol, step_size, adjoint)
    if method == "rosenbrock23":
        return rosenbrock23(func, y0, t, rtol=rtol, atol=atol, max_steps=max_steps, stats=stats)
    import torchdiffeq

    options: dict = {"step_size": step_size} if method in FIXED_STEP else {"max_num_steps": max_steps}
    counter = [0]

    def counted(tt: Tensor, yy: Tensor) -> Tensor:
        counter[0] += 1
        return func(tt, yy)

    try:
        if adjoint:
            module = _FuncModule(counted, params)
            out = torchdiffeq.odeint_adjoint(
                module, y0, t, rtol=rtol, atol=atol, method=method, options=options, adjoint_params=params
            )
        else:
            out = torchdiffeq.odeint(counted, y0, t, rtol=rtol, atol=atol, method=method, options=options)
    except AssertionError as err:
        if "max_num_steps" in str(err):
            raise StepBudgetExceeded(f"{method} exceeded its step budget of {max_steps} steps") from None
        raise
    if stats is not None:
        stats.update(nfev=counter[0])
    return out


class _FuncModule(torch.nn.Module):
    """Wraps a function for ``odeint_adjoint`` (which wants an nn.Module)."""

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor], params: tuple[Tensor, ...]) -> None:
        super().__init__()
        self.func = func
        self._params = params

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.func(t, y)
