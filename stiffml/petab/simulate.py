"""Forward-sensitivity solves of a compiled model: one experiment (an optional pre-equilibration to
steady state, then the simulation condition), its states at the measurement times and their
derivatives in the problem's parameters.

The gradient is computed by forward sensitivities, ``S' = f_y S + f_c dc/dv`` integrated beside the
state with scipy's BDF (the augmented Jacobian block-diagonal in ``f_y``, as CVODES's simultaneous
corrector has it; the sensitivities ride on the state's error test, CVODES's ``errconS = false``).
Measured against central finite differences it is as accurate as the solve (tests/petab/test_petab.py) and
costs one solve per gradient (``bench/petab_nllh.py``: 1.1–3× one nllh on the Benchmark problems).
Autograd through the torch Rosenbrock23 would give the derivative of a third-order discretisation,
which needs far more steps at the tolerances a likelihood needs; it was not benchmarked here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sps

from stiffml.petab.model import CompiledModel
from stiffml.solvers.scipy_solvers import BDF
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
                 steady_state: bool, n_v: int, events: Any = None) -> None:
        self.model, self.sim, self.pre = model, sim, pre
        self.events = events if events else None  # stiffml.petab.events.TimedEvents
        self.times = np.asarray(times, dtype=np.float64)
        self.steady_state = steady_state
        self.n_v = n_v
        self.label = sim.name if pre is None else f"{pre.name} → {sim.name}"
        # states that the simulation condition sets again after pre-equilibration
        self.reset = np.array([i for i, s in enumerate(model.state_ids) if s in sim.overridden], dtype=np.intp)

    def solve(self, v: np.ndarray, sensitivities: bool, rtol: float = 1e-8, atol: float = 1e-12) -> Solution:
        """Integrate at the dynamic parameter values ``v`` (linear scale)."""
        return self._solve(np.asarray(v, dtype=np.float64)[None], sensitivities, rtol, atol)[0]

    def solve_batch(self, v: np.ndarray, sensitivities: bool, rtol: float = 1e-8,
                    atol: float = 1e-12) -> list[Solution | SolveError]:
        """Integrate at ``K`` sets of dynamic parameter values (``v``: ``[K, n_v]``) in one solve.

        The ``K`` copies of the system are one block-diagonal system sharing the solver's steps,
        so the per-step cost in Python (generated functions, the error test, the LU of the
        Newton matrix) is paid once for all of them rather than ``K`` times. Where the joint solve
        fails, each set is solved alone, so one start that cannot be integrated fails only itself:
        its entry is the :class:`SolveError`.
        """
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        try:
            return list(self._solve(v, sensitivities, rtol, atol))
        except SolveError as err:
            if v.shape[0] == 1:
                return [err]
        # one by one (halving was measured slower: on Crauste a failing set fails again at every level)
        return self.solve_each(v, sensitivities, rtol, atol)

    def solve_each(self, v: np.ndarray, sensitivities: bool, rtol: float = 1e-8,
                   atol: float = 1e-12) -> list[Solution | SolveError]:
        """:meth:`solve_batch`'s result from one solve per set of parameters."""
        out: list[Solution | SolveError] = []
        for row in np.atleast_2d(v):
            try:
                out.append(self._solve(row[None], sensitivities, rtol, atol)[0])
            except SolveError as err:
                out.append(err)
        return out

    # --------------------------------------------------------------------------- internals
    def _solve(self, v: np.ndarray, sensitivities: bool, rtol: float, atol: float) -> list[Solution]:
        m = self.model
        k_count = v.shape[0]
        n_s = self.n_v if sensitivities else 0
        if k_count > 1:
            # one error test covers all K copies as an RMS over their components, so a copy whose
            # own error is e passes when e / sqrt(K) does: tighten by sqrt(K) to keep each copy's
            # own tolerance
            rtol, atol = rtol / np.sqrt(k_count), atol / np.sqrt(k_count)
        if self.pre is not None:
            y, s, c, dc = self._initial(self.pre, v, n_s)
            y, s = self._steady(0.0, y, s, c, dc, rtol, atol, self.pre.name)
        y_new, s_new, c, dc = self._initial(self.sim, v, n_s)
        if self.pre is None:
            y, s = y_new, s_new
        else:
            y[:, self.reset], s[:, self.reset] = y_new[:, self.reset], s_new[:, self.reset]
        bad = [m.state_ids[i] for i in np.flatnonzero(~np.all(np.isfinite(y), axis=0))]
        if bad:
            raise SolveError(f"{self.label}: no finite initial value for {bad}")
        xs, ss = self._integrate(y, s, c, dc, rtol, atol)
        if self.steady_state:
            t_end = float(self.times[-1]) if self.times.size else 0.0
            y_end, s_end = (xs[:, -1], ss[:, -1]) if self.times.size else (y, s)
            y_ss, s_ss = self._steady(t_end, y_end, s_end, c, dc, rtol, atol, self.sim.name)
            xs = np.concatenate([xs, y_ss[:, None]], axis=1)
            ss = np.concatenate([ss, s_ss[:, None]], axis=1)
        return [Solution(x=xs[k], c=c[k], dx=ss[k] if n_s else None, dc=dc[k] if n_s else None)
                for k in range(k_count)]

    def _initial(self, stage: Stage, v: np.ndarray, n_s: int) -> tuple[np.ndarray, ...]:
        """Initial states ``[K, n]``, their sensitivities ``[K, n, n_s]``, constants ``[K, n_c]``
        and theirs ``[K, n_c, n_s]`` of ``stage`` at each row of ``v``."""
        m = self.model
        start = m.start(stage.overridden)
        du_dv = stage.du_dv(m.n_u, self.n_v)
        ys, ss, cs, dcs = [], [], [], []
        for row in v:
            u = stage.inputs(row)
            ys.append(np.asarray(start.y0(u), dtype=np.float64).reshape(m.n))
            cs.append(np.asarray(start.c(u), dtype=np.float64).reshape(m.n_c))
            ss.append(start.y0_du(u) @ du_dv if n_s else np.zeros((m.n, 0)))
            dcs.append(start.c_du(u) @ du_dv if n_s else np.zeros((m.n_c, 0)))
        return np.stack(ys), np.stack(ss), np.stack(cs), np.stack(dcs)

    def _system(self, c: np.ndarray, dc: np.ndarray):
        """Field and Jacobian of ``K`` copies (``c``: ``[K, n_c]``), each copy's state followed
        by its sensitivities (row-major ``[n, d]``) in ``z``."""
        m = self.model
        k_count, n, d = c.shape[0], m.n, dc.shape[2]
        width = n * (1 + d)
        ct = np.ascontiguousarray(c.T)

        def fun(t: float, z: np.ndarray) -> np.ndarray:
            zk = z.reshape(k_count, width)
            y = zk[:, :n]
            if not d:
                return m.rhs_batch(t, y.T, ct).T.ravel()
            f, fy, fc = m.rhs_and_jacobians_batch(t, y.T, ct)
            ds = fy @ zk[:, n:].reshape(k_count, n, d) + fc @ dc
            return np.concatenate([f.T, ds.reshape(k_count, n * d)], axis=1).ravel()

        def jac(t: float, z: np.ndarray) -> Any:
            zk = z.reshape(k_count, width)
            js = m.f_y_batch(t, zk[:, :n].T, ct)
            if not d:
                return sps.block_diag(list(js), format="csc")
            # d(S')/dS is f_y acting on each column of S, i.e. f_y ⊗ I in S's row-major layout;
            # the term in d(S')/dy is left out, as CVODES's simultaneous corrector does
            eye = sps.identity(d)
            blocks = []
            for j in js:
                blocks += [j, sps.kron(sps.csr_matrix(j), eye)]
            return sps.block_diag(blocks, format="csc")

        return fun, jac

    def _integrate(self, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
                   rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
        k_count, n, d = y.shape[0], self.model.n, dc.shape[2]
        times = self.times
        if times.size == 0:
            return np.zeros((k_count, 0, n)), np.zeros((k_count, 0, n, d))
        if self.events is not None:
            return self._integrate_events(y, s, c, dc, rtol, atol)
        z0 = np.concatenate([y, s.reshape(k_count, n * d)], axis=1).ravel()
        if times[-1] == 0.0 or n == 0:
            z = np.repeat(z0[None], times.size, axis=0)
        else:
            fun, jac = self._system(c, dc)
            sol = BDF().solve_ivp(fun, (0.0, float(times[-1])), z0, rtol, self._atol(atol, d, k_count),
                                  t_eval=times, jac=jac)
            if sol.status != 0 or sol.y.shape[1] != times.size:
                reached = np.asarray(sol.t, dtype=np.float64)
                raise SolveError(f"{self.label}: the solver stopped at t={reached[-1] if reached.size else 0:.4g}: "
                                 f"{sol.message}")
            z = sol.y.T
        if not np.all(np.isfinite(z)):
            raise SolveError(f"{self.label}: the solve returned non-finite values")
        zk = z.reshape(times.size, k_count, n * (1 + d)).transpose(1, 0, 2)
        return zk[:, :, :n], zk[:, :, n:].reshape(k_count, times.size, n, d)

    def _integrate_events(self, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
                          rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_integrate` split at the events' firing times, each copy alone (its firing times
        depend on its parameters); an output at a firing time shows the values before it."""
        k_count, n, d = y.shape[0], self.model.n, dc.shape[2]
        times = self.times
        xs, ss = np.zeros((k_count, times.size, n)), np.zeros((k_count, times.size, n, d))
        for k in range(k_count):
            yk, sk, ck, dck = y[k], s[k], c[k], dc[k]
            t_now, nxt = 0.0, 0
            stops = [(t, i, tau) for t, i, tau in self.events.schedule(ck, dck, float(times[-1]))]
            for t_stop, i, dtau in [*stops, (float(times[-1]), None, None)]:
                upto = nxt + int(np.searchsorted(times[nxt:], t_stop, side="right"))
                grid = times[nxt:upto]
                if t_stop > t_now and n:
                    fun, jac = self._system(ck[None], dck[None])
                    z0 = np.concatenate([yk, sk.reshape(n * d)])
                    t_eval = np.unique(np.concatenate([grid[grid > t_now], [t_stop]]))
                    sol = BDF().solve_ivp(fun, (t_now, t_stop), z0, rtol, self._atol(atol, d, 1), t_eval=t_eval,
                                          jac=jac)
                    if sol.status != 0 or sol.y.shape[1] != t_eval.size or not np.all(np.isfinite(sol.y)):
                        raise SolveError(f"{self.label}: the solver stopped between t={t_now:.4g} and {t_stop:.4g}: "
                                         f"{sol.message}")
                    at = {float(t): col for t, col in zip(t_eval, sol.y.T)}
                    for j, t in enumerate(grid):
                        z = at.get(float(t), z0)
                        xs[k, nxt + j], ss[k, nxt + j] = z[:n], z[n:].reshape(n, d)
                    yk, sk = sol.y[:n, -1].copy(), sol.y[n:, -1].reshape(n, d).copy()
                else:
                    xs[k, nxt:upto], ss[k, nxt:upto] = yk, sk
                nxt, t_now = upto, t_stop
                if i is not None:
                    yk, sk, ck, dck = self.events.fire(i, t_stop, yk, sk, ck, dck, dtau)
        return xs, ss

    def _atol(self, atol: float, d: int, k_count: int) -> np.ndarray:
        # sensitivities ride on the state's steps (CVODES's errconS = false): their own error
        # test would make BDF cut steps for entries that carry no weight in the likelihood
        one = np.concatenate([np.full(self.model.n, atol), np.full(self.model.n * d, SENS_ATOL)])
        return np.tile(one, k_count)

    def _steady(self, t0: float, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
                rtol: float, atol: float, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Integrate until every copy's state (and its sensitivities) stop moving: the weighted
        RMS norm of each copy's augmented field below one at the solve's tolerances."""
        k_count, n, d = y.shape[0], self.model.n, dc.shape[2]
        if n == 0:
            return y, s
        fun, jac = self._system(c, dc)
        z0 = np.concatenate([y, s.reshape(k_count, n * d)], axis=1).ravel()

        def settled(t: float, z: np.ndarray) -> float:
            scale = 100 * (atol + rtol * np.abs(z))  # a looser test than the solve's own error
            per_copy = np.mean(((fun(t, z) / scale) ** 2).reshape(k_count, -1), axis=1)
            return float(np.sqrt(per_copy.max())) - 1.0

        if settled(t0, z0) < 0:
            return y, s
        settled.terminal = True  # type: ignore[attr-defined]
        settled.direction = -1  # type: ignore[attr-defined]
        sol = BDF().solve_ivp(fun, (t0, t0 + STEADY_STATE_HORIZON), z0, rtol, atol, jac=jac, events=settled)
        if sol.status != 1:
            raise SolveError(f"{name}: no steady state reached by t={t0 + STEADY_STATE_HORIZON:.3g} "
                             f"({sol.message})")
        zk = sol.y[:, -1].reshape(k_count, n * (1 + d))
        return zk[:, :n], zk[:, n:].reshape(k_count, n, d)
