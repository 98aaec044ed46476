"""SBML events on the generated (numpy) math: triggers located by scipy's event detection.

Between events the generated field is integrated with Radau; a trigger is a root function
(``a > b`` → ``a − b``; ``and``/``or`` → the minimum/maximum of their parts), so scipy locates the
moment it turns true to root-finding precision. At that moment every event whose trigger went from
false to true fires, highest priority first (document order among equals): its assignments are
evaluated from the values just before it fires and applied together; triggers turned true by an
assignment fire in turn. A trigger's ``initialValue = false`` that is true at t = 0 fires at t = 0.

An event with a delay is scheduled when its trigger turns true and executed at trigger time plus
the delay (evaluated at trigger time): the integration stops there, as it stops at a root. Its
assignments are evaluated at trigger time (``useValuesFromTriggerTime``, the default) or at
execution; a non-persistent event whose trigger turns false before then is cancelled.

An event that resizes a compartment keeps the amounts of the species inside it: their
concentrations scale by old size / new size, those the same event sets included (SBML Test Suite
case 01779).

Not covered (refused by name): triggers that are equalities or otherwise not root functions. Hand-written because no Python library simulates SBML events on
generated code; roadrunner covers them on its own engine.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from stiffml.sbml.document import SBMLUnsupported
from stiffml.sbml.math import T, ModelMath
from stiffml.solvers.scipy_solvers import Radau, ScipySolver
from stiffml.systems.base import SolveError

MAX_CASCADE = 1000


def root_function(expr: sp.Basic, where: str) -> sp.Expr:
    """A continuous function of the trigger's arguments that is positive where it is true."""
    if isinstance(expr, (sp.StrictGreaterThan, sp.GreaterThan)):
        return expr.lhs - expr.rhs
    if isinstance(expr, (sp.StrictLessThan, sp.LessThan)):
        return expr.rhs - expr.lhs
    if isinstance(expr, sp.And):
        return sp.Min(*(root_function(a, where) for a in expr.args))
    if isinstance(expr, sp.Or):
        return sp.Max(*(root_function(a, where) for a in expr.args))
    if isinstance(expr, sp.Not):
        return -root_function(expr.args[0], where)
    raise SBMLUnsupported(f"{where}: the trigger {expr} is not a comparison (or an and/or of comparisons), "
                          "which the generated engine cannot locate")


class EventSimulator:
    """The events of one model on its generated math.

    Args:
        math: The model's sympy form.
        rhs: ``rhs(t, y, c)`` → list of derivatives (the generated numpy field).
        jac: ``jac(t, y, c)`` → dense Jacobian.
        label: For messages.
        solver: The scipy method between events (default Radau).
    """

    def __init__(self, math: ModelMath, rhs: Callable, jac: Callable, label: str,
                 solver: ScipySolver | None = None) -> None:
        self.math, self.rhs, self.jac, self.label = math, rhs, jac, label
        self.solver = solver or Radau()
        ys = [sp.Symbol(s) for s in math.state_ids]
        cs = [sp.Symbol(c) for c in math.constant_ids]
        self._y_sym = [sp.Symbol(f"_y{i}") for i in range(len(ys))]
        self._c_sym = [sp.Symbol(f"_c{j}") for j in range(len(cs))]
        rename = dict(zip(ys, self._y_sym)) | dict(zip(cs, self._c_sym))
        args = [T, self._y_sym, self._c_sym]
        self.events = math.event_definitions()
        # a piecewise of time or state in the field is a jump of the field: a switch, an event
        # without assignments, so the integration stops there as at any trigger (Radau stepping
        # across the jump at rtol 1e-12 was measured 5 % off on test case 20)
        # a switch of time alone is a breakpoint t_b(constants): the integration ends there exactly,
        # since a step across it would use the field of both sides (Radau at rtol 1e-12 accepted
        # such a step on test case 20 and came out 5 % off)
        constants_only = {sp.Symbol(c) for c in math.constant_ids} | {T}
        breakpoints: list[sp.Expr] = []
        for cond in math.switch_conditions():
            try:
                root = root_function(cond, "")
            except SBMLUnsupported:  # e.g. an equality: no sign change to stop at
                continue
            if cond.free_symbols <= constants_only:
                try:
                    times = sp.solve(root, T) if not root.atoms(sp.Min, sp.Max) else None
                except NotImplementedError:
                    times = None
                if times is not None:
                    breakpoints += [b.xreplace(rename) for b in times if b.is_real is not False and b not in breakpoints]
                    continue
            self.events.append({"id": f"switch {cond}", "trigger": cond, "initial_value": True, "persistent": True,
                                "delay": None, "priority": None, "use_trigger_time_values": True, "assignments": []})
        roots, truths, self.targets, self.assign, self.priority = [], [], [], [], []
        self.delay: list[Callable | None] = []
        for ev in self.events:
            where = f"{label}: event '{ev['id']}'"
            self.delay.append(sp.lambdify(args, ev["delay"].xreplace(rename), modules="numpy")
                              if ev["delay"] is not None else None)
            trigger = ev["trigger"].xreplace(rename)
            if trigger in (sp.true, sp.false):
                roots.append(sp.Integer(1 if trigger is sp.true else -1))
            else:
                roots.append(root_function(trigger, where))
            truths.append(trigger)
            targets = []
            for var, _ in ev["assignments"]:
                if var in math.state_ids:
                    targets.append(("y", math.state_ids.index(var)))
                elif var in math.constant_ids:
                    targets.append(("c", math.constant_ids.index(var)))
                else:
                    what = "the compartment" if var in math.compartments else "the rule-defined symbol"
                    raise SBMLUnsupported(f"{where} assigns to {what} '{var}', which the generated engine "
                                          "does not simulate")
            self.targets.append(targets)
            self.assign.append(sp.lambdify(args, [e.xreplace(rename) for _, e in ev["assignments"]], modules="numpy"))
            self.priority.append(sp.lambdify(args, ev["priority"].xreplace(rename), modules="numpy")
                                 if ev["priority"] is not None else None)
        # a compartment resized by an event keeps the amounts inside it: the concentrations of its
        # species scale by old size / new size, also those the same event sets (all assignments
        # read the state before the event, so a species' new value is an amount in the old size:
        # SBML Test Suite case 01779)
        self._contents: dict[int, list[tuple[str, int]]] = {}
        for sid, species in math.species.items():
            cid = species.getCompartment()
            if cid not in math.constant_ids or not math.concentration_valued(sid) or species.getConstant():
                continue
            slot = ("y", math.state_ids.index(sid)) if sid in math.state_ids else (
                ("c", math.constant_ids.index(sid)) if sid in math.constant_ids else None)
            if slot is not None:
                self._contents.setdefault(math.constant_ids.index(cid), []).append(slot)
        #: The sympy forms behind the generated functions, in ``args`` (for other code printers).
        self.args = args
        self.breakpoint_exprs = breakpoints
        self.breakpoints = [sp.lambdify(args, b, modules="numpy") for b in breakpoints]
        self.root_exprs = roots
        self.assign_exprs = [[e.xreplace(rename) for _, e in ev["assignments"]] for ev in self.events]
        self.delay_exprs = [ev["delay"].xreplace(rename) if ev["delay"] is not None else None for ev in self.events]
        self.roots = [sp.lambdify(args, r, modules="numpy") for r in roots]
        self.truth = [sp.lambdify(args, tr, modules="numpy") for tr in truths]
        self.persistent = [bool(ev["persistent"]) for ev in self.events]
        self.trigger_time_values = [bool(ev["use_trigger_time_values"]) for ev in self.events]
        #: Scheduled executions of delayed events: ``[time, sequence, event, values or None]``.
        self.pending: list[list] = []
        self._sequence = 0
        #: What the last :meth:`run` did, in order, for a differentiable replay
        #: (:mod:`stiffml.sbml.torch_events`): ``("stop", t, "root", event)`` where a trigger's root
        #: stopped the integration, ``("stop", t, "due", sequence)`` at a delayed execution,
        #: ``("apply", event)``, ``("schedule", event, sequence)``, ``("execute", sequence)``.
        self.log: list[tuple] = []

    # ---------------------------------------------------------------------------- firing
    def _true(self, t: float, y: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.array([bool(f(t, y, c)) for f in self.truth], dtype=bool)

    def _fire(self, t: float, y: np.ndarray, c: np.ndarray, order: Sequence[int]) -> None:
        def priority(i: int) -> float:
            p = self.priority[i]
            return -float(p(t, y, c)) if p is not None else 0.0

        for i in sorted(order, key=lambda i: (priority(i), i)):
            delay = self.delay[i]
            if delay is None:
                self.log.append(("apply", i))
                self._apply(i, self._values(i, t, y, c), y, c)
                continue
            d = float(delay(t, y, c))
            if not (np.isfinite(d) and d >= 0):
                raise SolveError(f"{self.label}: event '{self.events[i]['id']}' has the delay {d:g} at t={t:g}; "
                                 "a delay must be finite and >= 0")
            values = self._values(i, t, y, c) if self.trigger_time_values[i] else None
            self.log.append(("schedule", i, self._sequence))
            self.pending.append([t + d, self._sequence, i, values])
            self._sequence += 1

    def _values(self, i: int, t: float, y: np.ndarray, c: np.ndarray) -> list[float]:
        return [float(v) for v in np.atleast_1d(self.assign[i](t, y, c))] if self.targets[i] else []

    def _apply(self, i: int, values: list[float], y: np.ndarray, c: np.ndarray) -> None:
        before = {k: float(c[k]) for kind, k in self.targets[i] if kind == "c" and k in self._contents}
        for (kind, k), v in zip(self.targets[i], values):
            (y if kind == "y" else c)[k] = v
        for k, old in before.items():
            if c[k] != old:
                for kind, j in self._contents[k]:
                    (y if kind == "y" else c)[j] *= old / c[k]

    def _execute_due(self, t: float, y: np.ndarray, c: np.ndarray) -> bool:
        """Execute the delayed events due at ``t`` (highest priority first, then in the order they
        were scheduled); returns whether any was."""
        tol = 1e-12 * (1.0 + abs(t))
        due = [p for p in self.pending if p[0] <= t + tol]
        if not due:
            return False
        self.pending = [p for p in self.pending if p[0] > t + tol]

        def priority(p: list) -> float:
            f = self.priority[p[2]]
            return -float(f(t, y, c)) if f is not None else 0.0

        for p in sorted(due, key=lambda p: (priority(p), p[1])):
            i = p[2]
            self.log.append(("execute", p[1]))
            self._apply(i, p[3] if p[3] is not None else self._values(i, t, y, c), y, c)
        return True

    def _cancel(self, state: np.ndarray) -> None:
        """Drop scheduled executions of non-persistent events whose trigger is false."""
        self.pending = [p for p in self.pending if self.persistent[p[2]] or state[p[2]]]

    def _settle(self, t: float, y: np.ndarray, c: np.ndarray, state: np.ndarray, forced: Sequence[int] = ()) -> np.ndarray:
        """Fire ``forced`` and every event whose trigger turned true, then cascades; returns the
        trigger states after."""
        now = self._true(t, y, c)
        fire = sorted(set(forced) | set(np.flatnonzero(now & ~state).tolist()))
        for _ in range(MAX_CASCADE):
            if not fire:
                return now
            before = self._true(t, y, c)
            self._fire(t, y, c, fire)
            now = self._true(t, y, c)
            fire = np.flatnonzero(now & ~before).tolist()
        raise SolveError(f"{self.label}: events kept firing each other at t={t:g} ({MAX_CASCADE} rounds)")

    # ------------------------------------------------------------------------- integration
    def run(self, y0: np.ndarray, c0: np.ndarray, times: np.ndarray, rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
        """States and constants at ``times`` (from t = 0), events applied. An output at the moment
        an event fires shows the values before it (the trigger turns true just after, as
        roadrunner reports it), except events firing at t = 0 (``initialValue = false``)."""
        y, c = np.array(y0, dtype=np.float64), np.array(c0, dtype=np.float64)
        t = 0.0
        self.pending, self._sequence, self.log = [], 0, []
        state = np.array([bool(ev["initial_value"]) for ev in self.events], dtype=bool)
        state = self._settle(t, y, c, state)
        state = self._run_due(t, y, c, state)
        ys, cs = np.zeros((times.size, y.size)), np.zeros((times.size, c.size))
        k = 0  # next output
        t_end = float(times[-1]) if times.size else 0.0
        while True:
            while k < times.size and times[k] <= t:
                ys[k], cs[k] = y, c
                k += 1
            if t >= t_end or k >= times.size:
                return ys, cs
            c_now = c.copy()
            n = y.size
            fns = []
            for i, g in enumerate(self.roots):
                def fn(tt: float, z: np.ndarray, g=g) -> float:
                    return float(g(tt, z[:n], c_now))
                fn.terminal = True  # type: ignore[attr-defined]
                fn.direction = -1.0 if state[i] else 1.0  # type: ignore[attr-defined]
                fns.append(fn)
            # the next delayed execution or breakpoint of the field
            ahead = [(float(b(t, y, c_now)), j) for j, b in enumerate(self.breakpoints)]
            ahead = [(tb, j) for tb, j in ahead if t + 1e-12 * (1.0 + abs(t)) < tb < t_end]
            t_stop = min([t_end, *(p[0] for p in self.pending), *(tb for tb, _ in ahead)])
            outputs = times[k:][times[k:] <= t_stop]
            sol = self._solve(t, t_stop, y, c_now, np.union1d(outputs, [t_stop]), fns, rtol, atol)
            t_event = sol.t_events_time if sol.status == 1 else np.inf
            for tt, zz in zip(sol.t, np.atleast_2d(np.asarray(sol.y)).T):
                if tt > t_event:
                    break
                if k < times.size and tt == times[k]:
                    ys[k], cs[k] = zz[:n], c
                    k += 1
            if sol.status != 1:
                if t_stop >= t_end:
                    return ys, cs
                t = t_stop  # a delayed event is due: outputs at its time show the values before it
                y = np.asarray(sol.y[:n, -1], dtype=np.float64).copy()
                due = [p for p in self.pending if p[0] == t_stop]
                if due:
                    self.log.append(("stop", t, "due", min(due, key=lambda p: p[1])[1]))
                else:  # a breakpoint: the field changes, nothing fires
                    self.log.append(("stop", t, "time", min(ahead)[1]))
                state = self._run_due(t, y, c, state)
                continue
            t = t_event
            y = np.asarray(sol.y_events_state[:n], dtype=np.float64).copy()
            while k < times.size and times[k] <= t:  # an output at the event's time: before it fires
                ys[k], cs[k] = y, c
                k += 1
            hit = sol.t_events_which
            self.log.append(("stop", t, "root", hit[0]))
            before = state.copy()
            tol = 1e-12 * (1.0 + abs(t))
            on_root = [i for i, g in enumerate(self.roots) if abs(float(g(t, y, c))) <= tol]
            # scipy reports one terminal event per step: others on their roots at the same moment,
            # about to turn true, fire with it (their truth function is ambiguous exactly there)
            rising = sorted({i for i in hit if not before[i]}
                            | {i for i in on_root if not before[i] and float(self.roots[i](t + 1e3 * tol, y, c)) > 0})
            state[[i for i in hit if before[i]]] = False
            state = self._settle(t, y, c, state, forced=rising)
            for i, g in enumerate(self.roots):
                if abs(float(g(t, y, c))) <= tol:  # still on its root: it takes the side it crossed to
                    state[i] = i in rising or (before[i] and i not in hit)
            self._cancel(state)
            state = self._run_due(t, y, c, state)

    def _run_due(self, t: float, y: np.ndarray, c: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Execute what is due at ``t`` and what that sets off, until nothing more is due."""
        self._cancel(state)
        for _ in range(MAX_CASCADE):
            if not self._execute_due(t, y, c):
                return state
            state = self._settle(t, y, c, state)
            self._cancel(state)
        raise SolveError(f"{self.label}: delayed events kept firing each other at t={t:g} ({MAX_CASCADE} rounds)")

    def _solve(self, t0: float, t1: float, y: np.ndarray, c: np.ndarray, outputs: np.ndarray, fns: list,
               rtol: float, atol: float) -> Any:
        n = y.size
        if n:
            fun = lambda tt, z: np.asarray(self.rhs(tt, z, c), dtype=np.float64).reshape(-1)  # noqa: E731
            jac = lambda tt, z: self.jac(tt, z, c)  # noqa: E731
        else:  # nothing integrated: a still dummy state carries the clock to the next event
            y = np.zeros(1)
            fun = lambda tt, z: np.zeros(1)  # noqa: E731
            jac = lambda tt, z: np.zeros((1, 1))  # noqa: E731
        sol = self.solver.solve_ivp(fun, (t0, t1), y, rtol, atol, t_eval=outputs[outputs >= t0], jac=jac,
                                events=fns or None)
        if sol.status == -1:
            raise SolveError(f"{self.label}: the generated engine failed at t={sol.t[-1] if sol.t.size else t0:.4g}: "
                             f"{sol.message}")
        if sol.status == 1:
            times = [(te[0], i) for i, te in enumerate(sol.t_events) if te.size]
            first = min(te for te, _ in times)
            sol.t_events_time = float(first)
            sol.t_events_which = [i for te, i in times if te <= first + 1e-14 * (1.0 + abs(first))]
            sol.y_events_state = sol.y_events[sol.t_events_which[0]][0]
        return sol
