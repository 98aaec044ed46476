"""Forward-sensitivity solves of a compiled model: one experiment (an optional pre-equilibration to
steady state, then the simulation condition), its states at the measurement times and their
derivatives in the problem's parameters.

The gradient is computed by forward sensitivities, ``S' = f_y S + f_c dc/dv`` integrated beside the
state with scipy's BDF (the augmented Jacobian block-diagonal in ``f_y``, as CVODES's simultaneous
corrector has it; the sensitivities ride on the state's error test, CVODES's ``errconS = false``).
Measured against central finite differences it is as accurate as the solve (tests/test_petab.py) and
costs one solve per gradient (``bench/petab_nllh.py``: 1.1–3× one nllh on the Benchmark problems).
Autograd through the torch Rosenbrock23 would give the derivative of a third-order discretisation,
which needs far more steps at the tolerances a likelihood needs; it was not benchmarked here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sps
from scipy.integrate import solve_ivp

from stiffml.petab.model import CompiledModel
from stiffml.systems.base import SolveError

STEADY_STATE_HORIZON = 1e10
SENS_ATOL = 1e30


@dataclasses.dataclass
class Stage:
    """One condition's inputs: ``u`` with ``v[v_idx]`` written at ``u_pos``.

    Attributes:
        name: The condition id (for messages).
        u: Inputs with every fixed value in place.
        u_pos: Entries of ``u`` taken from the dynamic parameters.
        v_idx: Which dynamic parameter each of them takes.
        overridden: Model entities this condition overrides.
    """

    name: str
    u: np.ndarray
    u_pos: np.ndarray
    v_idx: np.ndarray
    overridden: frozenset[str]

    def inputs(self, v: np.ndarray) -> np.ndarray:
        u = self.u.copy()
        u[self.u_pos] = v[self.v_idx]
        return u

    def du_dv(self, n_u: int, n_v: int) -> np.ndarray:
        out = np.zeros((n_u, n_v))
        out[self.u_pos, self.v_idx] = 1.0
        return out


@dataclasses.dataclass
class Solution:
    """States at the output times (``x``: ``[T, n]``), the simulation condition's constants
    (``c``), and, with sensitivities, ``dx: [T, n, D]`` and ``dc: [C, D]``."""

    x: np.ndarray
    c: np.ndarray
    dx: np.ndarray | None
    dc: np.ndarray | None


class Experiment:
    """A pre-equilibration (optional) and a simulation condition, sampled at ``times``.

    Args:
        model: The compiled model.
        sim: The simulation condition.
        pre: The pre-equilibration condition, or ``None``.
        times: Finite output times (increasing, ≥ 0).
        steady_state: Whether a last output row is the simulation condition's steady state
            (measurements at ``time = inf``).
        n_v: Number of dynamic parameters.
    """

    def __init__(self, model: CompiledModel, sim: Stage, pre: Stage | None, times: np.ndarray,
                 steady_state: bool, n_v: int) -> None:
        self.model, self.sim, self.pre = model, sim, pre
        self.times = np.asarray(times, dtype=np.float64)
        self.steady_state = steady_state
        self.n_v = n_v
        self.label = sim.name if pre is None else f"{pre.name} → {sim.name}"
        # states that the simulation condition sets again after pre-equilibration
        self.reset = np.array([i for i, s in enumerate(model.state_ids) if s in sim.overridden], dtype=np.intp)

    def solve(self, v: np.ndarray, sensitivities: bool, rtol: float = 1e-8, atol: float = 1e-12) -> Solution:
        """Integrate at the dynamic parameter values ``v`` (linear scale)."""
        m = self.model
        n_s = self.n_v if sensitivities else 0
        if self.pre is not None:
            u = self.pre.inputs(v)
            start = m.start(self.pre.overridden)
            c, dc = self._constants(start, self.pre, u, n_s)
            y = np.asarray(start.y0(u), dtype=np.float64)
            s = start.y0_du(u) @ self.pre.du_dv(m.n_u, self.n_v) if n_s else np.zeros((m.n, 0))
            y, s = self._steady(0.0, y, s, c, dc, rtol, atol, self.pre.name)
        u = self.sim.inputs(v)
        start = m.start(self.sim.overridden)
        c, dc = self._constants(start, self.sim, u, n_s)
        y_new = np.asarray(start.y0(u), dtype=np.float64)
        s_new = start.y0_du(u) @ self.sim.du_dv(m.n_u, self.n_v) if n_s else np.zeros((m.n, 0))
        if self.pre is None:
            y, s = y_new, s_new
        else:
            y[self.reset], s[self.reset] = y_new[self.reset], s_new[self.reset]
        bad = [m.state_ids[i] for i in np.flatnonzero(~np.isfinite(y))]
        if bad:
            raise SolveError(f"{self.label}: no finite initial value for {bad}")
        xs, ss = self._integrate(y, s, c, dc, rtol, atol)
        if self.steady_state:
            t_end = float(self.times[-1]) if self.times.size else 0.0
            y_end, s_end = (xs[-1], ss[-1]) if self.times.size else (y, s)
            y_ss, s_ss = self._steady(t_end, y_end, s_end, c, dc, rtol, atol, self.sim.name)
            xs = np.concatenate([xs, y_ss[None]])
            ss = np.concatenate([ss, s_ss[None]])
        return Solution(x=xs, c=c, dx=ss if n_s else None, dc=dc if n_s else None)

    # --------------------------------------------------------------------------- internals
    def _constants(self, start: Any, stage: Stage, u: np.ndarray, n_s: int) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(start.c(u), dtype=np.float64).reshape(self.model.n_c)
        dc = start.c_du(u) @ stage.du_dv(self.model.n_u, self.n_v) if n_s else np.zeros((self.model.n_c, 0))
        return c, dc

    def _system(self, c: np.ndarray, dc: np.ndarray):
        m = self.model
        n, d = m.n, dc.shape[1]

        def fun(t: float, z: np.ndarray) -> np.ndarray:
            y = z[:n]
            if not d:
                return m.rhs(t, y, c)
            f, fy, fc = m.rhs_and_jacobians(t, y, c)
            ds = fy @ z[n:].reshape(n, d) + fc @ dc
            return np.concatenate([f, ds.ravel()])

        def jac(t: float, z: np.ndarray) -> Any:
            j = m.f_y(t, z[:n], c)
            if not d:
                return j
            # d(S')/dS is f_y acting on each column of S, i.e. f_y ⊗ I in S's row-major layout;
            # the term in d(S')/dy is left out, as CVODES's simultaneous corrector does
            return sps.block_diag([j, sps.kron(sps.csr_matrix(j), sps.identity(d))], format="csc")

        return fun, jac

    def _integrate(self, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
                   rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
        n, d = self.model.n, dc.shape[1]
        times = self.times
        if times.size == 0:
            return np.zeros((0, n)), np.zeros((0, n, d))
        z0 = np.concatenate([y, s.ravel()])
        if times[-1] == 0.0 or n == 0:
            z = np.repeat(z0[None], times.size, axis=0)
        else:
            fun, jac = self._system(c, dc)
            sol = solve_ivp(fun, (0.0, float(times[-1])), z0, method="BDF", t_eval=times, rtol=rtol,
                            atol=self._atol(atol, d), jac=jac)
            if sol.status != 0 or sol.y.shape[1] != times.size:
                raise SolveError(f"{self.label}: the solver stopped at t={sol.t[-1] if sol.t.size else 0:.4g}: "
                                 f"{sol.message}")
            z = sol.y.T
        if not np.all(np.isfinite(z)):
            raise SolveError(f"{self.label}: the solve returned non-finite values")
        return z[:, :n], z[:, n:].reshape(times.size, n, d)

    def _atol(self, atol: float, d: int) -> np.ndarray:
        # sensitivities ride on the state's steps (CVODES's errconS = false): their own error
        # test would make BDF cut steps for entries that carry no weight in the likelihood
        return np.concatenate([np.full(self.model.n, atol), np.full(self.model.n * d, SENS_ATOL)])

    def _steady(self, t0: float, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
                rtol: float, atol: float, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Integrate until the state (and its sensitivities) stop moving: the weighted RMS norm
        of the augmented field below one at the solve's tolerances."""
        n, d = self.model.n, dc.shape[1]
        if n == 0:
            return y, s
        fun, jac = self._system(c, dc)
        z0 = np.concatenate([y, s.ravel()])

        def settled(t: float, z: np.ndarray) -> float:
            scale = 100 * (atol + rtol * np.abs(z))  # a looser test than the solve's own error
            return float(np.sqrt(np.mean((fun(t, z) / scale) ** 2))) - 1.0

        if settled(t0, z0) < 0:
            return y, s
        settled.terminal = True  # type: ignore[attr-defined]
        settled.direction = -1  # type: ignore[attr-defined]
        sol = solve_ivp(fun, (t0, t0 + STEADY_STATE_HORIZON), z0, method="BDF", rtol=rtol, atol=atol,
                        jac=jac, events=settled)
        if sol.status != 1:
            raise SolveError(f"{name}: no steady state reached by t={t0 + STEADY_STATE_HORIZON:.3g} "
                             f"({sol.message})")
        z = sol.y[:, -1]
        return z[:n], z[n:].reshape(n, d)
