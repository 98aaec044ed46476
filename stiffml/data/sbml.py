"""A datamodule for any SBML model file (or a shipped example, by name)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from stiffml.data.base import StiffDataModule
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
