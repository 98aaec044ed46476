"""One LightningDataModule per built-in stiff system."""

from __future__ import annotations

from stiffml.data.base import StiffDataModule
from stiffml.data.ensemble import EnsembleDataModule
from stiffml.systems import BZ, HIRES, Duffing, Orego, Pollu, Robertson, VanDerPol


class BZDataModule(StiffDataModule):
    """Belousov–Zhabotinsky (paper form): t in [0, 10] s, step 1e-4 (1e5 points)."""

    system_class = BZ


class VdPDataModule(StiffDataModule):
    """Van der Pol, μ = 80: t in [0, 300] s, step 1e-3 (3e5 points); outputs x only (the paper)."""

    system_class = VanDerPol
    default_outputs = ("x",)


class RobertsonDataModule(StiffDataModule):
    """ROBER kinetics on a log-time grid 1e-5 … 1e5 s (100 points per decade)."""

    system_class = Robertson


class HIRESDataModule(StiffDataModule):
    """HIRES plant-physiology kinetics, 8 species, t in [0, 321.8122]."""

    system_class = HIRES


class OregoDataModule(StiffDataModule):
    """OREGO (Test Set Oregonator), t in [0, 360]."""

    system_class = Orego


class PolluDataModule(StiffDataModule):
    """POLLU air-pollution chemistry, 20 species, t in [0, 60] min, step 0.06 (1001 points)."""

    system_class = Pollu


class DuffingDataModule(EnsembleDataModule):
    """Duffing oscillator ensemble (the physics seed): 100 trajectories from (q0, p0) ~ N(0, 1),
    t in [0, 5], 50 points each; (q, p) → (q̇, ṗ) samples, split 80/20 by trajectory.
    Parameters ``alpha``, ``beta``, ``gamma`` (default 1, 2, 0); ``q̈`` is ``ṗ`` (unit mass)."""

    system_class = Duffing
