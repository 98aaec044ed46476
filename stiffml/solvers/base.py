"""The solver interface: one small class per method, its capabilities declared, not probed.

Modelled on diffrax: every integration method stiffml uses — scipy's stiff solvers, CVODE through
libroadrunner, the differentiable Rosenbrock23, torchdiffeq's methods — is a :class:`Solver`
subclass that says what it can do (implicit, adaptive, differentiable, batched, step budget,
events, adjoint). Callers look a method up by name in :mod:`stiffml.solvers.registry` and branch on
its declared capabilities, so a new method is one class and one registry line.

Tolerances are not part of a solver: they belong to the call (a free run, a reference solve, a
training solve), as diffrax keeps them in the step-size controller. A solver object holds only the
method's own options (a fixed step, a first step, a largest step).

Torch-free, so the numerical core (:mod:`stiffml.systems`) can use it without importing torch.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

Backend = Literal["scipy", "torch", "roadrunner"]
CAPABILITIES = ("implicit", "adaptive", "differentiable", "batched", "step_budget", "events", "adjoint")


class Solver(abc.ABC):
    """An integration method: its name, its backend and what it can do.

    Class attributes (the declared capabilities):
        name: The registry name (``Radau``, ``rosenbrock23``, ``dopri5`` …).
        backend: ``scipy`` (numpy right-hand sides, float64), ``torch`` (torch right-hand sides on
            any device and dtype) or ``roadrunner`` (an SBML document, compiled by libroadrunner).
        implicit: Handles stiff systems (implicit or linearly implicit steps).
        adaptive: Chooses its step from error estimates and tolerances.
        differentiable: Gradients flow through the solve by torch autograd.
        batched: Integrates a batch of independent states ``(B, n)`` in one call.
        step_budget: Honours a step budget (``max_steps``) and raises ``StepBudgetExceeded``.
        budget_per: What the budget counts: ``solve`` (all steps) or ``interval`` (steps per
            output interval, torchdiffeq's ``max_num_steps``); ``None`` without a budget.
        events: Locates events (terminal conditions, SBML triggers) during the solve.
        adjoint: Offers adjoint gradients (torchdiffeq's ``odeint_adjoint``).
    """

    name: ClassVar[str]
    backend: ClassVar[Backend]
    implicit: ClassVar[bool] = False
    adaptive: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    step_budget: ClassVar[bool] = False
    budget_per: ClassVar[Literal["solve", "interval"] | None] = None
    events: ClassVar[bool] = False
    adjoint: ClassVar[bool] = False

    @classmethod
    def capabilities(cls) -> dict[str, bool]:
        """The declared capabilities, by name (:data:`CAPABILITIES`)."""
        return {c: bool(getattr(cls, c)) for c in CAPABILITIES}

    def options(self) -> dict[str, Any]:
        """The method's own options (constructor arguments) as set on this object."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.options() == other.options()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options().items()))))

    @abc.abstractmethod
    def check(self, rtol: float, atol: Any) -> None:
        """Validate the call's settings with one-line errors naming the bad value."""


def check_tolerances(rtol: float, atol: Any) -> None:
    """Positive tolerances (``atol`` may be one per state)."""
    import numpy as np

    if not rtol > 0 or not np.all(np.asarray(atol, dtype=float) > 0):
        raise ValueError(f"solver tolerances must be positive, got rtol={rtol}, atol={atol}")
