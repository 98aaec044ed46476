"""Formulas for the terms a hybrid model has learned.

:func:`propose` fits a sparse polynomial of the network's inputs to its learned term by best-subset
least squares with the Bayesian information criterion. Written here rather than taken from pysindy
(whose thresholded least squares keeps every term when the network is loose where the data are
silent): it is a few lines of numpy on one term of a few inputs.
:func:`term_report` compares each learned term with the model's own law over the states the
training data visit.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp


def monomials(n: int, degree: int) -> list[tuple[int, ...]]:
    """Exponent tuples of every monomial of ``n`` variables up to ``degree`` (the constant first)."""
    return [e for d in range(degree + 1) for e in _exponents(n, d)]


def _exponents(n: int, d: int) -> list[tuple[int, ...]]:
    out = []
    for combo in itertools.combinations_with_replacement(range(n), d):
        e = [0] * n
        for i in combo:
            e[i] += 1
        out.append(tuple(e))
    return out


def propose(x: np.ndarray, y: np.ndarray, names: list[str], degree: int = 3, max_terms: int = 3,
            delta_bic: float = 10.0) -> tuple[sp.Expr, float]:
    """A sparse polynomial ``y ≈ Σ c_k x^e_k`` of the inputs, and its relative RMS misfit.

    Every subset of at most ``max_terms`` monomials (up to ``degree``) is fitted by least squares
    and scored by the Bayesian information criterion; of the subsets within ``delta_bic`` of the
    best (less than strong evidence against them, Kass & Raftery 1995) the one with the fewest
    terms wins. A network is accurate where the data constrain it and loose elsewhere, so an
    unpenalised fit spends terms on that looseness.

    Args:
        x: Inputs ``(N, n)`` in physical units.
        y: The term ``(N,)``.
        names: The inputs' names (symbols of the formula).
        degree: Highest total degree of the library.
        max_terms: Largest number of terms considered.
        delta_bic: Width of the band of near-best subsets the sparsest is taken from.
    """
    scale = np.abs(x).max(0)
    scale = np.where(scale > 0, scale, 1.0)
    u = x / scale  # inputs of O(1): a well-conditioned library
    exps = monomials(x.shape[1], degree)
    lib = np.stack([np.prod(u ** np.array(e), axis=1) for e in exps], axis=1)
    n = len(y)
    floor = 1e-300 + 1e-30 * float(np.sum(y**2))
    fits = []
    for k in range(1, min(max_terms, len(exps)) + 1):
        for subset in itertools.combinations(range(len(exps)), k):
            coef = np.linalg.lstsq(lib[:, subset], y, rcond=None)[0]
            rss = float(np.sum((lib[:, subset] @ coef - y) ** 2)) + floor
            fits.append((n * np.log(rss / n) + k * np.log(n), k, subset, coef, rss))
    best = min(f[0] for f in fits)
    _, _, subset, coef, rss = min((f for f in fits if f[0] <= best + delta_bic), key=lambda f: (f[1], f[0]))
    misfit = float(np.sqrt(rss / n) / max(np.sqrt(np.mean(y**2)), 1e-300))
    symbols = [sp.Symbol(name) for name in names]
    expr = sp.Integer(0)
    for c, i in zip(coef, subset):
        value = c / np.prod(scale ** np.array(exps[i]))
        expr += sp.Float(float(f"{value:.4g}")) * sp.Mul(*[s**p for s, p in zip(symbols, exps[i])])
    return expr, misfit


def term_report(model: Any, dm: Any, degree: int = 3, out_dir: Path | None = None) -> str:
    """Learned against true, and the proposed formula, for each network of a hybrid model.

    The states are the clean training trajectories of ``dm`` (an ensemble datamodule) or its
    reference series; the true law is the SBML model's own (the rate law the network replaced).
    """
    system = dm.system
    math = system.math
    if hasattr(dm, "make_ensemble"):
        states = dm.make_ensemble()[np.asarray(dm.train_trajectories)][:, : dm.n_points].reshape(-1, system.n)
        times = np.tile(dm.grid[: dm.n_points], len(dm.train_trajectories))
    else:
        spec = dm.spec()
        states, times = np.asarray(spec.reference, dtype=np.float64), np.asarray(spec.times, dtype=np.float64)
    learned = model.learned_terms(states)
    lines = [f"hybrid model on {system.name}: {len(states)} visited states (training conditions)"]
    panels = []
    for r, net_values in zip(model.hybrid.replacements, learned.values()):
        truth_fn = math.generate_observables([r.target], set()) if r.target in math.reactions else None
        if truth_fn is not None:
            true = np.broadcast_to(np.asarray(truth_fn(times, states.T, list(system.constants))[0], dtype=np.float64),
                                   times.shape)
            law_expr = math.expand(math.kinetics[r.target], r.target)
            numeric = law_expr.xreplace({sp.Symbol(c): sp.Float(float(f"{v:.6g}"))
                                         for c, v in zip(math.constant_ids, system.constants)})
            law = f"{law_expr} = {numeric}" if numeric != law_expr else str(law_expr)
        else:
            true = np.full(times.shape, dict(zip(math.constant_ids, system.constants))[r.target])
            law = f"{true[0]:.6g} (constant)"
        inputs_fn = math.generate_observables(list(r.inputs), set())
        x = np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), times.shape)
                      for v in inputs_fn(times, states.T, list(system.constants))], axis=1)
        size = max(float(np.sqrt(np.mean(true**2))), 1e-300)
        rel_rms = float(np.sqrt(np.mean((net_values - true) ** 2)) / size)
        worst = float(np.max(np.abs(net_values - true)) / max(float(np.max(np.abs(true))), 1e-300))
        big = np.abs(true) >= 0.1 * np.max(np.abs(true))  # where the term moves the dynamics most
        big_rms = float(np.sqrt(np.mean((net_values[big] - true[big]) ** 2)) / np.sqrt(np.mean(true[big] ** 2)))
        formula, misfit = propose(x, net_values, list(r.inputs), degree=degree)
        panels.append((r.target, times, true, net_values))
        lines += [
            f"{r.target}: network of {list(r.inputs)}",
            f"  true law:          {law}",
            f"  learned vs true:   relative RMS error {rel_rms:.3e}, largest error {worst:.3e} of the largest rate; "
            f"over the {int(big.sum())} states where it exceeds 10 % of its largest value {big_rms:.3e}",
            f"  proposed formula:  {formula}   (sparsest near-best polynomial of degree <= {degree} by BIC, "
            f"relative misfit {misfit:.2e})",
        ]
    if out_dir is not None:
        lines.append(f"figure: {_plot_terms(panels, Path(out_dir))}")
    return "\n".join(lines)


def _plot_terms(panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], out_dir: Path) -> Path:
    """Learned against true, per term: over time (training conditions) and against each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stiffml.io import atomic_write

    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 3.4 * len(panels)), squeeze=False)
    for (target, times, true, learned), (left, right) in zip(panels, axes):
        t = np.where(times > 0, times, np.nan)
        left.plot(t, true, "k.", ms=4, label="true law")
        left.plot(t, learned, "r+", ms=5, label="network")
        left.set_xscale("log" if np.nanmin(t) > 0 and np.nanmax(t) / np.nanmin(t) > 1e3 else "linear")
        left.set_xlabel("time")
        left.set_ylabel(f"rate of {target}")
        left.legend(frameon=False)
        right.plot(true, learned, "r.", ms=4)
        lo, hi = float(min(true.min(), learned.min())), float(max(true.max(), learned.max()))
        right.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        right.set_xlabel(f"true {target}")
        right.set_ylabel(f"learned {target}")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "learned_terms.png"
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return path
