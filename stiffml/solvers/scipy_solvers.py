"""scipy's stiff solvers as :class:`~stiffml.solvers.base.Solver` objects.

They integrate numpy right-hand sides in float64 (the reference solves of every system, free runs
of learned fields with the field's Jacobian by autograd) through :func:`scipy.integrate.solve_ivp`.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.integrate import solve_ivp

from stiffml.solvers.base import Solver, check_tolerances


class ScipySolver(Solver):
    """A stiff method of :func:`scipy.integrate.solve_ivp`.

    Args:
        first_step: The first step size; ``None``: scipy's choice.
        max_step: The largest step allowed (``inf``: unbounded); bound it when a forcing or an
            event is narrower than the solver would notice.
    """

    backend: ClassVar[str] = "scipy"
    implicit = True
    events = True
    #: solve_ivp's method name.
    method: ClassVar[str]
    #: Whether the method can call a vectorised right-hand side on several states at once.
    vectorizes: ClassVar[bool] = True
    #: Whether the method takes only a dense Jacobian (not a sparse one).
    dense_jacobian_only: ClassVar[bool] = False

    def __init__(self, first_step: float | None = None, max_step: float = math.inf) -> None:
        if first_step is not None and not first_step > 0:
            raise ValueError(f"first_step must be positive, got {first_step}")
        if not max_step > 0:
            raise ValueError(f"max_step must be positive, got {max_step}")
        self.first_step = first_step
        self.max_step = max_step

    def options(self) -> dict[str, Any]:
        return {"first_step": self.first_step, "max_step": self.max_step}

    def check(self, rtol: float, atol: Any) -> None:
        check_tolerances(rtol, atol)

    def solve_ivp(
        self,
        rhs: Callable[[float, np.ndarray], np.ndarray],
        t_span: tuple[float, float],
        y0: np.ndarray,
        rtol: float,
        atol: Any,
        t_eval: np.ndarray | None = None,
        jac: Callable | None = None,
        sparse_jacobian: bool = False,
        events: Callable | Sequence[Callable] | None = None,
        dense_output: bool = False,
        vectorized: bool = False,
    ) -> Any:
        """:func:`scipy.integrate.solve_ivp` with this method and its options.

        Args:
            rhs: ``f(t, y)``.
            t_span: ``(t0, t1)``.
            y0: Initial state.
            rtol: Relative tolerance.
            atol: Absolute tolerance, scalar or one per state.
            t_eval: Output times.
            jac: The Jacobian ``df/dy(t, y)``, dense or sparse.
            sparse_jacobian: ``jac`` returns a sparse matrix (a method that takes only dense ones
                then estimates its own).
            events: Event functions, as solve_ivp takes them.
            dense_output: Keep the interpolant.
            vectorized: ``rhs`` takes several states as columns of ``y`` (used where the method
                can: not LSODA).

        Returns:
            solve_ivp's result.
        """
        self.check(rtol, atol)
        kw: dict[str, Any] = {"max_step": self.max_step}
        if self.first_step is not None:
            kw["first_step"] = self.first_step
        if jac is not None and not (sparse_jacobian and self.dense_jacobian_only):
            kw["jac"] = jac
        return solve_ivp(
            rhs, t_span, y0, method=self.method, t_eval=t_eval, rtol=rtol, atol=atol, events=events,
            dense_output=dense_output, vectorized=vectorized and self.vectorizes, **kw,
        )


class Radau(ScipySolver):
    """Radau IIA of order 5 (scipy): implicit Runge–Kutta, L-stable; the reference default."""

    name = "Radau"
    method = "Radau"


class BDF(ScipySolver):
    """Variable-order backward differentiation formulas, orders 1–5 (scipy)."""

    name = "BDF"
    method = "BDF"


class LSODA(ScipySolver):
    """ODEPACK's LSODA (scipy): switches between Adams and BDF as stiffness demands.

    It takes only a dense Jacobian and calls the right-hand side on one state at a time.
    """

    name = "LSODA"
    method = "LSODA"
    vectorizes = False
    dense_jacobian_only = True
