"""Differentiable simulation of SBML models with events, in torch.

Gradients of a simulation through events need the derivative of each event time. For a trigger
root ``r(t*, y(t*; θ), θ) = 0`` the implicit-function theorem gives

    dt*/dθ = −(∂r/∂θ + ∂r/∂y · dy/dθ) / (∂r/∂t + ∂r/∂y · f),

and the state after the event picks up the classical sensitivity jump
``(∂g/∂y · f⁻ − f⁺) · dt*/dθ`` (``g`` the event's assignments). Both come out of autograd here by
one Newton step whose value is (numerically) zero and whose derivative is exact:
``t* = t̂ − r(t̂, y(t̂)) / ṙ`` with ``ṙ`` detached, the state before the event moved along ``f⁻`` by
``t* − t̂``, the assignments applied, and the state after moved back along ``f⁺`` by the same
amount before the next segment starts at ``t̂``. A delayed execution's time is the trigger's
(differentiable) time plus the delay, so it carries both derivatives.

Where events fire, in which order and with which cascades is decided once by the numpy engine
(:class:`stiffml.sbml.events.EventSimulator`, scipy's event location), which logs what it did;
the torch pass replays that log with the generated torch functions and integrates between events
with the differentiable Rosenbrock23 (:mod:`stiffml.solvers.rosenbrock`). The schedule is fixed by
the values of the parameters given, as it is for any gradient-based method: a parameter change
that adds or removes an event firing changes the function, not its derivative.

Hand-written because no Python library differentiates through SBML events (AMICI does it in C++
with CVODES; diffrax and torchdiffeq locate events in explicit solvers only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from stiffml.sbml.events import EventSimulator
from stiffml.sbml.math import T
from stiffml.solvers.rosenbrock import rosenbrock23


# how far from an event (relative to 1 + |t|) the field on either side is read
SIDE = 1e-8


class TorchEventSimulator:
    """Differentiable simulation of one SBML model (with or without events) on the generated math.

    Args:
        system: The model (:class:`stiffml.sbml.SBMLSystem`).
    """

    def __init__(self, system: Any) -> None:
        self.system = system
        self.math = system.math
        self._observed: dict[tuple, Any] = {}
        gen = system._generated()  # refuses what the generated math cannot express, by name
        self._rhs = gen.rhs_torch
        label = f"SBML model '{system.model}'"
        moving = system.has_events or bool(self.math.switch_conditions())
        self.events = EventSimulator(self.math, gen.rhs, system._jac_at, label) if moving else None
        if self.events is not None:
            ev = self.events
            pr = lambda e: sp.lambdify(ev.args, e, modules="torch")  # noqa: E731
            self._roots = [pr(r) for r in ev.root_exprs]
            self._assign = [pr(a) for a in ev.assign_exprs]
            self._delay = [pr(d) if d is not None else None for d in ev.delay_exprs]
            self._breakpoints = [pr(b) for b in ev.breakpoint_exprs]

    # ------------------------------------------------------------------------------ pieces
    def _f(self, t: Tensor, y: list[Tensor], c: list[Tensor]) -> Tensor:
        ref = c[0] if c else y[0]
        values = self._rhs(t, y, c)
        return torch.stack([torch.as_tensor(v, dtype=ref.dtype).expand(()) for v in values]) if y else ref.new_zeros(0)

    def _integrate(self, y: list[Tensor], c: list[Tensor], grid: np.ndarray, rtol: float, atol: float) -> list[list[Tensor]]:
        """States at ``grid`` (its first entry the start), as lists of scalars."""
        if not y or grid[-1] == grid[0]:
            return [list(y) for _ in grid]
        dtype = y[0].dtype
        t = torch.as_tensor(grid, dtype=dtype)

        def func(tt: Tensor, z: Tensor) -> Tensor:  # (B = 1, n)
            values = self._rhs(tt, list(z.unbind(-1)), c)
            return torch.stack([torch.as_tensor(v, dtype=dtype).expand(z.shape[:-1]) for v in values], dim=-1)

        out = rosenbrock23(func, torch.stack(y)[None, :], t, rtol=rtol, atol=atol, max_steps=1_000_000)
        return [list(out[k, 0].unbind(-1)) for k in range(len(grid))]

    def _side(self, t: float, y: list[Tensor], c: list[Tensor], sign: float) -> Tensor:
        """The field just before (``sign`` −1) or after (+1) an event: where the field itself jumps
        there (a piecewise of time or state), its value exactly at the jump is ambiguous, so it is
        taken a hair away along the flow."""
        dtype = (c or y)[0].dtype
        h = SIDE * (1.0 + abs(t))
        if not y:
            return self._f(torch.tensor(t + sign * h, dtype=dtype), y, c)
        f0 = self._f(torch.tensor(t, dtype=dtype), y, c).detach()
        moved = [v + sign * h * fv for v, fv in zip(y, f0)]
        return self._f(torch.tensor(t + sign * h, dtype=dtype), moved, c)

    def _apply(self, i: int, values: Sequence[Tensor], y: list[Tensor], c: list[Tensor]) -> None:
        ev = self.events
        before = {k: c[k] for kind, k in ev.targets[i] if kind == "c" and k in ev._contents}
        for (kind, k), v in zip(ev.targets[i], values):
            (y if kind == "y" else c)[k] = torch.as_tensor(v, dtype=(c or y)[0].dtype)
        for k, old in before.items():  # a resized compartment keeps the amounts inside
            if float(c[k].detach()) != float(old.detach()):
                for kind, j in ev._contents[k]:
                    target = y if kind == "y" else c
                    target[j] = target[j] * old / c[k]

    def _values(self, i: int, t: Tensor, y: list[Tensor], c: list[Tensor]) -> list[Tensor]:
        if not self.events.targets[i]:
            return []
        out = self._assign[i](t, y, c)
        return [torch.as_tensor(v, dtype=(c or y)[0].dtype) for v in (out if isinstance(out, (list, tuple)) else [out])]

    def _event_time(self, i: int, t_hat: float, y: list[Tensor], c: list[Tensor], f: Tensor) -> Tensor:
        """``t̂ − r/ṙ``: the value t̂ (to the solver's accuracy), the derivative of the root's time."""
        dtype = (c or y)[0].dtype
        t0 = torch.tensor(t_hat, dtype=dtype)
        r = torch.as_tensor(self._roots[i](t0, y, c), dtype=dtype)
        tt = t0.clone().requires_grad_(True)
        yy = [v.detach().clone().requires_grad_(True) for v in y]
        with torch.enable_grad():
            rr = torch.as_tensor(self._roots[i](tt, yy, [v.detach() for v in c]), dtype=dtype)
            grads = torch.autograd.grad(rr, [tt, *yy], allow_unused=True) if rr.requires_grad else [None] * (1 + len(yy))
        zero = torch.zeros((), dtype=dtype)
        d_dt, d_dy = grads[0], grads[1:]  # ṙ = ∂r/∂t + Σ_j ∂r/∂y_j · f_j
        rdot = (d_dt if d_dt is not None else zero) + sum(
            (g * f[j].detach() for j, g in enumerate(d_dy) if g is not None), zero)
        if float(rdot) == 0.0:  # the root is touched, not crossed: no derivative through its time
            return t0
        return t0 - r / rdot.detach()

    # -------------------------------------------------------------------------------- run
    def simulate(self, times: Any, variables: Sequence[str], amounts: Sequence[str] = (),
                 constants: Tensor | None = None, y0: Tensor | None = None,
                 rtol: float = 1e-8, atol: float = 1e-10) -> Tensor:
        """Values of SBML symbols at ``times`` (from t = 0), differentiable with respect to
        ``constants`` and ``y0``.

        Args:
            times: Output times, increasing, from 0 on.
            variables: SBML ids, as :meth:`SBMLSystem.simulate` takes them.
            amounts: Species reported as amounts.
            constants: Values of the model's constants, ordered as ``math.constant_ids`` (default
                the system's); the gradient's variables.
            y0: Initial state (default the system's). Initial assignments are evaluated with the
                numpy values: pass ``y0`` to differentiate with respect to it.
            rtol: Relative tolerance of the solves.
            atol: Absolute tolerance of the solves.

        Returns:
            Tensor ``[len(times), len(variables)]`` in the dtype of ``constants``.
        """
        sys_ = self.system
        times = np.asarray(times, dtype=np.float64)
        c_t = torch.as_tensor(np.asarray(sys_.constants, dtype=np.float64)) if constants is None else constants
        y_t = torch.as_tensor(np.asarray(sys_.y0, dtype=np.float64), dtype=c_t.dtype) if y0 is None else y0
        dtype = c_t.dtype
        y, c = list(y_t.unbind(0)), list(c_t.unbind(0))
        snaps: list[tuple[list[Tensor], list[Tensor]]] = []
        log: list[tuple] = []
        if self.events is not None:  # where and in which order events fire: the numpy engine decides
            self.events.run(y_t.detach().cpu().numpy().astype(np.float64), c_t.detach().cpu().numpy().astype(np.float64),
                            times, rtol, atol)
            log = list(self.events.log)
        pending: dict[int, tuple[Tensor, int, list[Tensor] | None]] = {}
        t_det = 0.0
        t_now = torch.zeros((), dtype=dtype)
        k = 0
        pos = 0

        def replay_ops(t_stop: Tensor) -> None:
            nonlocal pos
            while pos < len(log) and log[pos][0] != "stop":
                op = log[pos]
                pos += 1
                if op[0] == "apply":
                    self._apply(op[1], self._values(op[1], t_stop, y, c), y, c)
                elif op[0] == "schedule":
                    i, seq = op[1], op[2]
                    d = torch.as_tensor(self._delay[i](t_stop, y, c), dtype=dtype)
                    values = self._values(i, t_stop, y, c) if self.events.trigger_time_values[i] else None
                    pending[seq] = (t_stop + d, i, values)
                elif op[0] == "execute":
                    _, i, values = pending.pop(op[1])
                    self._apply(i, values if values is not None else self._values(i, t_stop, y, c), y, c)

        replay_ops(t_now)  # events at t = 0 (initialValue false): outputs at 0 show their effect
        while k < times.size and times[k] <= t_det:
            snaps.append((list(y), list(c)))
            k += 1
        while True:
            stop = log[pos] if pos < len(log) else None
            t_end = float(stop[1]) if stop is not None else float(times[-1]) if times.size else 0.0
            if stop is None and k >= times.size:
                break
            outs = times[k:][times[k:] <= t_end]
            grid = np.unique(np.concatenate([[t_det], outs, [t_end]]))
            states = self._integrate(y, c, grid, rtol, atol)
            for tt, st in zip(grid[1:], states[1:]):
                if k < times.size and tt == times[k]:
                    snaps.append((list(st), list(c)))
                    k += 1
            y = list(states[-1])
            if stop is None:
                break
            pos += 1
            f_minus = self._side(t_end, y, c, -1.0)
            if stop[2] == "root":
                t_stop = self._event_time(stop[3], t_end, y, c, f_minus)
            elif stop[2] == "time":  # a breakpoint of the field, a function of the constants
                t_stop = torch.as_tensor(self._breakpoints[stop[3]](torch.tensor(t_end, dtype=dtype), y, c), dtype=dtype)
            else:
                t_stop = pending[stop[3]][0]
            dt = t_stop - t_end
            y[:] = [v + fv * dt for v, fv in zip(y, f_minus)] if y else y
            replay_ops(t_stop)
            f_plus = self._side(t_end, y, c, 1.0)
            y[:] = [v - fv * dt for v, fv in zip(y, f_plus)] if y else y
            t_det = t_end
        observe = self._observables(list(variables), set(amounts))
        rows = []
        for (ys, cs), t in zip(snaps, times):
            vals = observe(torch.tensor(float(t), dtype=dtype), ys, cs)
            rows.append(torch.stack([torch.as_tensor(v, dtype=dtype).expand(()) for v in vals]))
        return torch.stack(rows) if rows else torch.zeros((0, len(variables)), dtype=dtype)

    def _observables(self, variables: list[str], amounts: set[str]) -> Any:
        key = (tuple(variables), frozenset(amounts))
        if key not in self._observed:  # lambdified once per selection, not per simulate call
            math = self.math
            exprs = [math.observable(v, v in amounts) for v in variables]
            ys, cs, rename = math._arguments()
            self._observed[key] = sp.lambdify([T, ys, cs], [e.xreplace(rename) for e in exprs], modules="torch")
        return self._observed[key]
