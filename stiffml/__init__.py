"""stiffml: train, compare and explain neural networks on stiff ODE systems.

Public API for users and plugin authors:

- :class:`StiffModel`: subclass it for a new architecture (set ``family`` and
  ``representation``, build layers in ``__init__``, implement ``forward``).
- :class:`StiffDataModule`: subclass it for a new system (set ``system_class`` or override
  ``make_system``).
- :func:`get_system`, :class:`StiffSystem`: the numerical core, free of Lightning.
- :class:`StopOnLossBelow`: the paper's stop-at-loss-threshold rule as a callback.
- :class:`SwitchToLBFGS`: Adam first, then L-BFGS (full-batch physics models).
"""

from stiffml.callbacks import StopOnLossBelow, SwitchToLBFGS
from stiffml.data import REPRESENTATIONS, StiffDataModule
from stiffml.models import StiffModel
from stiffml.systems import SolveError, StiffSystem, get_system

__version__ = "0.1.0"

__all__ = [
    "REPRESENTATIONS", "SolveError", "StiffDataModule", "StiffModel", "StiffSystem",
    "StopOnLossBelow", "SwitchToLBFGS", "__version__", "get_system",
]
