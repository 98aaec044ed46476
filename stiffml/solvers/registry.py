"""One registry of integration methods, looked up by name and filtered by capability.

Entries name their module, so looking up a scipy or roadrunner method never imports torch (the
numerical core stays torch-free); a method's class is imported the first time it is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

from stiffml.solvers.base import CAPABILITIES, Solver

_SCIPY, _TORCH, _RR = "stiffml.solvers.scipy_solvers", "stiffml.solvers.torch_solvers", "stiffml.solvers.roadrunner"

#: name → (backend, module, class). The order is the order of listings and error messages.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "Radau": ("scipy", _SCIPY, "Radau"),
    "BDF": ("scipy", _SCIPY, "BDF"),
    "LSODA": ("scipy", _SCIPY, "LSODA"),
    "CVODE": ("roadrunner", _RR, "CVODE"),
    "rosenbrock23": ("torch", _TORCH, "Rosenbrock23"),
    "dopri5": ("torch", _TORCH, "Dopri5"),
    "dopri8": ("torch", _TORCH, "Dopri8"),
    "bosh3": ("torch", _TORCH, "Bosh3"),
    "fehlberg2": ("torch", _TORCH, "Fehlberg2"),
    "adaptive_heun": ("torch", _TORCH, "AdaptiveHeun"),
    "euler": ("torch", _TORCH, "Euler"),
    "midpoint": ("torch", _TORCH, "Midpoint"),
    "rk4": ("torch", _TORCH, "RK4"),
    "heun2": ("torch", _TORCH, "Heun2"),
    "heun3": ("torch", _TORCH, "Heun3"),
    "explicit_adams": ("torch", _TORCH, "ExplicitAdams"),
    "implicit_adams": ("torch", _TORCH, "ImplicitAdams"),
    "fixed_adams": ("torch", _TORCH, "FixedAdams"),
}


def solver_class(name: str) -> type[Solver]:
    """The class of a registered method.

    Raises:
        ValueError: ``name`` is not registered (the message lists what is).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown ODE solver {name!r}; valid: {list(REGISTRY)}")
    _, module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def solver_names(backend: str | tuple[str, ...] | None = None, **capabilities: bool) -> tuple[str, ...]:
    """Registered names, optionally filtered by backend and declared capabilities.

    Example: ``solver_names(backend="torch", adaptive=False)`` are the fixed-step torch methods.

    Args:
        backend: One backend or several (``scipy``, ``torch``, ``roadrunner``).
        **capabilities: Required values of capabilities (:data:`~stiffml.solvers.base.CAPABILITIES`).
    """
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown solver capabilities {unknown}; valid: {list(CAPABILITIES)}")
    backends = (backend,) if isinstance(backend, str) else backend
    names = [n for n, (b, _, _) in REGISTRY.items() if backends is None or b in backends]
    if capabilities:
        names = [n for n in names if all(getattr(solver_class(n), k) == v for k, v in capabilities.items())]
    return tuple(names)


def get_solver(spec: str | Solver, backend: str | tuple[str, ...] | None = None, **options: Any) -> Solver:
    """A solver object from a name (with the method's options) or an object as it is.

    Args:
        spec: A registered name or a :class:`Solver`.
        backend: The backend(s) the caller can drive; another one is refused with a line that
            lists the names it can.
        **options: Options of a named method (e.g. ``step_size`` of a fixed-step torch method);
            an option the method does not take is dropped when it is ``None``.
    """
    backends = (backend,) if isinstance(backend, str) else backend
    if isinstance(spec, Solver):
        solver = spec
    else:
        if not isinstance(spec, str) or spec not in REGISTRY or (backends and REGISTRY[spec][0] not in backends):
            raise ValueError(f"unknown ODE solver {spec!r}; valid: {list(solver_names(backends))}")
        cls = solver_class(spec)
        import inspect

        accepted = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in options.items() if k not in accepted and v is not None}
        if extra:
            raise ValueError(f"solver {spec!r} takes no option(s) {sorted(extra)}")
        solver = cls(**{k: v for k, v in options.items() if k in accepted})
    if backends and solver.backend not in backends:
        raise ValueError(f"solver {solver.name!r} runs on {solver.backend}; here valid: {list(solver_names(backends))}")
    return solver
