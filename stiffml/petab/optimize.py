"""Multistart local optimisation of a PEtab problem's negative log-likelihood (numerical core; the
Lightning model for calibration is still to come).

Starts are a Latin hypercube inside the bounds (on the parameters' scales, scipy's ``qmc``); each
start runs a local optimiser with the forward-sensitivity gradient: ``fides`` (an interior
trust-region method with a BFGS Hessian, the default), ``fides-fim`` (the same with the Fisher
information, a Gauss–Newton Hessian, from the sensitivities) or scipy's ``L-BFGS-B``. On Boehm et al. 2014
with 20 seed-0 starts fides reached the published optimum where L-BFGS-B stopped at 147.5 and worse
(bench/petab_multistart.py). A start whose solve fails gets an infinite (fides) or large (L-BFGS-B)
value, so the step backs off.
"""

from __future__ import annotations

import dataclasses
import time
import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from stiffml.petab.problem import PEtabError, Problem
from stiffml.systems.base import SolveError

FAILED_VALUE = 1e12
METHODS = ("fides", "fides-fim", "L-BFGS-B")


@dataclasses.dataclass(frozen=True)
class StartResult:
    """One start: where it began and ended, its final nllh, and what the optimiser said."""

    start: np.ndarray
    theta: np.ndarray
    nllh: float
    evaluations: int
    seconds: float
    message: str


def latin_hypercube(problem: Problem, starts: int, seed: int = 0) -> np.ndarray:
    """``starts`` points inside the estimated parameters' bounds (on their scales)."""
    if starts < 1:
        raise PEtabError(f"starts must be a positive number, got {starts}")
    lo, hi = np.asarray(problem.lower), np.asarray(problem.upper)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        bad = [p for p, a, b in zip(problem.parameter_ids, lo, hi) if not (np.isfinite(a) and np.isfinite(b))]
        raise PEtabError(f"parameters {bad} have infinite bounds on their scales; starts are drawn inside bounds")
    unit = qmc.LatinHypercube(d=lo.size, seed=seed).random(starts)
    return qmc.scale(unit, lo, hi) if lo.size else unit


def local_fit(problem: Problem, start: np.ndarray, max_iterations: int = 500, method: str = "fides") -> StartResult:
    """One local optimisation from ``start`` within the bounds."""
    if method not in METHODS:
        raise PEtabError(f"unknown optimiser {method!r}; valid: {list(METHODS)}")
    count = [0]
    failed = np.inf if method.startswith("fides") else FAILED_VALUE

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        try:
            value, grad = problem.value_and_gradient(theta, prior=True)
        except SolveError:
            return failed, np.zeros_like(theta)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return failed, np.zeros_like(theta)
        return value, grad

    def with_fisher(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        count[0] += 1
        eye = np.eye(theta.size)
        try:
            value, grad, fim = problem.value_gradient_fisher(theta)
        except SolveError:
            return failed, np.zeros_like(theta), eye
        if not (np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.isfinite(fim))):
            return failed, np.zeros_like(theta), eye
        return value, grad, fim

    began = time.perf_counter()
    lower, upper = np.asarray(problem.lower, float), np.asarray(problem.upper, float)
    if method.startswith("fides"):
        import logging

        import fides

        fisher = method == "fides-fim"
        opt = fides.Optimizer(with_fisher if fisher else objective, ub=upper, lb=lower, verbose=logging.WARNING,
                              hessian_update=None if fisher else fides.BFGS(),
                              options={fides.Options.MAXITER: max_iterations})
        value, theta, _, _ = opt.minimize(np.asarray(start, float))
        message = str(opt.exitflag)
    else:
        res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=list(zip(lower, upper)),
                       options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-6})
        value, theta, message = float(res.fun), res.x, str(res.message)
    return StartResult(start=np.asarray(start), theta=np.asarray(theta), nllh=float(value),
                       evaluations=count[0], seconds=time.perf_counter() - began, message=message)


def multistart(problem: Problem, starts: int = 20, seed: int = 0, max_iterations: int = 500,
               method: str = "fides") -> list[StartResult]:
    """Local fits from ``starts`` Latin-hypercube points, best first."""
    results = [local_fit(problem, x0, max_iterations, method) for x0 in latin_hypercube(problem, starts, seed)]
    return sorted(results, key=lambda r: r.nllh)
