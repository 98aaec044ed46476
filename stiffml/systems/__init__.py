"""The stiff-system zoo (numpy/scipy only).

Example:
    >>> from stiffml.systems import get_system
    >>> s = get_system("bz")
    >>> traj = s.solve(s.default_grid(dt=0.01), rtol=1e-8, atol=1e-10)
"""

from __future__ import annotations

from typing import Any

from stiffml.systems.base import STIFF_METHODS, SolveError, StiffSystem, Trajectory
from stiffml.systems.chemistry import BZ, HIRES, Orego, Pollu, Robertson
from stiffml.systems.mechanics import Duffing, VanDerPol, VanDerPolLienard

SYSTEMS: dict[str, type[StiffSystem]] = {
    cls.name: cls for cls in (BZ, VanDerPol, VanDerPolLienard, Robertson, HIRES, Orego, Pollu, Duffing)
}


def get_system(name: str, y0: Any = None, **params: float) -> StiffSystem:
    """Build a system by name.

    Args:
        name: One of ``SYSTEMS`` (``bz``, ``vdp``, ``vdp_lienard``, ``robertson``, ``hires``, ``orego``, ``pollu``,
            ``duffing``).
        y0: Initial state (default: the system's).
        **params: Parameter overrides; unknown names are an error listing the valid ones.
    """
    try:
        cls = SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system {name!r}; valid: {sorted(SYSTEMS)}") from None
    return cls(y0=y0, **params)


__all__ = [
    "BZ", "HIRES", "STIFF_METHODS", "SYSTEMS", "Duffing", "Orego", "Pollu", "Robertson", "SolveError",
    "StiffSystem", "Trajectory", "VanDerPol", "VanDerPolLienard", "get_system",
]
