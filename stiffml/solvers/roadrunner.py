"""CVODE through libroadrunner as a :class:`~stiffml.solvers.base.Solver`.

roadrunner compiles an SBML document and integrates it with SUNDIALS' CVODE (BDF with Newton
iterations), events and algebraic rules included; :class:`stiffml.sbml.SBMLSystem` drives it.
Torch-free; libroadrunner is imported only when a model is loaded.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stiffml.solvers.base import Solver, check_tolerances


class CVODE(Solver):
    """SUNDIALS' CVODE inside libroadrunner: the reference engine for SBML models."""

    name = "CVODE"
    backend: ClassVar[str] = "roadrunner"
    implicit = True
    events = True

    def check(self, rtol: float, atol: Any) -> None:
        check_tolerances(rtol, atol)
