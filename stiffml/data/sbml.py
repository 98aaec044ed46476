"""A datamodule for any SBML model file (or a shipped example, by name)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from stiffml.data.base import StiffDataModule
from stiffml.data.ensemble import EnsembleDataModule
from stiffml.data.scaling import Normalization
from stiffml.systems import STIFF_METHODS, StiffSystem


class SBMLDataModule(StiffDataModule):
    """Reference trajectories of an SBML model: every representation and family works on it.

    The reference is solved by libroadrunner's CVODE by default (``ref_solver``; a scipy solver
    runs on the generated math instead) and cached under a key that includes the file's content
    hash, so an edited file is solved again. A model with events or constructs the generated
    math cannot express (algebraic rules) serves the trajectory representations and
    refuses ``derivative``.

    Args:
        model: Path of an SBML file (Level 2 or 3), or a shipped example's name: ``bz``,
            ``robertson``, ``goldbeter1991``, ``tyson1991``.
        t_span: Time span ``[t0, t1]``; an example's default, required for other files.
        dt: Sampling step; an example's default, else 1/1000 of the span.
        spacing: ``linear`` or ``log``; an example's default, else ``linear``.
        ref_solver: ``CVODE`` (libroadrunner) or a scipy stiff solver on the generated math
            (``Radau``, ``BDF``, ``LSODA``).
        **kwargs: Everything else :class:`~stiffml.data.StiffDataModule` takes (``params``,
            ``y0``, ``outputs``, ``window``, ``split``, ``normalization``, ``batch_size``, …).
    """

    ref_solvers: ClassVar[tuple[str, ...]] = ("CVODE", *STIFF_METHODS)
    system_label: ClassVar[str] = "any SBML file (--data.model)"
    example_args: ClassVar[dict[str, Any]] = {"model": "tyson1991", "dt": 0.25}

    def __init__(
        self,
        model: str,
        t_span: tuple[float, float] | None = None,
        dt: float | None = None,
        spacing: Literal["linear", "log"] | None = None,
        ref_solver: Literal["CVODE", "Radau", "BDF", "LSODA"] = "CVODE",
        **kwargs: Any,
    ) -> None:
        self.model = model
        self._grid_args = (t_span, dt, spacing)
        super().__init__(t_span=t_span, dt=dt, spacing=spacing, ref_solver=ref_solver, **kwargs)

    def make_system(self, params: dict[str, float], y0: list[float] | None) -> StiffSystem:
        from stiffml.sbml import SBMLSystem

        t_span, dt, spacing = self._grid_args
        return SBMLSystem(self.model, y0=y0, t_span=t_span, dt=dt, spacing=spacing, **params)

    def _check_representation(self) -> None:
        super()._check_representation()
        if self.representation == "derivative" and not self.system.smooth_rhs:
            raise ValueError(
                f"SBML model '{self.model}' cannot serve the 'derivative' representation: it needs the "
                f"model's whole dynamics as one right-hand side, and the model has {self.system.why_not_smooth()}; "
                "use a model trained on trajectories (pointwise, window, pair or segment)"
            )


class SBMLEnsembleDataModule(EnsembleDataModule):
    """Trajectories of an SBML model from several initial states (experimental conditions),
    split by condition: what hybrid models (:class:`~stiffml.models.hybrid.HybridModel`) and
    neural ODEs train on, and held-out conditions score their free runs.

    The reference is solved on the generated math (scipy's stiff solvers, ``ref_solver``), so the
    model must be expressible as one right-hand side (no events). Measurements are the reference
    with seeded noise (``noise_std``, ``noise: relative`` for a percentage); the conditions'
    initial states are known designs and stay noise-free unless ``noisy_initial_states``.

    Args:
        model: Path of an SBML file, or a shipped example's name (``robertson``, ``tyson1991``, …).
        y0s: The conditions' initial states, one list per condition, in the model's state order.
        held_out: Indices of the conditions held out for validation (free runs); default the last.
        t_span: Time span; an example's default, required for other files.
        spacing: ``linear`` or ``log``; an example's default, else ``linear``.
        dt: First time after ``t0`` of a log grid; an example's default.
        points_per_decade: Density of a log grid (sparse data: a few points per decade).
        n_points: Points per condition of a linear grid.
        noise_std: Measurement noise (see ``noise``).
        noise: ``relative`` (default: ``noise_std`` 0.05 is 5 % noise) or ``absolute``.
        noisy_initial_states: Whether the initial states are observed with noise too.
        params: Parameter values of the model (its file's otherwise).
        **kwargs: Everything else :class:`~stiffml.data.EnsembleDataModule` takes
            (``rollout_factor``, ``normalization``, ``batch_size``, ``seed``, ``ref_solver``, …).
    """

    ref_solvers: ClassVar[tuple[str, ...]] = STIFF_METHODS
    system_label: ClassVar[str] = "any SBML file (--data.model), several conditions"
    example_args: ClassVar[dict[str, Any]] = {
        "model": "robertson", "y0s": [[1.0, 0.0, 0.0], [0.8, 0.0, 0.2], [0.9, 0.0, 0.1]], "t_span": [0.0, 1.0],
        "points_per_decade": 2}

    def __init__(
        self,
        model: str,
        y0s: list[list[float]],
        held_out: list[int] | None = None,
        t_span: tuple[float, float] | None = None,
        spacing: Literal["linear", "log"] | None = None,
        dt: float | None = None,
        points_per_decade: int = 5,
        n_points: int = 50,
        noise_std: float = 0.0,
        noise: Literal["absolute", "relative"] = "relative",
        noisy_initial_states: bool = False,
        params: dict[str, float] | None = None,
        rollout_factor: int = 1,
        normalization: Normalization = "maxabs",
        ref_solver: Literal["Radau", "BDF", "LSODA"] = "Radau",
        ref_atol: float = 1.0e-16,
        **kwargs: Any,
    ) -> None:
        from stiffml.sbml.examples import EXAMPLES

        self.model = model
        example = EXAMPLES.get(model)
        spacing = spacing or (example.spacing if example else "linear")
        if dt is None and example is not None:
            dt = example.dt
        if t_span is None and example is None:
            raise ValueError(f"t_span is required for SBML model '{model}' (not a shipped example)")
        if not y0s or len(y0s) < 2:
            raise ValueError(f"y0s must give at least two conditions (train and held out), got {y0s}")
        super().__init__(
            params=params, y0s=y0s, held_out=[len(y0s) - 1] if held_out is None else held_out, t_span=t_span,
            spacing=spacing, dt=dt, points_per_decade=points_per_decade, n_points=n_points, noise_std=noise_std,
            noise=noise, noisy_initial_states=noisy_initial_states, rollout_factor=rollout_factor,
            normalization=normalization, ref_solver=ref_solver, ref_atol=ref_atol, **kwargs,
        )

    def make_system(self, params: dict[str, float], y0: list[float] | None) -> StiffSystem:
        from stiffml.sbml import SBMLSystem

        system = SBMLSystem(self.model, y0=y0, **params)
        if not system.smooth_rhs:
            raise ValueError(f"SBML model '{self.model}' cannot serve several conditions on the generated math: "
                             f"it has {system.why_not_smooth()}")
        return system
