"""Formulas for the terms a hybrid model has learned.

:func:`propose` fits a sparse polynomial of the network's inputs to its learned term by
sequentially thresholded least squares (Brunton et al. 2016, SINDy). Written here rather than
taken from pysindy: it is twenty lines of numpy on one term, while pysindy brings its own
dependency tree (scikit-learn, cvxpy options) to fit systems of derivatives we already have.
:func:`term_report` compares each learned term with the model's own law over the states the
training data visit.
"""

from __future__ import annotations

import itertools
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


def propose(x: np.ndarray, y: np.ndarray, names: list[str], degree: int = 3, tolerance: float = 1e-2,
            iterations: int = 10) -> tuple[sp.Expr, float]:
    """A sparse polynomial ``y ≈ Σ c_k x^e_k`` of the inputs, and its relative RMS misfit.

    Args:
        x: Inputs ``(N, n)`` in physical units.
        y: The term ``(N,)``.
        names: The inputs' names (symbols of the formula).
        degree: Highest total degree of the library.
        tolerance: Terms whose scaled coefficient is below this fraction of the largest are
            dropped, and the rest refitted.
        iterations: Threshold-and-refit rounds.
    """
    scale = np.abs(x).max(0)
    scale = np.where(scale > 0, scale, 1.0)
    u = x / scale  # inputs of O(1): coefficients comparable across terms
    exps = monomials(x.shape[1], degree)
    lib = np.stack([np.prod(u ** np.array(e), axis=1) for e in exps], axis=1)
    norms = np.linalg.norm(lib, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    a = lib / norms
    keep = np.ones(len(exps), dtype=bool)
    coef = np.zeros(len(exps))
    for _ in range(iterations):
        coef[:] = 0.0
        coef[keep] = np.linalg.lstsq(a[:, keep], y, rcond=None)[0]
        big = np.abs(coef) >= tolerance * np.abs(coef).max() if np.any(coef) else keep
        if np.array_equal(big, keep):
            break
        keep = big
    misfit = float(np.sqrt(np.mean((a @ coef - y) ** 2)) / max(np.sqrt(np.mean(y**2)), 1e-300))
    symbols = [sp.Symbol(n) for n in names]
    expr = sp.Integer(0)
    for c, e, norm in zip(coef, exps, norms):
        if c != 0.0:
            value = c / norm / np.prod(scale ** np.array(e))
            expr += sp.Float(float(f"{value:.4g}")) * sp.Mul(*[s**p for s, p in zip(symbols, e)])
    return expr, misfit


def term_report(model: Any, dm: Any, tolerance: float = 1e-2, degree: int = 3) -> str:
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
        formula, misfit = propose(x, net_values, list(r.inputs), degree=degree, tolerance=tolerance)
        lines += [
            f"{r.target}: network of {list(r.inputs)}",
            f"  true law:          {law}",
            f"  learned vs true:   relative RMS error {rel_rms:.3e}, largest error {worst:.3e} of the largest rate",
            f"  proposed formula:  {formula}   (sparse polynomial up to degree {degree}, relative misfit {misfit:.2e})",
        ]
    return "\n".join(lines)
