"""Stiff and conservative oscillators: Van der Pol and Duffing."""

from __future__ import annotations

import numpy as np

from stiffml.systems.base import StiffSystem


class VanDerPol(StiffSystem):
    """Van der Pol oscillator ``x'' − μ(1 − x²)x' + x = 0`` as the first-order system (x, x')."""

    name = "vdp"
    description = "Van der Pol oscillator, mu=80"
    state_names = ("x", "v")
    defaults = {"mu": 80.0}
    default_y0 = (2.0, 0.0)
    t_span = (0.0, 300.0)
    dt = 1e-3

    def rhs(self, t, y):
        mu = self.params["mu"]
        x, v = y
        return np.stack([v, mu * (1 - x * x) * v - x])

    def jac(self, t, y):
        mu = self.params["mu"]
        x, v = y
        return np.array([[0.0, 1.0], [-2 * mu * x * v - 1, mu * (1 - x * x)]])



class VanDerPolLienard(StiffSystem):
    """Van der Pol oscillator in Liénard coordinates: ``x' = μ(x − x³/3 − y)``, ``y' = x/μ``.

    The same oscillator as :class:`VanDerPol` (the same x), with ``y = x − x³/3 − x'/μ`` in place
    of the velocity. At μ = 80 the velocity swings over ±100 in the jumps while the slow branches
    are set by where ``μ(1 − x²)x' − x`` vanishes, at x' ≈ 0.01: a learned field in (x, x') must
    be accurate to about 1e-5 of its range there to keep the period. Here the slow branches lie on
    the cubic ``y = x − x³/3`` and the field is a cubic in x and linear in y, which a small
    network fits to the accuracy a free run over several cycles needs (docs/fidelity.md).
    The default span holds three relaxation cycles (period about 130.6 s at μ = 80), starting
    from x = 2, x' = 0 as :class:`VanDerPol` does.
    """

    name = "vdp_lienard"
    description = "Van der Pol oscillator, mu=80, Lienard coordinates"
    state_names = ("x", "y")
    defaults = {"mu": 80.0}
    default_y0 = (2.0, 2.0 - 8.0 / 3.0)
    t_span = (0.0, 400.0)
    dt = 0.02

    def rhs(self, t, y):
        mu = self.params["mu"]
        x, w = y
        return np.stack([mu * (x - x**3 / 3 - w), x / mu])

    def jac(self, t, y):
        mu = self.params["mu"]
        x = y[0]
        return np.array([[mu * (1 - x * x), -mu], [1 / mu, 0.0]])

class Duffing(StiffSystem):
    """Duffing oscillator ``q'' = −αq − βq³ − γq'`` in (q, p = q').

    Energy ``H = α q²/2 + β q⁴/4 + p²/2`` is conserved for γ = 0 and decays for γ > 0.
    """

    name = "duffing"
    description = "Duffing oscillator (Hamiltonian for gamma=0)"
    state_names = ("q", "p")
    defaults = {"alpha": 1.0, "beta": 2.0, "gamma": 0.0}
    default_y0 = (1.0, 0.0)
    t_span = (0.0, 5.0)
    dt = 0.1
    blowup = 1e8

    def rhs(self, t, y):
        a, b, g = self.params["alpha"], self.params["beta"], self.params["gamma"]
        q, p = y
        return np.stack([p, -a * q - b * q**3 - g * p])

    def jac(self, t, y):
        a, b, g = self.params["alpha"], self.params["beta"], self.params["gamma"]
        q = y[0]
        return np.array([[0.0, 1.0], [-a - 3 * b * q * q, -g]])

    @property
    def conservative(self) -> bool:
        """Energy is conserved exactly when there is no damping (γ = 0)."""
        return self.params["gamma"] == 0.0

    def lagrangian(self, q, v):
        """``L = v²/2 − α q²/2 − β q⁴/4`` (numbers, arrays or sympy symbols); γ enters as dissipation."""
        a, b = self.params["alpha"], self.params["beta"]
        return v**2 / 2 - a * q**2 / 2 - b * q**4 / 4

    def energy(self, y: np.ndarray) -> np.ndarray:
        """Hamiltonian ``H(q, p)`` for states of shape ``(..., 2)``."""
        a, b = self.params["alpha"], self.params["beta"]
        q, p = y[..., 0], y[..., 1]
        return a * q**2 / 2 + b * q**4 / 4 + p**2 / 2
