"""PEtab v2 priors (``priorDistribution``, ``priorParameters``) as differentiable torch terms.

The ``petab`` library reads the table and describes each prior (``Parameter.prior_dist``, truncated
at the parameter's bounds) but evaluates it in numpy, without derivatives; a prior also applies
elementwise to every weight of a network row of a PEtab SciML problem. So the densities are written
here in torch (one line each) and the truncation's normalising constant, which does not depend on
the value, is taken from the library's own cumulative distribution at the bounds. The tests check
every distribution against the library's density.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from stiffml.petab.errors import PEtabError, PEtabUnsupported
from stiffml.petab.likelihood import laplace_nll as _laplace, normal_nll as _normal


# -log p(x) of each PEtab v2 distribution at linear values x, parameters in the table's order
DENSITIES: dict[str, Callable[..., Tensor]] = {
    "normal": _normal,
    "laplace": _laplace,
    "log-normal": lambda x, mu, sigma: _normal(torch.log(x), mu, sigma) + torch.log(x),
    "log-laplace": lambda x, mu, b: _laplace(torch.log(x), mu, b) + torch.log(x),
    "uniform": lambda x, a, b: 0.0 * x + math.log(b - a),  # 0·x: flat, but on the autograd graph
    "log-uniform": lambda x, a, b: torch.log(x) + math.log(math.log(b) - math.log(a)),
    "cauchy": lambda x, loc, scale: math.log(math.pi * scale) + torch.log1p(((x - loc) / scale) ** 2),
    "exponential": lambda x, scale: math.log(scale) + x / scale,
    "gamma": lambda x, shape, scale: (math.lgamma(shape) + shape * math.log(scale) - (shape - 1) * torch.log(x)
                                      + x / scale),
    "chisquare": lambda x, k: (0.5 * k * math.log(2) + math.lgamma(0.5 * k) - (0.5 * k - 1) * torch.log(x) + 0.5 * x),
    "rayleigh": lambda x, sigma: 2 * math.log(sigma) - torch.log(x) + x ** 2 / (2 * sigma ** 2),
}


class Prior:
    """One parameter's prior: ``-log p`` of its linear value(s), truncated at its bounds.

    Args:
        distribution: A PEtab v2 ``priorDistribution`` (see :data:`DENSITIES`).
        parameters: Its ``priorParameters``.
        lower: The parameter's lower bound (``-inf`` for none).
        upper: Its upper bound.
        label: Who it belongs to, for errors.

    Raises:
        PEtabUnsupported: A distribution stiffml does not know.
        PEtabError: Parameters of the wrong number.
    """

    def __init__(self, distribution: str, parameters: list[float], lower: float, upper: float, label: str) -> None:
        name = str(getattr(distribution, "value", distribution)).strip()
        if name not in DENSITIES:
            raise PEtabUnsupported(f"{label}: prior distribution {name!r} is not supported; valid: {sorted(DENSITIES)}")
        self.name, self.parameters = name, [float(v) for v in parameters]
        self.lower, self.upper = float(lower), float(upper)
        arity = DENSITIES[name].__code__.co_argcount - 1
        if len(self.parameters) != arity:
            raise PEtabError(f"{label}: prior {name!r} takes {arity} parameters, got {self.parameters}")
        self.log_mass = self._log_mass(label)

    def _log_mass(self, label: str) -> float:
        """``log`` of the probability the untruncated prior puts inside the bounds."""
        if self.name in ("uniform", "log-uniform"):  # the library cuts these to the bounds instead
            a, b = self.parameters
            lo, hi = max(a, self.lower), min(b, self.upper)
            if not hi > lo:
                raise PEtabError(f"{label}: uniform prior [{a}, {b}] lies outside the bounds [{self.lower}, {self.upper}]")
            if self.name == "uniform":
                return math.log((hi - lo) / (b - a))
            return math.log(math.log(hi / lo) / math.log(b / a))
        if not (np.isfinite(self.lower) or np.isfinite(self.upper)):
            return 0.0
        from petab.v2.core import Parameter

        untruncated = Parameter(id="p", lb=-np.inf, ub=np.inf, estimate=True, prior_distribution=self.name,
                                prior_parameters=self.parameters).prior_dist
        lo = float(untruncated.cdf(self.lower)) if np.isfinite(self.lower) and (self.lower > 0 or not self._positive) \
            else 0.0
        hi = float(untruncated.cdf(self.upper)) if np.isfinite(self.upper) else 1.0
        if not hi > lo:
            raise PEtabError(f"{label}: prior {self.name} {self.parameters} puts no mass inside the bounds "
                             f"[{self.lower}, {self.upper}]")
        return math.log(hi - lo)

    @property
    def _positive(self) -> bool:
        return self.name.startswith("log") or self.name in ("exponential", "gamma", "chisquare", "rayleigh")

    def __call__(self, x: Tensor) -> Tensor:
        """``-log p`` summed over the values ``x`` (a tensor of any shape)."""
        a, b = self.lower, self.upper
        if self.name in ("uniform", "log-uniform"):
            a, b = max(a, self.parameters[0]), min(b, self.parameters[1])
        inside = (x >= a) & (x <= b)
        if self._positive:
            inside = inside & (x > 0)
        safe = torch.where(inside, x, torch.full_like(x, max(a, 0.0) + 1.0 if self._positive else 0.0))
        value = DENSITIES[self.name](safe, *self.parameters) + self.log_mass
        return torch.where(inside, value, torch.full_like(value, math.inf)).sum()


def read_prior(row: Any, lower: float, upper: float, label: str) -> Prior | None:
    """The prior of one parameter-table row (a ``petab.v2`` ``Parameter`` or a table row), or None."""
    dist = getattr(row, "prior_distribution", None)
    if dist is None:
        dist = getattr(row, "priorDistribution", None)
    if dist is None or (isinstance(dist, float) and math.isnan(dist)) or not str(dist).strip() \
            or str(dist).strip() in ("None", "nan"):
        return None
    params = getattr(row, "prior_parameters", None)
    if params is None:
        params = getattr(row, "priorParameters", None)
    if isinstance(params, str):
        params = [float(v) for v in params.split(";") if v.strip()]
    elif params is None or (isinstance(params, float) and math.isnan(params)):
        params = []
    return Prior(str(getattr(dist, "value", dist)), list(params), lower, upper, label)
