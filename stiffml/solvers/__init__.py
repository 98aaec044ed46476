"""Integration methods as objects (:class:`Solver`), one registry, and the torch front end.

* :mod:`stiffml.solvers.base`: the :class:`Solver` interface and its declared capabilities;
* :mod:`stiffml.solvers.registry`: ``get_solver``, ``solver_names``, ``solver_class``;
* :mod:`stiffml.solvers.scipy_solvers` (``Radau``, ``BDF``, ``LSODA``), :mod:`~.roadrunner`
  (``CVODE``), :mod:`~.torch_solvers` (``Rosenbrock23`` and torchdiffeq's methods, and
  :func:`integrate`: solve a batched torch field with a torch method by name or object).

The torch parts are imported on first use (PEP 562), so ``stiffml.systems`` can use the registry
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from stiffml.solvers.base import CAPABILITIES, Solver
from stiffml.solvers.registry import REGISTRY, get_solver, solver_class, solver_names
from stiffml.solvers.roadrunner import CVODE
from stiffml.solvers.scipy_solvers import BDF, LSODA, Radau, ScipySolver

_LAZY = {
    "SOLVERS": "stiffml.solvers.torch_solvers", "TORCHDIFFEQ_SOLVERS": "stiffml.solvers.torch_solvers",
    "FIXED_STEP": "stiffml.solvers.torch_solvers", "check_solver": "stiffml.solvers.torch_solvers",
    "integrate": "stiffml.solvers.torch_solvers", "torch_solver": "stiffml.solvers.torch_solvers",
    "TorchSolver": "stiffml.solvers.torch_solvers", "Rosenbrock23": "stiffml.solvers.torch_solvers",
    "TorchDiffEqSolver": "stiffml.solvers.torch_solvers",
    "StepBudgetExceeded": "stiffml.solvers.rosenbrock",
    "batched_jacobian": "stiffml.solvers.rosenbrock", "rosenbrock23": "stiffml.solvers.rosenbrock",
}

__all__ = [
    "BDF", "CAPABILITIES", "CVODE", "LSODA", "REGISTRY", "Radau", "ScipySolver", "Solver", "get_solver",
    "solver_class", "solver_names", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stiffml.solvers' has no attribute {name!r}")
