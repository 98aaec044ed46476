"""SBML ``delay()`` on the generated (numpy) math: the method of steps for constant delays.

A delay differential equation ``y'(t) = f(t, y(t), e(t − τ))`` with constant ``τ`` is an ODE on
each interval ``[kτ, (k+1)τ]`` once the history before it is known: there ``e(t − τ)`` reads the
dense output of the intervals already solved, and before t = 0 the initial state (the history the
SBML Test Suite assumes). Each interval is one Radau solve with the delayed values as extra
constants of the generated field (their derivative with respect to the current state is zero, so
the generated Jacobian stays exact), and interval ends fall on the points where the solution's
derivatives jump. Several delays step by the smallest. Hand-written because neither roadrunner
nor scipy integrates delays.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import numpy as np
import sympy as sp

from stiffml.sbml.document import SBMLUnsupported
from stiffml.sbml.math import T, Generated, ModelMath
from stiffml.solvers.scipy_solvers import Radau
from stiffml.systems.base import SolveError


class DelaySimulator:
    """Integrate a model whose right-hand side holds ``delay()`` terms.

    Args:
        math: The model's sympy form, its delay terms registered (observables generated first).
        generated: Functions generated after every delay term was registered.
        label: For messages.
    """

    def __init__(self, math: ModelMath, generated: Generated, label: str) -> None:
        self.math, self.generated, self.label = math, generated, label
        ys, cs, rename = math._arguments()
        m = len(math.constant_ids)
        self.values = [sp.lambdify([T, ys, cs[:m]], e.xreplace(rename), modules="numpy") for e, _ in math.delay_terms]
        self.taus = [sp.lambdify([cs[:m]], tau.xreplace(rename), modules="numpy") for _, tau in math.delay_terms]

    def run(self, y0: np.ndarray, c: np.ndarray, times: np.ndarray, rtol: float, atol: float) -> tuple[np.ndarray, Callable]:
        """States at ``times`` (from t = 0) and ``delayed(t)`` → the delayed values at ``t``."""
        c = list(np.asarray(c, dtype=np.float64))
        taus = [float(f(c)) for f in self.taus]
        for (value, tau), d in zip(self.math.delay_terms, taus):
            if not (np.isfinite(d) and d > 0):
                raise SBMLUnsupported(f"{self.label}: delay({value}, {tau}) has the delay {d:g}; the method of "
                                      "steps needs a positive, finite delay")
        y0 = np.asarray(y0, dtype=np.float64)
        n = y0.size
        starts: list[float] = []
        pieces: list[Callable] = []

        def state_at(s: float) -> np.ndarray:
            if s <= 0.0 or not pieces:
                return y0
            k = max(bisect.bisect_right(starts, s) - 1, 0)
            return pieces[k](s)

        def delayed(t: float) -> list[float]:
            return [float(f(t - d, state_at(t - d), c)) for f, d in zip(self.values, taus)]

        gen = self.generated

        def fun(t: float, y: np.ndarray) -> np.ndarray:
            return np.asarray(gen.rhs(t, y, c + delayed(t)), dtype=np.float64).reshape(-1)

        def jac(t: float, y: np.ndarray) -> np.ndarray:
            out = np.zeros((n, n))
            if len(gen.jac_rows):
                out[gen.jac_rows, gen.jac_cols] = np.asarray(gen.jac_entries(t, y, c + delayed(t)), dtype=np.float64)
            return out

        t_end = float(times[-1]) if times.size else 0.0
        step = min(taus)
        t, y = 0.0, y0.copy()
        while t < t_end and n:
            t1 = min(t + step, t_end)
            sol = Radau().solve_ivp(fun, (t, t1), y, rtol, atol, jac=jac, dense_output=True)
            if sol.status != 0:
                raise SolveError(f"{self.label}: the delay integration failed at t={sol.t[-1]:.4g}: {sol.message}")
            starts.append(t)
            pieces.append(sol.sol)
            t, y = t1, np.asarray(sol.y[:, -1], dtype=np.float64)
        out = np.stack([state_at(float(s)) if s > 0 else y0 for s in times]) if times.size else np.zeros((0, n))
        return out.reshape(times.size, n), delayed
