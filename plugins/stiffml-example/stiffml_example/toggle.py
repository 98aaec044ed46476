"""The Gardner–Cantor–Collins genetic toggle switch (Nature 403, 339; 2000).

Two repressors u and v inhibit each other's synthesis::

    du/dt = α1 / (1 + v^β) − u
    dv/dt = κ (α2 / (1 + u^γ) − v)

With the paper's α1 = 156.25, α2 = 15.6, β = 2.5, γ = 1 and κ = 1 the switch is bistable and
not stiff (stiffness ratio 1.2 to 8.8 along the default trajectory). κ ≫ 1 makes v respond κ
times faster than u (a repressor with a much shorter half-life): κ = 1000 is the stiff setting,
with stiffness ratios up to 3.2e3 along the trajectory (measured at every 2 time units of the
default run; ``tests/test_contract.py``).
"""

from __future__ import annotations

import numpy as np

from stiffml import StiffDataModule, StiffSystem


class ToggleSwitch(StiffSystem):
    """Genetic toggle switch (see the module docstring)."""

    name = "toggle"
    description = "Gardner-Cantor-Collins genetic toggle switch"
    state_names = ("u", "v")
    defaults = {"alpha1": 156.25, "alpha2": 15.6, "beta": 2.5, "gamma": 1.0, "kappa": 1.0}
    default_y0 = (0.5, 2.0)
    t_span = (0.0, 20.0)
    dt = 0.01

    def rhs(self, t, y):
        p = self.params
        u, v = np.maximum(y[0], 0.0), np.maximum(y[1], 0.0)
        return np.stack([
            p["alpha1"] / (1 + v ** p["beta"]) - y[0],
            p["kappa"] * (p["alpha2"] / (1 + u ** p["gamma"]) - y[1]),
        ])

    def jac(self, t, y):
        p = self.params
        u, v = max(float(y[0]), 0.0), max(float(y[1]), 0.0)
        b, g = p["beta"], p["gamma"]
        dudv = -p["alpha1"] * b * v ** (b - 1) / (1 + v**b) ** 2 if v > 0 else 0.0
        dvdu = -p["kappa"] * p["alpha2"] * g * u ** (g - 1) / (1 + u**g) ** 2 if u > 0 else 0.0
        return np.array([[-1.0, dudv], [dvdu, -p["kappa"]]])


class ToggleSwitchDataModule(StiffDataModule):
    """Toggle-switch trajectories, t in [0, 20], step 0.01; built on stiffml's public base class."""

    system_class = ToggleSwitch
