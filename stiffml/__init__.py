"""stiffml: train, compare and explain neural networks on stiff ODE systems.

Public API for users and plugin authors (imported on first use, so ``import stiffml`` and the
``stiffml`` command stay fast):

- :class:`StiffModel`: subclass it for a new architecture (set ``family`` and
  ``representation``, build layers in ``__init__``, implement ``forward``); or a family base:
  :class:`WindowModel` / :class:`LastStateReadout` (window → next state, with free runs),
  :class:`LiftedConvNet` (t → state through 1-D convolutions), :class:`PhysicsModel` (a learned
  field ``du/dt = f(u)`` on derivative samples).
- :func:`check_model`, :func:`check_datamodule`: the contract every registered class passes.
- :class:`StiffDataModule`: subclass it for a new system (set ``system_class`` or override
  ``make_system``); :class:`EnsembleDataModule` for many trajectories from random initial
  states; both are siblings under :class:`SystemDataModule` (implement its ``build_samples``
  for a new kind of data). :class:`DataSpec`: what a model gets from its data.
- :class:`RolloutSettings`: the free-run settings (the ``--rollout.*`` group).
- :func:`get_system`, :class:`StiffSystem`: the numerical core, free of Lightning.
- :class:`StopOnLossBelow`: the paper's stop-at-loss-threshold rule as a callback.
- :class:`StopOnDivergence`: stop a run whose loss turns non-finite or explodes (on by default).
- :class:`SwitchToLBFGS`: Adam first, then L-BFGS (full-batch physics models).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "StopOnLossBelow": "stiffml.training.callbacks",
    "StopOnDivergence": "stiffml.training.callbacks",
    "SwitchToLBFGS": "stiffml.training.callbacks",
    "DivergenceError": "stiffml.training.callbacks",
    "REPRESENTATIONS": "stiffml.data",
    "StiffDataModule": "stiffml.data",
    "SystemDataModule": "stiffml.data",
    "EnsembleDataModule": "stiffml.data",
    "DataSpec": "stiffml.data",
    "Built": "stiffml.data",
    "RolloutSettings": "stiffml.evaluation.rollout",
    "StiffModel": "stiffml.models",
    "WindowModel": "stiffml.models",
    "LastStateReadout": "stiffml.models",
    "LiftedConvNet": "stiffml.models",
    "PhysicsModel": "stiffml.models",
    "Trajectory": "stiffml.systems",
    "check_model": "stiffml.testing",
    "check_datamodule": "stiffml.testing",
    "SolveError": "stiffml.systems",
    "StiffSystem": "stiffml.systems",
    "get_system": "stiffml.systems",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stiffml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
