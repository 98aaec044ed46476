"""Seeded distributions of initial states, for ensembles that test whether a surrogate generalises.

A distribution names state components and the interval each is drawn from, uniformly or
log-uniformly: ``{y1: [0.5, 1.0], y2: [0.0, 1.0e-4]}`` or ``{y2: {low: 1.0e-6, high: 1.0e-4,
scale: log}}``. Components it does not name keep the system's default, except one that a
conservation law of the system completes (ROBER: ``y1 + y2 + y3 = 1``, so ``y3`` is the rest); a
draw whose completed component would be negative is drawn again. Numerical core: numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_REDRAWS = 1000


@dataclasses.dataclass(frozen=True)
class Interval:
    """One component's interval and scale (``linear`` or ``log``)."""

    low: float
    high: float
    scale: str = "linear"

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.scale == "log":
            return np.exp(rng.uniform(np.log(self.low), np.log(self.high), size))
        return rng.uniform(self.low, self.high, size)


def parse_intervals(spec: Mapping[str, Any], names: Sequence[str], what: str,
                    defaults: Mapping[str, float] | None = None) -> dict[str, Interval]:
    """``{name: Interval}`` from a config mapping; one-line errors naming the bad entry.

    Args:
        spec: ``{name: [low, high]}`` or ``{name: {low, high, scale}}``; with ``defaults`` also
            ``{name: {factor: f}}``: from ``default/f`` to ``default·f``, log-uniform unless
            ``scale: linear``.
        names: The names that may be drawn.
        what: For messages (``data.initial_states``).
        defaults: Default values, for ``factor``.
    """
    out = {}
    keys = ["low", "high", "scale"] + (["factor"] if defaults is not None else [])
    for name, value in spec.items():
        if name not in names:
            raise ValueError(f"{what} names {name!r}, which the system does not have; valid: {list(names)}")
        if isinstance(value, Mapping):
            unknown = set(value) - set(keys)
            if unknown:
                raise ValueError(f"{what}.{name} has unknown keys {sorted(unknown)}; valid: {keys}")
            low, high, scale = value.get("low"), value.get("high"), value.get("scale", "linear")
            if "factor" in value:
                factor = value["factor"]
                if "low" in value or "high" in value:
                    raise ValueError(f"{what}.{name}: give a factor or low and high, not both")
                if not (isinstance(factor, (int, float)) and np.isfinite(factor) and factor >= 1):
                    raise ValueError(f"{what}.{name}.factor must be a number >= 1, got {factor!r}")
                default = float(defaults[name])  # type: ignore[index]
                if not default > 0:
                    raise ValueError(f"{what}.{name}: a factor needs a positive default value, got {default}")
                low, high, scale = default / factor, default * factor, value.get("scale", "log")
        elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            (low, high), scale = value, "linear"
        else:
            raise ValueError(f"{what}.{name} must be [low, high] or {{low, high, scale}}, got {value!r}")
        try:
            low, high = float(low), float(high)
        except (TypeError, ValueError):
            raise ValueError(f"{what}.{name} needs numbers low and high, got {low!r}, {high!r}") from None
        if scale not in ("linear", "log"):
            raise ValueError(f"{what}.{name}: unknown scale {scale!r}; valid: ['linear', 'log']")
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(f"{what}.{name} needs finite low <= high, got [{low}, {high}]")
        if scale == "log" and not low > 0:
            raise ValueError(f"{what}.{name}: a log scale needs low > 0, got {low}")
        out[name] = Interval(low, high, scale)
    return out


class StateDistribution:
    """Initial states drawn per component, completed by the system's conservation law.

    Args:
        spec: The distribution (see the module docstring).
        names: The system's state names.
        default: The system's default initial state.
        conservation: ``(weights, total)`` with ``Σ weights·y = total`` along every trajectory, or
            ``None``.

    Raises:
        ValueError: An unknown component, a bad interval, or bounds that violate the conservation
            law (a component alone above the total, or the smallest draw's sum above it).
    """

    def __init__(self, spec: Mapping[str, Any], names: Sequence[str], default: Sequence[float],
                 conservation: tuple[Sequence[float], float] | None = None) -> None:
        what = "data.initial_states"
        if not spec:
            raise ValueError(f"{what} is empty: name at least one of {list(names)}")
        self.names = list(names)
        self.intervals = parse_intervals(spec, names, what)
        self.default = np.asarray(default, dtype=np.float64)
        self.completed: int | None = None
        self.weights: np.ndarray | None = None
        self.total = 0.0
        if conservation is not None:
            weights, total = np.asarray(conservation[0], dtype=np.float64), float(conservation[1])
            free = [i for i, n in enumerate(self.names) if n not in self.intervals and weights[i] != 0]
            law = " + ".join(f"{w:g}·{n}" if w != 1 else n for w, n in zip(weights, self.names) if w)
            if len(free) != 1:
                left = [self.names[i] for i in free]
                raise ValueError(f"{what} must leave exactly one component of the conservation law {law} = "
                                 f"{total:g} undrawn, to complete it; it leaves {left}")
            self.completed, self.weights, self.total = free[0], weights, total
            for name, iv in self.intervals.items():
                w = weights[self.names.index(name)]
                if w > 0 and iv.high * w > total:
                    raise ValueError(f"{what}.{name} = [{iv.low}, {iv.high}] violates the conservation law "
                                     f"{law} = {total:g}: {name} alone can exceed the total")
            smallest = sum(weights[self.names.index(n)] * iv.low for n, iv in self.intervals.items())
            if smallest > total:
                raise ValueError(f"{what} violates the conservation law {law} = {total:g}: even the smallest "
                                 f"draw sums to {smallest:g}, leaving {self.names[self.completed]} negative")

    def draw(self, n: int, seed: int) -> np.ndarray:
        """``n`` initial states ``(n, n_states)`` from ``seed`` (the same seed, the same states)."""
        rng = np.random.default_rng(seed)
        out = np.tile(self.default, (n, 1))
        for k in range(n):
            for _ in range(MAX_REDRAWS):
                y = self.default.copy()
                for name, iv in self.intervals.items():
                    y[self.names.index(name)] = iv.draw(rng, 1)[0]
                if self.completed is not None:
                    i, w = self.completed, self.weights
                    rest = self.total - float(np.dot(np.delete(w, i), np.delete(y, i)))
                    y[i] = rest / w[i]
                    if y[i] < 0:
                        continue
                out[k] = y
                break
            else:
                raise ValueError(f"data.initial_states: no draw in {MAX_REDRAWS} left "
                                 f"{self.names[self.completed]} non-negative")
        return out


class ParameterDistribution:
    """System parameters (rate constants) drawn per ensemble member, and their scaled form.

    Args:
        spec: ``{k1: {factor: 2}, k3: [5.0e3, 2.0e4], ...}`` (see :func:`parse_intervals`).
        defaults: The system's parameters and their values.

    Raises:
        ValueError: An empty spec, a name the system has no parameter for, or a bad interval.
    """

    def __init__(self, spec: Mapping[str, Any], defaults: Mapping[str, float]) -> None:
        what = "data.rate_constants"
        if not spec:
            raise ValueError(f"{what} is empty: name at least one of {sorted(defaults)}")
        self.intervals = parse_intervals(spec, list(defaults), what, defaults)
        self.names = list(self.intervals)

    def draw(self, n: int, seed: int) -> np.ndarray:
        """``n`` members' values ``(n, p)`` (columns in :attr:`names` order) from ``seed``.

        The stream is ``[seed, 7]``, not the initial states' ``seed``, so drawing rate constants
        leaves the initial states a seed gives unchanged; members are drawn row by row, so the
        first ``n`` members stay the same when more are drawn."""
        rng = np.random.default_rng([seed, 7])
        ivs = list(self.intervals.values())
        return np.array([[iv.draw(rng, 1)[0] for iv in ivs] for _ in range(n)], dtype=np.float64).reshape(n, len(ivs))

    def scaled(self, values: np.ndarray) -> np.ndarray:
        """Values ``(..., p)`` mapped affinely (in log for log intervals) so each interval spans
        [−1, 1]: what a parameter-conditioned model reads."""
        values = np.asarray(values, dtype=np.float64)
        out = np.empty_like(values)
        for j, iv in enumerate(self.intervals.values()):
            v, lo, hi = values[..., j], iv.low, iv.high
            if iv.scale == "log":
                v, lo, hi = np.log(v), np.log(lo), np.log(hi)
            half = (hi - lo) / 2
            out[..., j] = (v - (hi + lo) / 2) / (half if half > 0 else 1.0)
        return out
