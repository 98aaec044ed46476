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
    conservation = ((1.0, 1.0, 1.0), 1.0)

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


# POLLU's 25 reactions: (rate constant name, reactant indices (0-based), {species index: net change})
_POLLU_REACTIONS: tuple[tuple[str, tuple[int, ...], dict[int, int]], ...] = (
    ("k1", (0,), {0: -1, 1: 1, 2: 1}),
    ("k2", (1, 3), {1: -1, 3: -1, 0: 1}),
    ("k3", (4, 1), {4: -1, 1: -1, 0: 1, 5: 1}),
    ("k4", (6,), {6: -1, 4: 2, 7: 1}),
    ("k5", (6,), {6: -1, 7: 1}),
    ("k6", (6, 5), {6: -1, 5: -1, 4: 1, 7: 1}),
    ("k7", (8,), {8: -1, 4: 1, 7: 1, 9: 1}),
    ("k8", (8, 5), {8: -1, 5: -1, 10: 1}),
    ("k9", (10, 1), {10: -1, 1: -1, 0: 1, 9: 1, 11: 1}),
    ("k10", (10, 0), {10: -1, 0: -1, 12: 1}),
    ("k11", (12,), {12: -1, 0: 1, 10: 1}),
    ("k12", (9, 1), {9: -1, 1: -1, 0: 1, 13: 1}),
    ("k13", (13,), {13: -1, 4: 1, 6: 1}),
    ("k14", (0, 5), {0: -1, 5: -1, 14: 1}),
    ("k15", (2,), {2: -1, 3: 1}),
    ("k16", (3,), {3: -1, 15: 1}),
    ("k17", (3,), {3: -1, 2: 1}),
    ("k18", (15,), {15: -1, 5: 2}),
    ("k19", (15,), {15: -1, 2: 1}),
    ("k20", (16, 5), {16: -1, 5: -1, 4: 1, 17: 1}),
    ("k21", (18,), {18: -1, 1: 1}),
    ("k22", (18,), {18: -1, 0: 1, 2: 1}),
    ("k23", (0, 3), {0: -1, 3: -1, 18: 1}),
    ("k24", (18, 0), {18: -1, 0: -1, 19: 1}),
    ("k25", (19,), {19: -1, 0: 1, 18: 1}),
)


class Pollu(StiffSystem):
    """POLLU: the chemical part of the RIVM air-pollution model, 20 species, 25 reactions
    (Verwer 1994, SIAM J. Sci. Comput. 15:1243; Test Set for IVP Solvers, problem POLLU).

    Concentrations in ppm, time in minutes over [0, 60]; rate constants from 8.2e-4 to 4.44e11.
    Written as mass-action reactions (``_POLLU_REACTIONS``), from which both the right-hand side
    and the exact Jacobian follow.
    """

    name = "pollu"
    description = "Air-pollution chemistry, 20 species (POLLU)"
    state_names = ("NO2", "NO", "O3P", "O3", "HO2", "OH", "HCHO", "CO", "ALD", "MEO2", "C2O3", "CO2",
                   "PAN", "CH3O", "HNO3", "O1D", "SO2", "SO4", "NO3", "N2O5")
    defaults = {
        "k1": 0.35, "k2": 26.6, "k3": 1.23e4, "k4": 8.6e-4, "k5": 8.2e-4, "k6": 1.5e4, "k7": 1.3e-4,
        "k8": 2.4e4, "k9": 1.65e4, "k10": 9.0e3, "k11": 0.022, "k12": 1.2e4, "k13": 1.88, "k14": 1.63e4,
        "k15": 4.8e6, "k16": 3.5e-4, "k17": 0.0175, "k18": 1.0e8, "k19": 4.44e11, "k20": 1240.0,
        "k21": 2.1, "k22": 5.78, "k23": 0.0474, "k24": 1780.0, "k25": 3.12,
    }
    default_y0 = (0.0, 0.2, 0.0, 0.04, 0.0, 0.0, 0.1, 0.3, 0.01, 0.0,
                  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.007, 0.0, 0.0, 0.0)
    t_span = (0.0, 60.0)
    dt = 0.06

    def rhs(self, t, y):
        out = np.zeros_like(np.asarray(y, dtype=np.float64))
        for k, reactants, change in _POLLU_REACTIONS:
            rate = self.params[k] * np.prod([y[i] for i in reactants], axis=0)
            for i, c in change.items():
                out[i] += c * rate
        return out

    def jac(self, t, y):
        j = np.zeros((20, 20))
        for k, reactants, change in _POLLU_REACTIONS:
            for pos, r in enumerate(reactants):
                others = [y[i] for q, i in enumerate(reactants) if q != pos]
                d_rate = self.params[k] * (np.prod(others) if others else 1.0)
                for i, c in change.items():
                    j[i, r] += c * d_rate
        return j
