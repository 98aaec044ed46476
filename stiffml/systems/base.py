"""Base class for stiff ODE systems: right-hand side, Jacobian, reference solves.

The numerical core is free of Lightning and torch so it can be used and tested alone.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from stiffml.solvers.base import Solver
from stiffml.solvers.registry import get_solver, solver_names

#: scipy's stiff methods (the registry's scipy backend), by name.
STIFF_METHODS = solver_names(backend="scipy")


# A grid above this would not fit the memory of the machines stiffml targets (3e5 points for the
# paper's VdP grid; 1e8 states of a 20-species system are 16 GB in float64).
MAX_GRID_POINTS = 100_000_000


class SolveError(RuntimeError):
    """A reference solve failed: blow-up, step-size underflow or non-finite values."""


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A solved trajectory.

    Attributes:
        t: Sample times, shape ``(T,)``.
        y: States at those times, shape ``(T, n)``.
        nfev: Right-hand-side evaluations the solver used.
        njev: Jacobian evaluations the solver used.
    """

    t: np.ndarray
    y: np.ndarray
    nfev: int = 0
    njev: int = 0


class StiffSystem(abc.ABC):
    """An autonomous or time-dependent ODE system ``dy/dt = f(t, y; params)``.

    Subclasses set the class attributes and implement :meth:`rhs` and :meth:`jac`, both
    vectorised over a trailing batch axis: ``y`` of shape ``(n,)`` or ``(n, m)``.

    Attributes:
        name: Registry name (``get_system(name)``).
        state_names: One name per state component.
        defaults: Parameter names and their default values.
        default_y0: Initial state.
        t_span: Default time span ``(t0, t1)``.
        dt: Default sampling step of the training data.
        blowup: Any ``|y|`` above this is treated as a finite-time blow-up.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    state_names: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, float]] = {}
    default_y0: ClassVar[tuple[float, ...]] = ()
    t_span: ClassVar[tuple[float, float]] = (0.0, 1.0)
    dt: ClassVar[float] = 1e-3
    blowup: ClassVar[float] = 1e12
    spacing: ClassVar[str] = "linear"
    sparse_jacobian: ClassVar[bool] = False

    # Optional capabilities, declared here so a system's author sees them in one place; a system
    # that has one overrides the attribute (with a method or a property).
    #: Whether the system conserves :meth:`energy` (then free runs report energy drift).
    conservative: ClassVar[bool] = False
    #: A linear conservation law ``(weights, total)``: ``Σ weights·y`` stays ``total`` along every
    #: trajectory (ROBER: y1 + y2 + y3 = 1); ensembles drawing initial states respect it.
    conservation: ClassVar[tuple[tuple[float, ...], float] | None] = None
    #: ``energy(y (..., n)) -> (...)``: the system's energy, where it has one (``None``: none).
    energy: ClassVar[Callable[[np.ndarray], np.ndarray] | None] = None
    #: ``lagrangian(q, v)``: the sympy Lagrangian the symbolic report compares with (``None``: none).
    lagrangian: ClassVar[Callable[..., Any] | None] = None
    #: A string that changes whenever the system's definition does beyond its class and
    #: parameters (an SBML file's content hash): part of every trajectory cache key.
    cache_token: ClassVar[str] = ""

    def __init__(self, y0: Any = None, **params: float) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for system '{self.name}'; "
                f"valid: {sorted(self.defaults)}"
            )
        merged = dict(self.defaults)
        for key, value in params.items():
            try:
                merged[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"parameter '{key}' of system '{self.name}' must be a number, got {value!r}"
                ) from None
            if not np.isfinite(merged[key]):
                raise ValueError(f"parameter '{key}' of system '{self.name}' must be finite, got {value!r}")
        self.params: dict[str, float] = merged
        y0 = np.asarray(self.default_y0 if y0 is None else y0, dtype=np.float64)
        if y0.shape == (self.n,) and not np.all(np.isfinite(y0)):
            raise ValueError(f"y0 for system '{self.name}' must be finite, got {y0.tolist()}")
        if y0.shape != (self.n,):
            raise ValueError(
                f"y0 for system '{self.name}' must have {self.n} components "
                f"{list(self.state_names)}, got shape {y0.shape}"
            )
        self.y0: np.ndarray = y0

    def init_kwargs(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this system with its class (the
        benchmark records them so its figures work for plugin and SBML systems too)."""
        return {k: float(v) for k, v in self.params.items()}

    def with_params(self, **overrides: float) -> StiffSystem:
        """This system with some parameters changed (the same initial state): one member of an
        ensemble whose rate constants are drawn per member.

        Raises:
            ValueError: A name the system has no parameter for, or a value that is not finite.
        """
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for system '{self.name}'; valid: {sorted(self.params)}")
        bad = {k: v for k, v in overrides.items() if not np.isfinite(float(v))}
        if bad:
            raise ValueError(f"parameters of system '{self.name}' must be finite, got {bad}")
        new = copy.copy(self)
        new.params = {**self.params, **{k: float(v) for k, v in overrides.items()}}
        return new

    @property
    def n(self) -> int:
        """Number of state components."""
        return len(self.state_names)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    @abc.abstractmethod
    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """Right-hand side ``f(t, y)``, vectorised over trailing axes of ``y``."""

    @abc.abstractmethod
    def jac(self, t: float, y: np.ndarray) -> np.ndarray:
        """Analytic Jacobian ``df/dy`` of shape ``(n, n)`` at one state ``y`` of shape ``(n,)``."""

    def stiffness_ratio(self, y: Any, t: float = 0.0) -> float:
        """Stiffness ratio of Definition 1 (Zhang et al. 2024) at a state.

        ``S = max |Re λ| / min |Re λ|`` over the Jacobian's eigenvalues with non-zero real part
        (real parts below ``1e-12 · max |Re λ|`` count as zero, e.g. from conservation laws).
        """
        eig = np.linalg.eigvals(self.jac(t, np.asarray(y, dtype=np.float64)))
        re = np.abs(eig.real)
        if re.max() == 0.0:
            return float("nan")
        re = re[re > 1e-12 * re.max()]
        return float(re.max() / re.min())

    def solve(
        self,
        t_eval: Any,
        rtol: float = 1e-10,
        atol: float | Any = 1e-12,
        method: str | Solver = "Radau",
        y0: Any = None,
        t0: float | None = None,
    ) -> Trajectory:
        """Integrate from ``t0`` (default: the system's start time) and sample at ``t_eval``.

        Args:
            t_eval: Increasing sample times, all at or after ``t0``.
            rtol: Relative tolerance (> 0).
            atol: Absolute tolerance, scalar or one per state (> 0).
            method: One of scipy's stiff solvers by name (``Radau``, ``BDF``, ``LSODA``) or as a
                :class:`~stiffml.solvers.scipy_solvers.ScipySolver` object (with its options).
            y0: Initial state (default: the system's).
            t0: Start time (default: ``t_span[0]``).

        Returns:
            The trajectory sampled at ``t_eval``.

        Raises:
            SolveError: If the solve blows up, the step size underflows or values turn non-finite.
            ValueError: For bad arguments.
        """
        solver = get_solver(method, backend="scipy")
        solver.check(rtol, atol)
        t_eval = np.asarray(t_eval, dtype=np.float64)
        t0 = self.t_span[0] if t0 is None else float(t0)
        if t_eval.ndim != 1 or t_eval.size == 0:
            raise ValueError("t_eval must be a non-empty 1-D array of times")
        if np.any(np.diff(t_eval) <= 0) or t_eval[0] < t0:
            raise ValueError(f"t_eval must be strictly increasing and start at or after t0={t0}")
        y_start = self.y0 if y0 is None else np.asarray(y0, dtype=np.float64)
        limit = self.blowup * max(1.0, float(np.abs(y_start).max()))

        def blew_up(t: float, y: np.ndarray) -> float:
            return limit - np.abs(y).max()

        blew_up.terminal = True  # type: ignore[attr-defined]
        t_end = float(t_eval[-1])
        if t_end == t0:  # t_eval == [t0]: nothing to integrate
            return Trajectory(t=t_eval.copy(), y=y_start[None, :].copy())
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solver.solve_ivp(  # type: ignore[attr-defined]
                self.rhs, (t0, t_end), y_start, rtol=rtol, atol=atol, t_eval=t_eval, events=blew_up,
                jac=self.jac, sparse_jacobian=self.sparse_jacobian, vectorized=True,
            )
        if sol.status == 1 and sol.t_events is not None and len(sol.t_events[0]):
            raise SolveError(
                f"{self.name}: solution blew up at t≈{sol.t_events[0][0]:.4g} "
                f"(|y| exceeded {limit:.3g}); parameters {self.params}"
            )
        if sol.status != 0:
            t_fail = sol.t[-1] if sol.t.size else t0
            raise SolveError(
                f"{self.name}: {solver.name} solve failed at t≈{t_fail:.4g} of {t_end:g}: "
                f"{sol.message} (parameters {self.params})"
            )
        y = sol.y.T
        if sol.t.size != t_eval.size or not np.all(np.isfinite(y)):
            bad = int(np.argmax(~np.all(np.isfinite(y), axis=1))) if y.size else 0
            raise SolveError(
                f"{self.name}: solve returned non-finite or missing samples near "
                f"t≈{t_eval[min(bad, t_eval.size - 1)]:.4g}"
            )
        return Trajectory(t=t_eval.copy(), y=np.ascontiguousarray(y), nfev=sol.nfev, njev=sol.njev)

    def solve_ensemble(
        self,
        y0s: Any,
        t_eval: Any,
        rtol: float = 1e-12,
        atol: float = 1e-12,
        method: str | Solver = "LSODA",
        t0: float | None = None,
        params: Sequence[Mapping[str, float]] | None = None,
    ) -> np.ndarray:
        """Integrate many initial states at once and sample them all at ``t_eval``.

        The ``m`` trajectories are stacked into one system of ``m·n`` states, so one solver call
        advances them together (for the Duffing ensemble far faster than ``m`` separate solves:
        ``bench/ensemble_solve.py``); Radau and BDF get the block-diagonal Jacobian.

        Args:
            y0s: Initial states, shape ``(m, n)``.
            t_eval: Increasing sample times, all at or after ``t0``.
            rtol: Relative tolerance (> 0).
            atol: Absolute tolerance (> 0).
            method: ``Radau``, ``BDF`` or ``LSODA`` (a name or a solver object).
            t0: Start time (default: ``t_span[0]``).
            params: Per-member parameter overrides, one mapping per initial state (rate
                constants drawn per member); ``None``: every member has this system's parameters.

        Returns:
            States of shape ``(m, len(t_eval), n)``.

        Raises:
            SolveError: If the solve blows up, fails or returns non-finite values.
        """
        y0s = np.asarray(y0s, dtype=np.float64)
        if y0s.ndim != 2 or y0s.shape[1] != self.n or y0s.shape[0] < 1:
            raise ValueError(f"y0s must have shape (m, {self.n}), got {y0s.shape}")
        m, n = y0s.shape
        members = None
        if params is not None:
            if len(params) != m:
                raise ValueError(f"params must give one mapping per initial state ({m}), got {len(params)}")
            members = [self.with_params(**p) for p in params]
        stacked = _Stacked(self, m, members)
        traj = stacked.solve(t_eval, rtol=rtol, atol=atol, method=method, y0=y0s.T.reshape(-1), t0=t0)
        return np.ascontiguousarray(traj.y.reshape(len(traj.t), n, m).transpose(2, 0, 1))

    def default_grid(
        self,
        t_span: tuple[float, float] | None = None,
        dt: float | None = None,
        spacing: str | None = None,
        points_per_decade: int = 100,
    ) -> np.ndarray:
        """The sampling grid of the training data.

        Args:
            t_span: ``(t0, t1)``; default the system's.
            dt: Linear spacing: the step, rounded so the grid ends exactly at ``t1``.
                Log spacing: the first sample time after ``t0``.
            spacing: ``linear`` (the paper's layout) or ``log`` (``t0`` then log-spaced times, for
                systems such as ROBER whose dynamics span many decades); default the system's.
            points_per_decade: Density of the log grid.
        """
        t0, t1 = self.t_span if t_span is None else (float(t_span[0]), float(t_span[1]))
        dt = self.dt if dt is None else float(dt)
        spacing = self.spacing if spacing is None else spacing
        if not (np.isfinite(t0) and np.isfinite(t1)):
            raise ValueError(f"t_span must be two finite times, got ({t0}, {t1})")
        if not (dt > 0 and np.isfinite(dt)):
            raise ValueError(f"step dt must be positive and finite, got {dt}")
        if not t1 > t0:
            raise ValueError(f"time span must have t1 > t0, got ({t0}, {t1})")
        if dt >= t1 - t0:
            raise ValueError(f"step dt={dt} is not shorter than the span ({t0}, {t1})")
        if spacing == "linear":
            points = (t1 - t0) / dt + 1
            if points > MAX_GRID_POINTS:
                raise ValueError(f"dt={dt} over ({t0}, {t1}) would make a grid of {points:.3g} points; "
                                 f"at most {MAX_GRID_POINTS:,} are allowed (a larger dt)")
            return np.linspace(t0, t1, int(round((t1 - t0) / dt)) + 1)
        if spacing == "log":
            decades = np.log10((t1 - t0) / dt)
            n = max(2, int(round(decades * points_per_decade)) + 1)
            if n > MAX_GRID_POINTS:
                raise ValueError(f"{points_per_decade} points per decade over {decades:.3g} decades would make "
                                 f"{n:.3g} points; at most {MAX_GRID_POINTS:,} are allowed")
            return np.concatenate([[t0], t0 + np.logspace(np.log10(dt), np.log10(t1 - t0), n)])
        raise ValueError(f"unknown spacing {spacing!r}; valid: ['linear', 'log']")


class _Stacked(StiffSystem):
    """``m`` independent copies of a system as one system, state laid out as ``(n, m)``; with
    ``members``, copy ``i`` is ``members[i]`` (its own parameters)."""

    sparse_jacobian = True

    def __init__(self, base: StiffSystem, m: int, members: Sequence[StiffSystem] | None = None) -> None:
        self.base, self.m, self.members = base, m, members
        self.name = base.name
        self.state_names = tuple(f"{s}{i}" for s in base.state_names for i in range(m))
        self.t_span, self.blowup = base.t_span, base.blowup
        self.params = base.params
        self.y0 = np.zeros(base.n * m)

    def rhs(self, t, y):
        n, m = self.base.n, self.m
        shaped = y.reshape(n, m, *y.shape[1:])
        if self.members is not None:  # a system's rhs reads scalar parameters: one call per member
            return np.stack([sys.rhs(t, shaped[:, i]) for i, sys in enumerate(self.members)], 1).reshape(y.shape)
        return self.base.rhs(t, shaped).reshape(y.shape)

    def jac(self, t, y):
        from scipy.sparse import csr_matrix

        n, m = self.base.n, self.m
        systems = self.members or [self.base] * m
        blocks = np.stack([systems[i].jac(t, y.reshape(n, m)[:, i]) for i in range(m)])  # (m, n, n)
        # state index of (component a, copy i) is a*m + i
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        rows = (a[None] * m + np.arange(m)[:, None, None]).ravel()
        cols = (b[None] * m + np.arange(m)[:, None, None]).ravel()
        return csr_matrix((blocks.ravel(), (rows, cols)), shape=(n * m, n * m))
