"""SBML events fired at a time, for the forward-sensitivity solves of PEtab calibration.

Calibration models use events for what happens at a time: a dose at ``time >= t_dose``, a stimulus
switched on. Such a trigger is a root ``r(t, c)`` of time and constants alone, so its firing time
``τ(c)`` is known before the solve (sympy solves ``r = 0`` for ``t``) and the solve is split there.
At the event the assignments ``g`` map the state and constants before it to those after, and the
sensitivities jump as the classical result says:

    s⁺ = G_y s⁻ + G_c c_θ + (G_y f⁻ + G_t − f⁺) τ_θ,     c_θ⁺ = H_y s⁻ + H_c c_θ + (H_y f⁻ + H_t) τ_θ,

with ``G``/``H`` the full maps of states/constants (identity where the event assigns nothing) and
``τ_θ = ∇τ · c_θ`` the derivative of the firing time. An output at the firing time shows the values
before the event (as :class:`stiffml.sbml.events.EventSimulator` and the SBML test suite have it).

Refused by name: triggers that read the state (their time is found during the solve), delays,
priorities, events that resize compartments or assign a constant that a trigger reads, and
triggers that turn false rather than true as time goes on. Hand-written because scipy's solvers
have no sensitivities and AMICI, which has them, is C++ over CVODES.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import sympy as sp

from stiffml.petab.errors import PEtabUnsupported
from stiffml.sbml.document import SBMLUnsupported
from stiffml.sbml.events import root_function
from stiffml.sbml.math import T


@dataclasses.dataclass
class _Event:
    id: str
    time: Any            # τ(c)
    time_dc: Any         # ∇τ, a list of n_c expressions
    fires_at_start: bool  # initialValue false: a trigger already true at t = 0 fires there
    state: Any           # G(t, y, c): all states after the event
    const: Any           # H(t, y, c): all constants after it
    jac: Any             # [G_y, G_c, G_t, H_y, H_c, H_t] flattened
    exprs: tuple = ()    # (τ, state list, constant list) as sympy, for the torch forms


class TimedEvents:
    """The events of a compiled model, all fired at times of the constants.

    Args:
        model: The :class:`~stiffml.petab.model.CompiledModel`.
        label: For messages (the SBML file).

    Raises:
        PEtabUnsupported: An event this engine does not fire (see the module docstring), named.
    """

    def __init__(self, model: Any, label: str) -> None:
        self.model = model
        math = model.math
        ys, cs = model.state_symbols, model.constant_symbols
        rename = model._rename
        args = [T, ys, cs]
        defs = math.event_definitions()
        read_by_triggers: set[sp.Symbol] = set()
        self.events: list[_Event] = []
        for ev in defs:
            where = f"{label}: event '{ev['id']}'"
            if ev["delay"] is not None or ev["priority"] is not None:
                raise PEtabUnsupported(f"{where} has a {'delay' if ev['delay'] is not None else 'priority'}; "
                                       "the calibration engine fires events without them")
            trigger = ev["trigger"].xreplace(rename)
            if trigger.free_symbols & set(ys):
                raise PEtabUnsupported(f"{where}: its trigger {ev['trigger']} reads the state; the calibration engine "
                                       "fires events at times of the parameters only")
            try:
                root = root_function(trigger, where)
                if root.atoms(sp.Min, sp.Max):
                    raise SBMLUnsupported(f"{where}: an and/or of comparisons")
                slope = sp.diff(root, T)
                solutions = sp.solve(root, T)
            except (SBMLUnsupported, NotImplementedError) as err:
                raise PEtabUnsupported(f"{where}: the trigger {ev['trigger']} is not a time the calibration engine can "
                                       f"solve for ({err})") from None
            if len(solutions) != 1 or slope.free_symbols - set(cs) or not (slope.is_positive or slope.is_number and
                                                                          float(slope) > 0):
                raise PEtabUnsupported(f"{where}: the trigger {ev['trigger']} does not turn true at one time as time "
                                       "goes on")
            tau = solutions[0]
            read_by_triggers |= tau.free_symbols
            assigned = dict(ev["assignments"])
            state = [assigned[s].xreplace(rename) if s in assigned else y for s, y in zip(model.state_ids, ys)]
            const = [assigned[c].xreplace(rename) if c in assigned else s for c, s in zip(model.constant_ids, cs)]
            for var in assigned:
                if var in math.compartments:
                    raise PEtabUnsupported(f"{where} resizes the compartment '{var}'; the calibration engine does not")
                if var not in model.state_ids and var not in model.constant_ids:
                    raise PEtabUnsupported(f"{where} assigns to the rule-defined symbol '{var}'")
            jac = [sp.diff(e, v) for block, wrt in ((state, ys), (state, cs), (state, [T]), (const, ys), (const, cs),
                                                    (const, [T])) for e in block for v in wrt]
            self.events.append(_Event(
                id=ev["id"],
                time=sp.lambdify([cs], tau, modules="numpy"),
                time_dc=sp.lambdify([cs], [sp.diff(tau, c) for c in cs], modules="numpy"),
                fires_at_start=not ev["initial_value"],
                state=sp.lambdify(args, state, modules="numpy"),
                const=sp.lambdify(args, const, modules="numpy"),
                jac=sp.lambdify(args, jac, modules="numpy"),
                exprs=(tau, state, const),
            ))
        for ev, spec in zip(self.events, defs):
            hit = {c for c, s in zip(model.constant_ids, cs) if s in read_by_triggers and c in dict(spec["assignments"])}
            if hit:
                raise PEtabUnsupported(f"{label}: event '{ev.id}' assigns {sorted(hit)}, which a trigger reads; the "
                                       "calibration engine fixes the firing times before the solve")

    def __bool__(self) -> bool:
        return bool(self.events)

    def torch_forms(self, i: int) -> tuple[Any, Any, Any]:
        """Event ``i``'s firing time ``τ(c)`` and assignments ``G(t, y, c)``, ``H(t, y, c)`` as torch
        functions of lists of 0-d tensors (differentiable: the SciML engine takes its event
        sensitivities from autograd)."""
        cache = self.__dict__.setdefault("_torch", {})
        if i not in cache:
            tau, state, const = self.events[i].exprs
            ys, cs = self.model.state_symbols, self.model.constant_symbols
            cache[i] = (sp.lambdify([cs], tau, modules="torch"), sp.lambdify([T, ys, cs], state, modules="torch"),
                        sp.lambdify([T, ys, cs], const, modules="torch"))
        return cache[i]

    def schedule(self, c: np.ndarray, dc: np.ndarray, t_end: float) -> list[tuple[float, int, np.ndarray]]:
        """``(time, event index, dτ/dθ)`` of the firings before ``t_end``, in time then document order."""
        out = []
        for i, ev in enumerate(self.events):
            t = float(ev.time(c))
            if not np.isfinite(t):
                continue
            if t <= 0.0:
                if not ev.fires_at_start:
                    continue  # already true at the start, with initialValue true: no transition
                t, dtau = 0.0, np.zeros(dc.shape[1])
            else:
                dtau = np.asarray(ev.time_dc(c), dtype=np.float64) @ dc
            if t < t_end:
                out.append((t, i, dtau))
        return sorted(out, key=lambda e: (e[0], e[1]))

    def fire(self, i: int, t: float, y: np.ndarray, s: np.ndarray, c: np.ndarray, dc: np.ndarray,
             dtau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """State, its sensitivities, constants and theirs just after event ``i`` fires at ``t``."""
        m, ev = self.model, self.events[i]
        n, n_c = m.n, m.n_c
        f_before = m.rhs(t, y, c)
        y_new = np.asarray(ev.state(t, y, c), dtype=np.float64).reshape(n)
        c_new = np.asarray(ev.const(t, y, c), dtype=np.float64).reshape(n_c)
        blocks = np.asarray(ev.jac(t, y, c), dtype=np.float64)
        sizes = [n * n, n * n_c, n, n_c * n, n_c * n_c, n_c]
        parts = np.split(blocks, np.cumsum(sizes)[:-1])
        g_y, g_c, g_t = parts[0].reshape(n, n), parts[1].reshape(n, n_c), parts[2].reshape(n)
        h_y, h_c, h_t = parts[3].reshape(n_c, n), parts[4].reshape(n_c, n_c), parts[5].reshape(n_c)
        f_after = m.rhs(t, y_new, c_new)
        s_new = g_y @ s + g_c @ dc + np.outer(g_y @ f_before + g_t - f_after, dtau)
        dc_new = h_y @ s + h_c @ dc + np.outer(h_y @ f_before + h_t, dtau)
        return y_new, s_new, c_new, dc_new
