"""An SBML model compiled for calibration: the field with its Jacobians in states and constants, and
the initial state and constants as functions of the model's literals and a condition's overrides.

Numerical core only (numpy and sympy; no torch, no Lightning). The inputs of a simulation are one
vector ``u``: the file's literals (:meth:`ModelMath.literal_ids`) followed by one override slot per
model entity that some condition of the problem sets. Everything a solve needs — the constants
``c = C(u)``, the initial state ``y0 = Y0(u)`` and their derivatives in ``u`` — is generated once
per model and per set of entities a condition overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from stiffml.sbml.math import T, ModelMath


@dataclasses.dataclass(frozen=True)
class Dense:
    """A generated function returning the structurally non-zero entries of a matrix."""

    fn: Callable[..., list[Any]]
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]

    def __call__(self, *args: Any) -> np.ndarray:
        out = np.zeros(self.shape)
        if len(self.rows):
            out[self.rows, self.cols] = np.asarray(self.fn(*args), dtype=np.float64)
        return out


def _entries(exprs: Sequence[sp.Expr], wrt: Sequence[sp.Symbol], args: list, shape: tuple[int, int]) -> Dense:
    entries, rows, cols = [], [], []
    for i, e in enumerate(exprs):
        free = e.free_symbols
        for j, s in enumerate(wrt):
            if s in free:
                d = sp.diff(e, s)
                if d != 0:
                    entries.append(d)
                    rows.append(i)
                    cols.append(j)
    fn = sp.lambdify(args, entries, modules="numpy", cse=True)
    return Dense(fn, np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp), shape)


def _rows(values: Sequence[Any], k_count: int) -> np.ndarray:
    """Generated outputs (arrays over ``K`` columns, or scalars where an entry is constant) as one
    ``[len(values), K]`` array."""
    out = np.empty((len(values), k_count))
    for i, v in enumerate(values):
        out[i] = v
    return out


@dataclasses.dataclass(frozen=True)
class Start:
    """Initial state and constants of one override set, as functions of ``u``."""

    y0: Callable[[np.ndarray], list[Any]]
    y0_du: Dense
    c: Callable[[np.ndarray], list[Any]]
    c_du: Dense


class CompiledModel:
    """The generated functions of one SBML model for forward-sensitivity solves.

    Args:
        math: The model's sympy form (no events, nothing unsupported).
        overridable: Model entities that conditions may set (each gets an override slot in ``u``).

    Attributes:
        state_ids: What the ODE integrates.
        constant_ids: Symbols constant during a solve (their values ``c = C(u)``).
        input_ids: Names of the entries of ``u``: literal ids, then ``override:<id>``.
        defaults: The file's value of every entry of ``u`` (NaN for override slots).
    """

    def __init__(self, math: ModelMath, overridable: Sequence[str] = ()) -> None:
        self.math = math
        self.state_ids = list(math.state_ids)
        self.constant_ids = list(math.constant_ids)
        self.literals = math.literal_ids()
        self.overridable = list(overridable)
        self.input_ids = [*self.literals, *(f"override:{o}" for o in self.overridable)]
        literal_values = math.literal_values()
        self.defaults = np.array([literal_values[i] for i in self.literals] + [np.nan] * len(self.overridable))
        self.index = {i: k for k, i in enumerate(self.literals)}
        self.override_index = {o: len(self.literals) + k for k, o in enumerate(self.overridable)}
        self.n, self.n_c, self.n_u = len(self.state_ids), len(self.constant_ids), len(self.input_ids)
        self._u_symbols = [sp.Symbol(f"_q_{i}") for i in self.literals] + [sp.Symbol(f"_o_{o}") for o in self.overridable]
        self._starts: dict[frozenset[str], Start] = {}

        ys = [sp.Symbol(s) for s in self.state_ids]
        cs = [sp.Symbol(c) for c in self.constant_ids]
        # SBML ids may be Python keywords: generated code only sees positional names
        self._ys = [sp.Symbol(f"_y{i}") for i in range(self.n)]
        self._cs = [sp.Symbol(f"_c{j}") for j in range(self.n_c)]
        self._rename = dict(zip(ys, self._ys)) | dict(zip(cs, self._cs))
        rhs = [e.xreplace(self._rename) for e in (math.rhs or [])]
        args = [T, self._ys, self._cs]
        self.f = sp.lambdify(args, rhs, modules="numpy", cse=True)
        self.f_y = _entries(rhs, self._ys, args, (self.n, self.n))
        self.f_c = _entries(rhs, self._cs, args, (self.n, self.n_c))
        # the sensitivity right-hand side needs all three at once: one function, shared subexpressions
        self._all = sp.lambdify(args, [*rhs, *self._exprs(rhs, self.f_y, self._ys), *self._exprs(rhs, self.f_c, self._cs)],
                                modules="numpy", cse=True)

    @staticmethod
    def _exprs(rhs: list[sp.Expr], dense: Dense, wrt: list[sp.Symbol]) -> list[sp.Expr]:
        return [sp.diff(rhs[i], wrt[j]) for i, j in zip(dense.rows, dense.cols)]

    def rhs_and_jacobians(self, t: float, y: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The field, ``df/dy`` and ``df/dc`` at one state, from one generated function."""
        vals = self._all(t, y, c)
        n, k = self.n, len(self.f_y.rows)
        f = np.array([float(v) for v in vals[:n]], dtype=np.float64)
        fy = np.zeros((n, n))
        fy[self.f_y.rows, self.f_y.cols] = vals[n:n + k]
        fc = np.zeros((n, self.n_c))
        fc[self.f_c.rows, self.f_c.cols] = vals[n + k:]
        return f, fy, fc

    def rhs_and_jacobians_batch(self, t: float, y: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The field (``[n, K]``), ``df/dy`` (``[K, n, n]``) and ``df/dc`` (``[K, n, n_c]``) at ``K``
        states at once (``y``: ``[n, K]``, ``c``: ``[n_c, K]``): the generated numpy code is
        elementwise, so one call evaluates every column."""
        k_count = y.shape[1]
        vals = _rows(self._all(t, y, c), k_count)
        n, k = self.n, len(self.f_y.rows)
        fy = np.zeros((k_count, n, n))
        fy[:, self.f_y.rows, self.f_y.cols] = vals[n:n + k].T
        fc = np.zeros((k_count, n, self.n_c))
        fc[:, self.f_c.rows, self.f_c.cols] = vals[n + k:].T
        return vals[:n], fy, fc

    def rhs_batch(self, t: float, y: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The field at ``K`` states (``y``: ``[n, K]``; returns ``[n, K]``)."""
        return _rows(self.f(t, y, c), y.shape[1]) if self.n else np.zeros((0, y.shape[1]))

    def f_y_batch(self, t: float, y: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``df/dy`` at ``K`` states (``y``: ``[n, K]``; returns ``[K, n, n]``)."""
        k_count = y.shape[1]
        out = np.zeros((k_count, self.n, self.n))
        if len(self.f_y.rows):
            out[:, self.f_y.rows, self.f_y.cols] = _rows(self.f_y.fn(t, y, c), k_count).T
        return out

    def rhs(self, t: float, y: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The field at one state (shape ``(n,)``)."""
        vals = self.f(t, y, c)
        return np.array([float(v) for v in vals], dtype=np.float64) if self.n else np.zeros(0)

    def start(self, overridden: frozenset[str]) -> Start:
        """The generated initial state and constants for conditions overriding ``overridden``."""
        if overridden not in self._starts:
            exprs = self.math.initial_expressions(overridden)
            y0 = [exprs[s] for s in self.state_ids]
            c = [exprs[k] for k in self.constant_ids]
            args = [self._u_symbols]
            self._starts[overridden] = Start(
                y0=sp.lambdify(args, y0, modules="numpy", cse=True),
                y0_du=_entries(y0, self._u_symbols, args, (self.n, self.n_u)),
                c=sp.lambdify(args, c, modules="numpy", cse=True),
                c_du=_entries(c, self._u_symbols, args, (self.n_c, self.n_u)),
            )
        return self._starts[overridden]

    def symbol_expression(self, sid: str) -> sp.Expr:
        """A model symbol's value in the generated argument names (``_y{i}``, ``_c{j}``, ``T``):
        species as concentrations unless amount-valued, reactions as their rates."""
        amount = sid in self.math.species and not self.math.concentration_valued(sid)
        return self.math.observable(sid, amount).xreplace(self._rename)

    @property
    def state_symbols(self) -> list[sp.Symbol]:
        return self._ys

    @property
    def constant_symbols(self) -> list[sp.Symbol]:
        return self._cs
