"""Stiff reaction systems: the paper's B-Z form, OREGO, ROBER and HIRES."""

from __future__ import annotations

import numpy as np

from stiffml.systems.base import StiffSystem


class BZ(StiffSystem):
    """Belousov–Zhabotinsky reaction in the Oregonator form of Zhang et al. (2024).

    ``dx/dt = (x + y − c·x² − x·y)/a``, ``dy/dt = −y − x·y + 2h·z``, ``dz/dt = (x − z)/b``.

    The paper prints ``c = −8.375e−6``; with that sign the solution blows up at t≈0.231 (every
    stiff solver stops there), although the stiffness ratio at the initial state is the paper's
    1.934e3. The default is the Field–Noyes sign ``c = +8.375e−6``, which oscillates over the whole
    10 s span. Pass ``c=-8.375e-6`` to get the printed model and a clear blow-up error.
    """

    name = "bz"
    description = "Belousov-Zhabotinsky (Oregonator, paper form)"
    state_names = ("x", "y", "z")
    defaults = {"a": 1 / 77.27, "b": 1 / 0.161, "c": 8.375e-6, "h": 0.5}
    default_y0 = (4.0, 1.1, 4.0)
    t_span = (0.0, 10.0)
    dt = 1e-4

    def rhs(self, t, y):
        p = self.params
        x, yy, z = y
        return np.stack([
            (x + yy - p["c"] * x * x - x * yy) / p["a"],
            -yy - x * yy + 2 * p["h"] * z,
            (x - z) / p["b"],
        ])

    def jac(self, t, y):
        p = self.params
        x, yy, _ = y
        return np.array([
            [(1 - 2 * p["c"] * x - yy) / p["a"], (1 - x) / p["a"], 0.0],
            [-yy, -1 - x, 2 * p["h"]],
            [1 / p["b"], 0.0, -1 / p["b"]],
        ])


class Orego(StiffSystem):
    """OREGO from the Test Set for IVP Solvers (Hairer & Wanner's Oregonator scaling)."""

    name = "orego"
    description = "Oregonator, Test Set form (OREGO)"
    state_names = ("y1", "y2", "y3")
    defaults = {"s": 77.27, "w": 0.161, "q": 8.375e-6}
    default_y0 = (1.0, 2.0, 3.0)
    t_span = (0.0, 360.0)
    dt = 0.01

    def rhs(self, t, y):
        s, w, q = self.params["s"], self.params["w"], self.params["q"]
        y1, y2, y3 = y
        return np.stack([
            s * (y2 + y1 * (1 - q * y1 - y2)),
            (y3 - (1 + y1) * y2) / s,
            w * (y1 - y3),
        ])

    def jac(self, t, y):
        s, w, q = self.params["s"], self.params["w"], self.params["q"]
        y1, y2, _ = y
        return np.array([
            [s * (1 - 2 * q * y1 - y2), s * (1 - y1), 0.0],
            [-y2 / s, -(1 + y1) / s, 1 / s],
            [w, 0.0, -w],
        ])


class Robertson(StiffSystem):
    """ROBER: Robertson's autocatalytic reaction (Test Set for IVP Solvers).

    Dynamics span 1e-5 … 1e11 s; the default grid is logarithmic in time (see ``spacing``).
    """

    name = "robertson"
    description = "Robertson chemical kinetics (ROBER)"
    state_names = ("y1", "y2", "y3")
    defaults = {"k1": 0.04, "k2": 3e7, "k3": 1e4}
    default_y0 = (1.0, 0.0, 0.0)
    t_span = (0.0, 1e5)
    dt = 1e-5
    spacing = "log"

    def rhs(self, t, y):
        k1, k2, k3 = self.params["k1"], self.params["k2"], self.params["k3"]
        y1, y2, y3 = y
        return np.stack([
            -k1 * y1 + k3 * y2 * y3,
            k1 * y1 - k3 * y2 * y3 - k2 * y2 * y2,
            k2 * y2 * y2,
        ])

    def jac(self, t, y):
        k1, k2, k3 = self.params["k1"], self.params["k2"], self.params["k3"]
        _, y2, y3 = y
        return np.array([
            [-k1, k3 * y3, k3 * y2],
            [k1, -k3 * y3 - 2 * k2 * y2, -k3 * y2],
            [0.0, 2 * k2 * y2, 0.0],
        ])


class HIRES(StiffSystem):
    """HIRES: high-irradiance responses of plant photomorphogenesis, 8 species (Test Set)."""

    name = "hires"
    description = "High Irradiance RESponse, plant physiology (HIRES)"
    state_names = ("y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8")
    defaults = {"k": 280.0}
    default_y0 = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057)
    t_span = (0.0, 321.8122)
    dt = 0.05

    def rhs(self, t, y):
        k = self.params["k"]
        y1, y2, y3, y4, y5, y6, y7, y8 = y
        f7 = k * y6 * y8 - 1.81 * y7
        return np.stack([
            -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            1.71 * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * (y6 + y7),
            -k * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            f7,
            -f7,
        ])

    def jac(self, t, y):
        k = self.params["k"]
        y6, y8 = y[5], y[7]
        j = np.zeros((8, 8))
        j[0, :3] = (-1.71, 0.43, 8.32)
        j[1, :2] = (1.71, -8.75)
        j[2, 2:5] = (-10.03, 0.43, 0.035)
        j[3, 1:4] = (8.32, 1.71, -1.12)
        j[4, 4:7] = (-1.745, 0.43, 0.43)
        j[5, 3:8] = (0.69, 1.71, -k * y8 - 0.43, 0.69, -k * y6)
        j[6, 5:8] = (k * y8, -1.81, k * y6)
        j[7] = -j[6]
        return j
