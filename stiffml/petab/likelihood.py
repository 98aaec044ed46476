"""PEtab's noise models and priors on torch tensors (differentiable).

The formulas are PEtab v1's (``petab.v1.calculate.calculate_single_llh``): a measurement ``m``,
a simulation ``s`` and a noise value ``sigma`` on the observable's transformation scale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")
SCALES = ("lin", "log", "log10")
PRIORS = ("normal", "laplace", "uniform", "logNormal", "logLaplace", "parameterScaleNormal",
          "parameterScaleLaplace", "parameterScaleUniform")


def transform(x: Tensor, how: str) -> Tensor:
    """An observable's values on its transformation scale."""
    return x if how == "lin" else torch.log(x) if how == "log" else torch.log10(x)


def neg_log_likelihood(m: Tensor, s: Tensor, sigma: Tensor, how: str, distribution: str) -> Tensor:
    """Per-measurement negative log-likelihood (the density of the measurement ``m``)."""
    r = (transform(s, how) - transform(m, how)) / sigma
    # the transformation's Jacobian in the measurement: density of m, not of log m
    jac = 0.0 if how == "lin" else torch.log(m) + (math.log(math.log(10)) if how == "log10" else 0.0)
    if distribution == "normal":
        return 0.5 * math.log(2 * math.pi) + torch.log(sigma) + jac + 0.5 * r**2
    return math.log(2) + torch.log(sigma) + jac + r.abs()


def residual(m: Tensor, s: Tensor, sigma: Tensor, how: str) -> Tensor:
    """Noise-normalised residuals on the transformation scale (their squares sum to chi2)."""
    return (transform(s, how) - transform(m, how)) / sigma


def unscale(theta: Tensor, scales: list[str]) -> Tensor:
    """Parameters on their PEtab scales → linear values."""
    out = []
    for x, scale in zip(theta.unbind(-1), scales):
        out.append(x if scale == "lin" else torch.exp(x) if scale == "log" else torch.pow(10.0, x))
    return torch.stack(out, dim=-1) if out else theta


def to_scale(x: float, scale: str) -> float:
    """A linear value on a PEtab scale."""
    return x if scale == "lin" else math.log(x) if scale == "log" else math.log10(x)


def normal_nll(x: Tensor, mu: float, sigma: float) -> Tensor:
    """``-log`` of the normal density N(mu, sigma²) at ``x``."""
    return 0.5 * math.log(2 * math.pi) + math.log(sigma) + 0.5 * ((x - mu) / sigma) ** 2


def laplace_nll(x: Tensor, mu: float, b: float) -> Tensor:
    """``-log`` of the Laplace density with location ``mu`` and scale ``b`` at ``x``."""
    return math.log(2 * b) + (x - mu).abs() / b


def neg_log_prior(kind: str, params: tuple[float, ...], lin: Tensor, scaled: Tensor) -> Tensor:
    """``-log p`` of one parameter's prior (PEtab v1 ``objectivePriorType``), as a density of
    the linear value (``parameterScale*``: of the scaled value)."""
    jacobian = None
    if kind.startswith("parameterScale"):
        x, kind = scaled, kind[len("parameterScale"):].lower()
    elif kind.startswith("log"):
        # a log-normal or log-Laplace density is in the linear value: its Jacobian 1/x
        x, kind, jacobian = torch.log(lin), kind[3:].lower(), torch.log(lin)
    else:
        x = lin
    a, b = params
    if kind == "normal":
        out = normal_nll(x, a, b)
    elif kind == "laplace":
        out = laplace_nll(x, a, b)
    else:  # uniform
        out = torch.zeros_like(x) + math.log(b - a)
    return out if jacobian is None else out + jacobian
