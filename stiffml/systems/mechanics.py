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
