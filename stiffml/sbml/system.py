"""An SBML model file as a :class:`~stiffml.systems.StiffSystem`."""

from __future__ import annotations

import hashlib
import re

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stiffml.sbml.document import SBMLError, SBMLUnsupported, content_hash, read_document
from stiffml.sbml.examples import resolve_model
from stiffml.sbml.math import DELAY_PREFIX, Generated, ModelMath
from stiffml.solvers.base import Solver
from stiffml.solvers.registry import get_solver, solver_names
from stiffml.systems.base import MAX_GRID_POINTS, SolveError, StiffSystem, Trajectory

ENGINES = ("roadrunner", "generated")
#: The methods an SBML model can be solved with: CVODE (roadrunner) and scipy's on the generated math.
SOLVERS = solver_names(backend=("roadrunner", "scipy"))

# content hash -> (math, generated functions or None, the file's text); deriving the Jacobian and
# lambdifying costs about a second for a 20-species model, so each file is compiled once per process
_COMPILED: dict[str, tuple[ModelMath, Generated | None, str]] = {}
_LOCK = threading.Lock()


def _compile(path: Path) -> tuple[ModelMath, Generated | None, str, str]:
    raw = path.read_bytes() if path.is_file() else b""
    key = content_hash(raw)
    with _LOCK:
        if key not in _COMPILED:
            doc, raw = read_document(path)
            math = ModelMath(doc, f"'{path}'")
            _COMPILED[key] = (math, math.generate() if not math.unsupported else None, raw.decode("utf-8", "replace"))
    return (*_COMPILED[key], key)


MAX_MODEL_NAME = 64
_MODEL_TAG = re.compile(r"<model\b[^>]*>", re.S)


def short_name(text: str, limit: int = MAX_MODEL_NAME) -> str:
    """``text`` itself when short, else its start and a hash of the whole (distinct texts stay distinct)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{text[:limit - 13]}_{digest}"


def bound_model_names(text: str) -> str:
    """SBML text whose model id and name are at most :data:`MAX_MODEL_NAME` characters.

    libroadrunner crashes the process (a segfault, no message) on long model names and ids:
    measured at 20,000 characters on one model and 100,000–200,000 on the Tyson example. They
    name nothing the simulation uses, so long ones are shortened before the text reaches it.
    """
    tag = _MODEL_TAG.search(text)
    if tag is None or len(tag.group(0)) <= 4 * MAX_MODEL_NAME:
        return text
    import libsbml

    doc = libsbml.readSBMLFromString(text)
    model = doc.getModel()
    if model is None:
        return text
    if len(model.getId()) > MAX_MODEL_NAME:
        model.setId(re.sub(r"\W", "_", short_name(model.getId())))
    if len(model.getName()) > MAX_MODEL_NAME:
        model.setName(short_name(model.getName()))
    if len(model.getMetaId()) > MAX_MODEL_NAME:
        model.setMetaId(re.sub(r"\W", "_", short_name(model.getMetaId())))
    return libsbml.writeSBMLToString(doc)


def load_roadrunner(text: str, label: str) -> Any:
    """A libroadrunner instance for SBML text (its log limited to errors)."""
    try:
        import roadrunner
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SBMLError("solving SBML with CVODE needs libroadrunner: pip install 'stiffml[sbml]'") from None
    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)
    try:
        return roadrunner.RoadRunner(bound_model_names(text))
    except Exception as err:
        raise SBMLUnsupported(f"libroadrunner cannot load SBML model {label}: {' '.join(str(err).split())}") from None


def configure(rr: Any, rtol: float, atol: float) -> Any:
    """Reset a roadrunner instance to the model's initial state and set CVODE's tolerances."""
    rr.resetAll()
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 1_000_000
    return rr


def selections(variables: Sequence[str], species: set[str] | dict, amounts: set[str]) -> list[str]:
    """roadrunner selection strings: a species is ``[S]`` (concentration) unless in ``amounts``."""
    return [(v if v in amounts else f"[{v}]") if v in species else v for v in variables]


def run_roadrunner(rr: Any, t0: float, t_eval: np.ndarray, selected: list[str], label: str,
                   finite: bool = True) -> np.ndarray:
    """Integrate from the current state at ``t0`` and sample ``selected`` at ``t_eval``."""
    times = t_eval if t_eval[0] == t0 else np.concatenate([[t0], t_eval])
    if times.size > MAX_GRID_POINTS:
        raise ValueError(f"{times.size} output times; at most {MAX_GRID_POINTS:,}")
    if times.size == 1:
        return np.array([[rr.getValue(s) for s in selected]])
    try:
        res = rr.simulate(times=times, selections=["time", *selected])
    except Exception as err:
        raise SolveError(f"{label}: CVODE (roadrunner) failed: {' '.join(str(err).split())}") from None
    out = np.asarray(res)[:, 1:]
    out = out[1:] if t_eval[0] != t0 else out
    if out.shape[0] != t_eval.size or (finite and not np.all(np.isfinite(out))):
        raise SolveError(f"{label}: CVODE (roadrunner) returned non-finite or missing samples")
    return np.ascontiguousarray(out, dtype=np.float64)


def roadrunner_simulate(text: str, species: set[str], times: np.ndarray, variables: Sequence[str],
                        amounts: Sequence[str] = (), rtol: float = 1e-10, atol: float = 1e-14) -> np.ndarray:
    """Simulate SBML text from t = 0 with roadrunner: ``[len(times), len(variables)]``."""
    rr = configure(load_roadrunner(text, "(text)"), rtol, atol)
    return run_roadrunner(rr, 0.0, np.asarray(times, dtype=np.float64),
                          selections(variables, species, set(amounts)), "SBML model", finite=False)


class SBMLSystem(StiffSystem):
    """A stiff system read from an SBML file (Levels 2 and 3, read with python-libsbml).

    The state is what the ODE integrates: the variable species (concentrations, or amounts where
    ``hasOnlySubstanceUnits``), then compartments and parameters under rate rules, named by their
    SBML ids. :meth:`rhs` and :meth:`jac` are numpy functions generated from the SBML math (the
    Jacobian derived symbolically with sympy), :meth:`rhs_torch` the same field on tensors.
    :meth:`solve` integrates with libroadrunner's CVODE by default (the trusted engine; it also
    covers events and algebraic rules; libroadrunner 2.10 has no delays) or with a scipy stiff solver on the generated math.

    Args:
        model: Path of an SBML file, or the name of a shipped example (``stiffml.sbml.EXAMPLES``).
        y0: Initial state; default the file's (initial values, initial assignments and assignment
            rules evaluated at t = 0, with ``params`` applied).
        t_span: Time span ``(t0, t1)``; an example's default, required for other files.
        dt: Sampling step of the training grid (log grids: the first time after ``t0``).
        spacing: ``linear`` or ``log``.
        **params: Values for the model's global parameters (:attr:`defaults`).

    Raises:
        SBMLError: For a missing, invalid or unsupported file, or unknown parameter names.
    """

    def __init__(
        self,
        model: str | Path,
        y0: Any = None,
        t_span: Sequence[float] | None = None,
        dt: float | None = None,
        spacing: str | None = None,
        **params: float,
    ) -> None:
        path, example = resolve_model(model)
        self.model = str(model)
        self.path = path
        self.example = example
        self.math, self.generated, self._text, self.file_hash = _compile(path)
        self.name = f"sbml-{short_name(example.name if example else (self.math.model_id or path.stem))}"
        self.description = example.description if example else f"SBML model {path.name}"
        self.state_names = tuple(self.math.state_ids)
        file_values = self.math.initial_values({})
        self.defaults = {p: file_values[p] for p in self.math.parameter_ids}
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise SBMLError(f"unknown parameter(s) {unknown} for SBML model '{model}'; valid: {sorted(self.defaults)}")
        self.t_span = tuple(map(float, t_span)) if t_span is not None else (example.t_span if example else None)
        self.dt = float(dt) if dt is not None else (example.dt if example else None)
        self.spacing = spacing or (example.spacing if example else "linear")
        self.default_y0 = tuple(np.nan_to_num([file_values[s] for s in self.state_names]))
        super().__init__(y0=y0, **params)
        values = self.math.initial_values(self.params)
        self.constants = [values[c] for c in self.math.constant_ids]
        model_y0 = np.array([values[s] for s in self.state_names])
        if y0 is None:
            missing = [s for s, v in zip(self.state_names, model_y0) if not np.isfinite(v)]
            if missing:
                raise SBMLError(f"SBML model '{model}': no finite initial value for {missing}")
            self.y0 = model_y0
        self.default_y0 = tuple(model_y0)
        self._rr: Any = None
        self._torch_constants: dict[Any, list[Any]] = {}
        self._torch_events: Any = None  # the differentiable event simulator, built on first use

    def with_params(self, **overrides: float) -> SBMLSystem:
        """This model with some global parameters changed and the same initial state (constants
        that the parameters determine are evaluated again)."""
        params = {**self.params, **overrides}
        return type(self)(self.path if not self.example else self.model, y0=self.y0, t_span=self.t_span,
                          dt=self.dt, spacing=self.spacing, **params)

    # -------------------------------------------------------------------------- descriptions
    @property
    def cache_token(self) -> str:
        """The model file's content hash: part of every trajectory cache key."""
        return self.file_hash

    @property
    def has_events(self) -> bool:
        """Whether the model has events (the generated field holds only between them)."""
        return bool(self.math.events)

    @property
    def smooth_rhs(self) -> bool:
        """Whether the generated right-hand side is the model's whole dynamics (no events and
        nothing the generated math cannot express): what the ``derivative`` representation needs."""
        return self.generated is not None and not self.has_events

    def why_not_smooth(self) -> str:
        """Why :attr:`smooth_rhs` is false, in words."""
        reasons = list(self.math.unsupported)
        if self.has_events:
            reasons.append(f"events {self.math.events}")
        return "; ".join(reasons)

    def init_kwargs(self) -> dict[str, Any]:
        model = self.model if self.example else str(self.path.resolve())
        return {"model": model, "t_span": list(self.t_span) if self.t_span else None,
                "dt": self.dt, "spacing": self.spacing, **self.params}

    # ---------------------------------------------------------------------- generated math
    def _generated(self) -> Generated:
        if self.generated is None:
            raise SBMLUnsupported(f"SBML model '{self.model}': the generated right-hand side cannot "
                                  f"express {'; '.join(self.math.unsupported)}")
        return self.generated

    def rhs(self, t, y):
        y = np.asarray(y, dtype=np.float64)
        values = self._generated().rhs(t, y, self.constants)
        shape = np.broadcast_shapes(y.shape[1:], np.shape(t))
        return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for v in values])

    def _jac_at(self, t: float, y: np.ndarray, constants: Any) -> np.ndarray:
        """The Jacobian with given constants (events change them)."""
        gen = self._generated()
        out = np.zeros((self.n, self.n))
        if len(gen.jac_rows):
            out[gen.jac_rows, gen.jac_cols] = np.asarray(gen.jac_entries(t, y, list(constants)), dtype=np.float64)
        return out

    def jac(self, t, y):
        return self._jac_at(t, np.asarray(y, dtype=np.float64), self.constants)

    def rhs_torch(self, t: Any, y: Any) -> Any:
        """The generated right-hand side on a tensor ``y`` of shape ``(..., n)`` (differentiable)."""
        import torch

        gen = self._generated()
        key = (y.dtype, y.device)
        if key not in self._torch_constants:  # torch.pow refuses two Python numbers: 0-d tensors
            self._torch_constants[key] = list(torch.as_tensor(self.constants, dtype=y.dtype, device=y.device).unbind(0))
        values = gen.rhs_torch(t, list(y.unbind(-1)), self._torch_constants[key])
        shape = y.shape[:-1]
        return torch.stack([torch.as_tensor(v, dtype=y.dtype, device=y.device).expand(shape) for v in values], dim=-1)

    # -------------------------------------------------------------------------------- grids
    def default_grid(self, t_span=None, dt=None, spacing=None, points_per_decade: int = 100) -> np.ndarray:
        if t_span is None and self.t_span is None:
            raise SBMLError(f"SBML model '{self.model}' carries no simulation time: give t_span "
                            "(e.g. --data.t_span '[0, 100]') and dt")
        if dt is None and self.dt is None:
            span = t_span if t_span is not None else self.t_span
            dt = (float(span[1]) - float(span[0])) / 1000
        return super().default_grid(t_span, dt, spacing, points_per_decade)

    # ------------------------------------------------------------------------------ solving
    def solve(self, t_eval: Any, rtol: float = 1e-10, atol: float | Any = 1e-12, method: str | Solver = "CVODE",
              y0: Any = None, t0: float | None = None) -> Trajectory:
        """Integrate and sample at ``t_eval``.

        Args:
            t_eval: Increasing sample times at or after ``t0``.
            rtol: Relative tolerance.
            atol: Absolute tolerance.
            method: ``CVODE`` (libroadrunner, the default; events and algebraic rules
                included) or a scipy stiff solver on the generated math (``Radau``, ``BDF``,
                ``LSODA``; models without events).
            y0: Initial state (default the system's).
            t0: Start time (default ``t_span[0]``, or 0).
        """
        solver = get_solver(method, backend=("roadrunner", "scipy"))
        if solver.backend == "scipy":
            self._generated()
            t0 = (self.t_span[0] if self.t_span else 0.0) if t0 is None else t0
            if self.has_events or self.math.switch_conditions():
                return self._solve_events(t_eval, rtol, atol, solver, y0, float(t0))
            return super().solve(t_eval, rtol=rtol, atol=atol, method=solver, y0=y0, t0=t0)
        solver.check(rtol, atol)
        t_eval = np.asarray(t_eval, dtype=np.float64)
        t0 = (self.t_span[0] if self.t_span else 0.0) if t0 is None else float(t0)
        if t_eval.ndim != 1 or t_eval.size == 0:
            raise ValueError("t_eval must be a non-empty 1-D array of times")
        if np.any(np.diff(t_eval) <= 0) or t_eval[0] < t0:
            raise ValueError(f"t_eval must be strictly increasing and start at or after t0={t0}")
        start = self.y0 if y0 is None else np.asarray(y0, dtype=np.float64)
        if self.has_delays:  # libroadrunner cannot load delay(): the method of steps instead
            if t0 != 0.0:
                raise SBMLUnsupported(f"SBML model '{self.model}' has delay(): its history starts at t = 0, "
                                      f"so solves start there, not at t0={t0:g}")
            grid = np.union1d([0.0], t_eval)
            y, _ = self._delay_simulator().run(start, np.asarray(self.constants), grid, float(rtol), float(np.min(atol)))
            return Trajectory(t=t_eval.copy(), y=np.ascontiguousarray(y[np.searchsorted(grid, t_eval)]))
        rr = self._roadrunner(float(rtol), float(np.min(atol)))
        self._set_state(rr, start)
        values = self._run(rr, t0, t_eval, [self._selector(s) for s in self.state_names])
        return Trajectory(t=t_eval.copy(), y=values)

    def simulate(self, times: Any, variables: Sequence[str], amounts: Sequence[str] = (),
                 engine: str = "roadrunner", rtol: float = 1e-10, atol: float = 1e-14) -> np.ndarray:
        """Values of any SBML symbols from t = 0, as the SBML Test Suite compares them.

        Args:
            times: Output times (increasing, from 0 on).
            variables: SBML ids: species (concentrations, unless listed in ``amounts``),
                compartments, parameters, reactions (their rates), species references.
            amounts: Species reported as amounts.
            engine: ``roadrunner`` (CVODE) or ``generated`` (the generated math, scipy Radau;
                events located by scipy's root finding, :mod:`stiffml.sbml.events`). Models with
                ``delay()``, which libroadrunner cannot load, take the method of steps on the
                generated math (:mod:`stiffml.sbml.delays`) with either engine.

        Returns:
            Array of shape ``[len(times), len(variables)]``.
        """
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid: {list(ENGINES)}")
        times = np.asarray(times, dtype=np.float64)
        amounts = set(amounts)
        for v in variables:
            self.math.observable(v, v in amounts)  # unknown ids: one error naming the valid ones
        if engine == "roadrunner" and not self.has_delays:
            rr = self._roadrunner(rtol, atol)
            if not np.array_equal(self.y0, np.asarray(self.default_y0)):
                self._set_state(rr, self.y0)
            return self._run(rr, 0.0, times, selections(variables, self.math.species, amounts), finite=False)
        if self.has_delays:  # libroadrunner cannot load delay(): both engines take the method of steps
            return self._simulate_delays(times, list(variables), amounts, rtol, atol)
        self._generated()
        f = self.math.generate_observables(list(variables), amounts)
        if self.has_events or self.math.switch_conditions():
            from stiffml.sbml.events import EventSimulator

            sim = EventSimulator(self.math, self._generated().rhs, self._jac_at, f"SBML model '{self.model}'")
            y, c = sim.run(np.asarray(self.y0, dtype=np.float64), np.asarray(self.constants, dtype=np.float64),
                           times, rtol, atol)
            constants = list(c.T)  # events may change them: one column of values per output time
        elif self.n == 0:  # nothing integrated: every symbol is a function of time and constants
            y, constants = np.zeros((times.size, 0)), self.constants
        else:
            constants = self.constants
            start = times[0] > 0
            traj = super().solve(np.concatenate([[0.0], times]) if start else times,
                                 rtol=rtol, atol=atol, method="Radau", t0=0.0)
            y = traj.y[1:] if start else traj.y
        vals = f(times, y.T, constants)
        return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), times.shape) for v in vals], axis=1)

    def _solve_events(self, t_eval: Any, rtol: float, atol: Any, solver: Solver, y0: Any, t0: float) -> Trajectory:
        """A scipy solve of the generated math with events (and jumps of the field) from t = 0."""
        from stiffml.sbml.events import EventSimulator

        solver.check(rtol, atol)
        t_eval = np.asarray(t_eval, dtype=np.float64)
        if t0 != 0.0:
            raise SBMLUnsupported(f"SBML model '{self.model}' has events {self.math.events}: their triggers' "
                                  f"history starts at t = 0, so solves start there, not at t0={t0:g}")
        if t_eval.ndim != 1 or t_eval.size == 0 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0:
            raise ValueError("t_eval must be a non-empty, strictly increasing 1-D array of times from 0 on")
        start = np.asarray(self.y0 if y0 is None else y0, dtype=np.float64)
        grid = np.union1d([0.0], t_eval)
        sim = EventSimulator(self.math, self._generated().rhs, self._jac_at, f"SBML model '{self.model}'", solver)
        y, _ = sim.run(start, np.asarray(self.constants, dtype=np.float64), grid, float(rtol), float(np.min(atol)))
        if not np.all(np.isfinite(y)):
            raise SolveError(f"SBML model '{self.model}': the {solver.name} solve returned non-finite values")
        return Trajectory(t=t_eval.copy(), y=np.ascontiguousarray(y[np.searchsorted(grid, t_eval)]))

    @property
    def has_delays(self) -> bool:
        """Whether the model uses ``delay()`` (integrated by the method of steps,
        :mod:`stiffml.sbml.delays`, in :meth:`simulate` and :meth:`solve`)."""
        return any(u.startswith(DELAY_PREFIX) for u in self.math.unsupported)

    def _delay_simulator(self) -> Any:
        from stiffml.sbml.delays import DelaySimulator

        if self.has_events:
            raise SBMLUnsupported(f"SBML model '{self.model}' has delay() and events {self.math.events}; the "
                                  "generated engine integrates delays in models without events")
        return DelaySimulator(self.math, self.math.generate(), f"SBML model '{self.model}'")

    def _simulate_delays(self, times: np.ndarray, variables: list[str], amounts: set[str], rtol: float,
                         atol: float) -> np.ndarray:
        """The generated engine on a model with ``delay()``: the method of steps."""
        f = self.math.generate_observables(variables, amounts)  # registers the observables' delays
        sim = self._delay_simulator()  # generated after the observables' delays are known
        y, delayed = sim.run(np.asarray(self.y0, dtype=np.float64), np.asarray(self.constants), times, rtol, atol)
        d = np.array([delayed(float(t)) for t in times]).reshape(times.size, len(self.math.delay_terms))
        vals = f(times, y.T, [*self.constants, *d.T])
        return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), times.shape) for v in vals], axis=1)

    def simulate_torch(self, times: Any, variables: Sequence[str], amounts: Sequence[str] = (),
                       constants: Any = None, y0: Any = None, rtol: float = 1e-8, atol: float = 1e-10) -> Any:
        """:meth:`simulate` on the generated torch math, differentiable with respect to the
        constants and the initial state through events (event times by the implicit-function
        theorem): :class:`stiffml.sbml.torch_events.TorchEventSimulator`.

        Args:
            times: Output times (increasing, from 0 on).
            variables: SBML ids, as :meth:`simulate` takes them.
            amounts: Species reported as amounts.
            constants: A tensor of the constants' values, ordered as ``math.constant_ids``
                (default the system's).
            y0: A tensor of initial states (default the system's).
            rtol: Relative tolerance (Rosenbrock23 between events).
            atol: Absolute tolerance.

        Returns:
            Tensor ``[len(times), len(variables)]``.
        """
        from stiffml.sbml.torch_events import TorchEventSimulator

        if self._torch_events is None:
            self._torch_events = TorchEventSimulator(self)
        return self._torch_events.simulate(times, variables, amounts, constants, y0, rtol, atol)

    # ---------------------------------------------------------------------------- roadrunner
    def _selector(self, sid: str) -> str:
        if sid in self.math.species and self.math.concentration_valued(sid):
            return f"[{sid}]"
        return sid

    def _roadrunner(self, rtol: float, atol: float) -> Any:
        if self._rr is None:
            self._rr = load_roadrunner(self._text_with_params(), f"'{self.model}'")
        return configure(self._rr, rtol, atol)

    def _text_with_params(self) -> str:
        changed = {k: v for k, v in self.params.items() if v != self.defaults[k]}
        if not changed:
            return self._text
        import libsbml

        doc = libsbml.readSBMLFromString(self._text)
        for pid, value in changed.items():
            doc.getModel().getParameter(pid).setValue(value)
        return libsbml.writeSBMLToString(doc)

    def _set_state(self, rr: Any, y: np.ndarray) -> None:
        # compartments first: a species' concentration is stored as an amount in roadrunner
        order = sorted(range(self.n), key=lambda i: self.state_names[i] in self.math.species)
        for i in order:
            rr.setValue(self._selector(self.state_names[i]), float(y[i]))

    def _run(self, rr: Any, t0: float, t_eval: np.ndarray, selected: list[str], finite: bool = True) -> np.ndarray:
        return run_roadrunner(rr, t0, t_eval, selected, self.name, finite)
