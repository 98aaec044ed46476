"""One LightningDataModule per built-in stiff system."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from stiffml.data.base import StiffDataModule
from stiffml.data.ensemble import EnsembleDataModule
from stiffml.data.scaling import Normalization
from stiffml.systems import BZ, HIRES, Duffing, Orego, Pollu, Robertson, VanDerPol, VanDerPolLienard


class BZDataModule(StiffDataModule):
    """Belousov–Zhabotinsky (paper form): t in [0, 10] s, step 1e-4 (1e5 points)."""

    system_class = BZ


class VdPDataModule(StiffDataModule):
    """Van der Pol, μ = 80: t in [0, 300] s, step 1e-3 (3e5 points); outputs x only (the paper)."""

    system_class = VanDerPol
    default_outputs = ("x",)


class VdPLienardDataModule(StiffDataModule):
    """Van der Pol, μ = 80, in Liénard coordinates (x, y = x − x³/3 − x'/μ): t in [0, 400] s
    (three relaxation cycles), step 0.02 (20,001 points); outputs x and y."""

    system_class = VanDerPolLienard


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


class RobertsonEnsembleDataModule(EnsembleDataModule):
    """ROBER from several initial states on Kim et al.'s log grid (1e-5 … 1e5 s, 5 points per
    decade), for held-out-initial-state tests of trajectory-trained fields.

    The default states are ``(1 − a, 0, a)`` for a = 0, 0.1, 0.2, 0.4 (training) and a = 0.3
    (held out): the held-out state lies inside the trained range, so the test asks whether the
    field interpolates between initial states, not whether it extrapolates to unseen chemistry
    (a = 0 is Kim et al.'s y0); with ``rate_constants`` and no ``initial_states``, every member
    starts from Kim et al.'s y0 with its own k1, k2, k3. Args as
    :class:`~stiffml.data.EnsembleDataModule`, with these defaults.
    """

    system_class = Robertson
    example_args: ClassVar[dict[str, Any]] = {"points_per_decade": 2}  # a small grid for contract tests

    def __init__(
        self,
        y0s: list[list[float]] | None = None,
        held_out: list[int] | None = None,
        t_span: tuple[float, float] | None = (0.0, 1.0e5),
        spacing: Literal["linear", "log"] = "log",
        dt: float | None = 1.0e-5,
        points_per_decade: int = 5,
        rollout_factor: int = 1,
        normalization: Normalization = "maxabs",
        ref_solver: Literal["LSODA", "Radau", "BDF"] = "Radau",
        ref_atol: float = 1.0e-16,
        **kwargs: Any,
    ) -> None:
        if y0s is None and kwargs.get("initial_states") is None and kwargs.get("rate_constants") is None:
            y0s = [[1.0 - a, 0.0, a] for a in (0.0, 0.1, 0.2, 0.3, 0.4)]
            held_out = [3] if held_out is None else held_out
        super().__init__(
            y0s=y0s, held_out=held_out, t_span=t_span, spacing=spacing, dt=dt,
            points_per_decade=points_per_decade, rollout_factor=rollout_factor,
            normalization=normalization, ref_solver=ref_solver, ref_atol=ref_atol, **kwargs,
        )


class PolluEnsembleDataModule(EnsembleDataModule):
    """POLLU from many initial states: the species that start above zero (y2, y4, y7, y8, y9, y17)
    each drawn within ±50 % of its standard value, the others zero; 21 times on [0, 60] min (Kim et
    al.'s grid), species scaled to [0, 1]. For held-out-initial-state tests of trajectory-trained
    fields (issue #28). Args as :class:`~stiffml.data.EnsembleDataModule`, with these defaults.
    """

    system_class = Pollu
    # whole trajectories: POLLU's derivative samples span rates of very different sizes
    representations: ClassVar[tuple[str, ...]] = ("trajectory", "derivative")
    example_args: ClassVar[dict[str, Any]] = {"n_points": 6}  # a small grid for contract tests

    def __init__(
        self,
        initial_states: dict[str, Any] | None = None,
        n_trajectories: int = 8,
        t_span: tuple[float, float] | None = (0.0, 60.0),
        n_points: int = 21,
        rollout_factor: int = 1,
        normalization: Normalization = "minmax",
        ref_solver: Literal["LSODA", "Radau", "BDF"] = "Radau",
        ref_atol: float = 1.0e-16,
        **kwargs: Any,
    ) -> None:
        if initial_states is None and kwargs.get("y0s") is None:
            initial_states = {name: [0.5 * v, 1.5 * v] for name, v in zip(Pollu.state_names, Pollu.default_y0) if v}
        super().__init__(
            initial_states=initial_states, n_trajectories=n_trajectories, t_span=t_span, n_points=n_points,
            rollout_factor=rollout_factor, normalization=normalization, ref_solver=ref_solver, ref_atol=ref_atol,
            **kwargs,
        )


class DuffingDataModule(EnsembleDataModule):
    """Duffing oscillator ensemble (the physics seed): 100 trajectories from (q0, p0) ~ N(0, 1),
    t in [0, 5], 50 points each; (q, p) → (q̇, ṗ) samples, split 80/20 by trajectory.
    Parameters ``alpha``, ``beta``, ``gamma`` (default 1, 2, 0); ``q̈`` is ``ṗ`` (unit mass)."""

    system_class = Duffing
