"""Torch solvers as :class:`~stiffml.solvers.base.Solver` objects — the differentiable stiff
Rosenbrock23 (:mod:`stiffml.solvers.rosenbrock`) and torchdiffeq's methods — and
:func:`integrate`, the front end that solves with one of them by name or object.

They integrate batched torch right-hand sides ``func(t, y (B, n)) → (B, n)`` on any device and
dtype, with gradients by backpropagation through the steps (or torchdiffeq's adjoint).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from stiffml.solvers.base import Solver, check_tolerances
from stiffml.solvers.registry import get_solver, solver_names
from stiffml.solvers.rosenbrock import StepBudgetExceeded, rosenbrock23


class TorchSolver(Solver):
    """A solver of batched torch right-hand sides."""

    backend: ClassVar[str] = "torch"
    batched = True
    differentiable = True

    def check(self, rtol: float, atol: Any, adjoint: bool = False) -> None:
        check_tolerances(rtol, atol)
        if adjoint and not self.adjoint:
            raise ValueError(f"adjoint gradients are available with torchdiffeq's solvers, not {self.name}")

    @abc.abstractmethod
    def integrate(
        self,
        func: Callable[[Tensor, Tensor], Tensor],
        y0: Tensor,
        t: Tensor,
        rtol: float,
        atol: float,
        max_steps: int = 100_000,
        adjoint: bool = False,
        params: tuple[Tensor, ...] = (),
        stats: dict | None = None,
    ) -> Tensor:
        """Solve ``dy/dt = func(t, y)`` from ``y0`` (B, n) at times ``t``; returns (T, B, n).

        Args:
            func: Batched right-hand side with independent samples.
            y0: Initial states.
            t: Output times, increasing.
            rtol: Relative tolerance (adaptive methods).
            atol: Absolute tolerance (adaptive methods).
            max_steps: Step budget (see ``budget_per``); exceeding it raises ``StepBudgetExceeded``.
            adjoint: Gradients by the adjoint method (methods with ``adjoint``).
            params: Parameters of ``func`` (needed by the adjoint method).
            stats: If a dict, receives solver statistics.
        """


class Rosenbrock23(TorchSolver):
    """stiffml's differentiable, adaptive, batched Rosenbrock23 (MATLAB's ode23s W-method),
    the stiff solver Kim et al. (2021) trained with; its Jacobian comes from autograd."""

    name = "rosenbrock23"
    implicit = True
    step_budget = True
    budget_per = "solve"

    def integrate(self, func, y0, t, rtol, atol, max_steps=100_000, adjoint=False, params=(), stats=None):
        self.check(rtol, atol, adjoint)
        return rosenbrock23(func, y0, t, rtol=rtol, atol=atol, max_steps=max_steps, stats=stats)


class TorchDiffEqSolver(TorchSolver):
    """A method of torchdiffeq's ``odeint`` (explicit or fixed-point Adams: not for stiff fields).

    Args:
        step_size: The step of fixed-step methods (required by them, ignored by adaptive ones).
    """

    adjoint = True
    #: torchdiffeq's method name.
    method: ClassVar[str]

    def __init__(self, step_size: float | None = None) -> None:
        if step_size is not None and not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.step_size = step_size

    def options(self) -> dict[str, Any]:
        return {"step_size": self.step_size}

    def check(self, rtol: float, atol: Any, adjoint: bool = False) -> None:
        super().check(rtol, atol, adjoint)
        if not self.adaptive and self.step_size is None:
            raise ValueError(f"fixed-step solver {self.name!r} needs step_size")

    def integrate(self, func, y0, t, rtol, atol, max_steps=100_000, adjoint=False, params=(), stats=None):
        import torchdiffeq

        self.check(rtol, atol, adjoint)
        options: dict = {"max_num_steps": max_steps} if self.adaptive else {"step_size": self.step_size}
        counter = [0]

        def counted(tt: Tensor, yy: Tensor) -> Tensor:
            counter[0] += 1
            return func(tt, yy)

        try:
            if adjoint:
                module = _FuncModule(counted, params)
                out = torchdiffeq.odeint_adjoint(module, y0, t, rtol=rtol, atol=atol, method=self.method,
                                                 options=options, adjoint_params=params)
            else:
                out = torchdiffeq.odeint(counted, y0, t, rtol=rtol, atol=atol, method=self.method, options=options)
        except AssertionError as err:
            if "max_num_steps" in str(err):
                raise StepBudgetExceeded(f"{self.name} exceeded its step budget of {max_steps} steps") from None
            raise
        if stats is not None:
            stats.update(nfev=counter[0])
        return out


class _Adaptive(TorchDiffEqSolver):
    step_budget = True
    budget_per = "interval"


class _Fixed(TorchDiffEqSolver):
    adaptive = False


class Dopri5(_Adaptive):
    """Dormand–Prince 5(4), adaptive (torchdiffeq)."""

    name = method = "dopri5"


class Dopri8(_Adaptive):
    """Dormand–Prince 8(7), adaptive (torchdiffeq)."""

    name = method = "dopri8"


class Bosh3(_Adaptive):
    """Bogacki–Shampine 3(2), adaptive (torchdiffeq)."""

    name = method = "bosh3"


class Fehlberg2(_Adaptive):
    """Runge–Kutta–Fehlberg 2(1), adaptive (torchdiffeq)."""

    name = method = "fehlberg2"


class AdaptiveHeun(_Adaptive):
    """Heun 2(1), adaptive (torchdiffeq)."""

    name = method = "adaptive_heun"


class Euler(_Fixed):
    """Forward Euler, fixed step (torchdiffeq)."""

    name = method = "euler"


class Midpoint(_Fixed):
    """Explicit midpoint, fixed step (torchdiffeq)."""

    name = method = "midpoint"


class RK4(_Fixed):
    """Classical Runge–Kutta of order 4 (3/8 rule), fixed step (torchdiffeq)."""

    name = method = "rk4"


class Heun2(_Fixed):
    """Heun's second-order method, fixed step (torchdiffeq)."""

    name = method = "heun2"


class Heun3(_Fixed):
    """Heun's third-order method, fixed step (torchdiffeq)."""

    name = method = "heun3"


class ExplicitAdams(_Fixed):
    """Adams–Bashforth, fixed step (torchdiffeq)."""

    name = method = "explicit_adams"


class ImplicitAdams(_Fixed):
    """Adams–Bashforth–Moulton, fixed step (torchdiffeq). Its corrector is iterated to a fixed
    point, not by Newton, so it does not handle stiffness: ``implicit`` stays False."""

    name = method = "implicit_adams"


class FixedAdams(_Fixed):
    """Adams–Bashforth–Moulton predictor–corrector, fixed step (torchdiffeq)."""

    name = method = "fixed_adams"


#: The torch methods by name (the registry's torch backend).
SOLVERS = solver_names(backend="torch")
TORCHDIFFEQ_SOLVERS = tuple(n for n in SOLVERS if n != "rosenbrock23")
#: Fixed-step torch methods (they need ``step_size``).
FIXED_STEP = solver_names(backend="torch", adaptive=False)


def torch_solver(method: str | Solver, step_size: float | None = None) -> TorchSolver:
    """The torch method named ``method`` (with ``step_size`` for fixed-step ones), or ``method``
    itself when it is already a solver object."""
    if isinstance(method, Solver):
        return get_solver(method, backend="torch")  # type: ignore[return-value]
    fixed = method in FIXED_STEP
    return get_solver(method, backend="torch", **({"step_size": step_size} if fixed else {}))  # type: ignore[return-value]


def check_solver(method: str | Solver, rtol: float, atol: float, step_size: float | None, adjoint: bool = False) -> None:
    """Validate solver settings with one-line errors listing what is allowed."""
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    torch_solver(method, step_size).check(rtol, atol, adjoint)


def integrate(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    method: str | Solver = "rosenbrock23",
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
        method: A torch method by name (``rosenbrock23``: stiff, differentiable; or a torchdiffeq
            method) or a :class:`~stiffml.solvers.torch_solvers.TorchSolver` object.
        rtol: Relative tolerance (adaptive solvers).
        atol: Absolute tolerance (adaptive solvers).
        step_size: Step of the fixed-step methods named by string.
        adjoint: Gradients by torchdiffeq's adjoint method (``odeint_adjoint``) instead of
            backpropagation through the solver; torchdiffeq solvers only.
        max_steps: Step budget of adaptive solvers; exceeding it raises ``StepBudgetExceeded``.
            Rosenbrock23 counts steps over the whole solve; torchdiffeq counts them per output
            interval (its ``max_num_steps``), so a long output grid allows proportionally more.
        params: Parameters of ``func`` (needed by the adjoint method).
        stats: If a dict, receives solver statistics (steps taken, function evaluations).
    """
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    solver = torch_solver(method, step_size)
    return solver.integrate(func, y0, t, rtol=rtol, atol=atol, max_steps=max_steps, adjoint=adjoint,
                            params=params, stats=stats)


class _FuncModule(torch.nn.Module):
    """Wraps a function for ``odeint_adjoint`` (which wants an nn.Module)."""

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor], params: tuple[Tensor, ...]) -> None:
        super().__init__()
        self.func = func
        self._params = params

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.func(t, y)
