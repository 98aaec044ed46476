"""Free runs of learned vector fields: one settings object and one integrator for every family.

A free run integrates a trained field from a true initial state over the reference's times.
The settings are the ``--rollout.*`` group of the command line (the ``RolloutEvaluation``
callback holds them), so every family reads the same names with one meaning each:

* ``solver``: ``auto`` (the family's default), one of scipy's stiff solvers (``Radau``, ``BDF``,
  ``LSODA``: implicit, with the learned field's Jacobian by autograd), ``rosenbrock23`` (stiffml's
  differentiable stiff solver) or a torchdiffeq solver (``dopri5``, ``rk4``, ...), by name or as a
  :class:`~stiffml.solvers.base.Solver` object with its options
  (``--rollout.solver.class_path stiffml.solvers.scipy_solvers.Radau --rollout.solver.init_args.max_step 10``);
  the integration branches on the solver's declared backend and step-budget scope;
* ``rtol`` / ``atol``: tolerances, in the model's normalised units (``atol`` unset: the family's
  default, 1e-9 for ODE-Net, 1e-8 for the physics family);
* ``steps_per_interval``: the step budget of adaptive torch solvers per output interval (a field
  that needs more scores ``inf`` with a warning; scipy's solvers stop on blow-up instead);
* ``length``: how many output intervals to run (``None``: the whole reference).

Lightning-free, so it can be used and tested alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stiffml.solvers.base import Solver
from stiffml.solvers.registry import get_solver, solver_names
from stiffml.solvers.rosenbrock import batched_jacobian
from stiffml.systems import StiffSystem

#: Backends a free run can drive: scipy (numpy, float64, the field's Jacobian by autograd) and torch.
ROLLOUT_BACKENDS = ("scipy", "torch")
ROLLOUT_SOLVERS = ("auto", *solver_names(backend=ROLLOUT_BACKENDS))


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """How free runs integrate a learned field (see the module docstring).

    Attributes:
        solver: ``auto`` (the family's default) | ``Radau`` | ``BDF`` | ``LSODA`` | ``rosenbrock23`` |
            a torchdiffeq solver, by name or as a scipy or torch :class:`Solver` object.
        rtol: Relative tolerance.
        atol: Absolute tolerance (normalised units); ``None``: the family's default.
        steps_per_interval: Step budget of adaptive torch solvers per output interval.
        length: Output intervals to run; ``None``: the whole reference.
    """

    solver: str | Solver = "auto"
    rtol: float = 1e-6
    atol: float | None = None
    steps_per_interval: int = 200
    length: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.solver, Solver):
            if self.solver.backend not in ROLLOUT_BACKENDS:
                raise ValueError(f"rollout solver {self.solver.name!r} runs on {self.solver.backend}; "
                                 f"valid: {list(ROLLOUT_SOLVERS)}")
        elif self.solver not in ROLLOUT_SOLVERS:
            raise ValueError(f"unknown rollout solver {self.solver!r}; valid: {list(ROLLOUT_SOLVERS)}")
        if not (self.rtol > 0 and (self.atol is None or self.atol > 0)):
            raise ValueError(f"rollout tolerances must be positive, got rtol={self.rtol}, atol={self.atol}")
        if self.steps_per_interval < 1 or (self.length is not None and self.length < 1):
            raise ValueError(f"rollout steps_per_interval and length must be positive, got "
                             f"{self.steps_per_interval}, {self.length}")

    def resolved(self, solver: str, atol: float) -> RolloutSettings:
        """These settings with a family's defaults in place of ``auto`` and an unset ``atol``."""
        return dataclasses.replace(self, solver=solver if self.solver == "auto" else self.solver,
                                   atol=atol if self.atol is None else self.atol)

    def cut(self, n_times: int) -> int:
        """How many output times (the initial one included) a run over ``n_times`` keeps."""
        return n_times if self.length is None else min(n_times, self.length + 1)


@dataclasses.dataclass(frozen=True)
class FreeRunData:
    """Everything a free run needs from the data, in one object
    (:meth:`stiffml.data.base.SystemDataModule.free_run_data`), so that neither models nor the
    evaluation reach into the datamodule for it.

    Attributes:
        times: Output times of free runs of a field, the initial time first, ``(T,)``.
        reference: The states they are scored against, physical units, ``(m, T, n)``.
        horizon_index: ``times[:horizon_index]`` is the span trained on (the physics family's
            long horizon runs past it).
        ensemble: ``reference`` holds ``m`` held-out trajectories (else one reference, ``m = 1``).
        series_times: Times of the outputs' reference series (window models roll out over it).
        series: The outputs' reference series in physical units, ``(T', n_outputs)``.
        window: The window length of window samples (``None`` for other representations).
        cut: Time after which the data were held out (an ``extrapolate`` split), else ``None``.
        spec: Units conversion (:class:`stiffml.data.base.DataSpec`).
        energy: The system's energy of states ``(..., n)`` where it has one, else ``None``.
        conservative: Whether the system conserves that energy.
        conditions: Each reference trajectory's scaled rate constants ``(m, p)`` where the
            members have their own (a parameter-conditioned field reads them), else ``None``.
    """

    times: np.ndarray
    reference: np.ndarray
    horizon_index: int
    ensemble: bool
    series_times: np.ndarray
    series: np.ndarray
    window: int | None
    cut: float | None
    spec: Any
    energy: Callable[[np.ndarray], np.ndarray] | None = None
    conservative: bool = False
    conditions: np.ndarray | None = None

    def initial_states(self) -> np.ndarray:
        """The true initial state of every reference trajectory, ``(m, n)``."""
        return self.reference[:, 0]


def field_free_run(field: Callable[[Tensor, Tensor], Tensor], data: FreeRunData, settings: RolloutSettings,
                   like: Tensor) -> dict[str, np.ndarray]:
    """A learned field's free run from every reference trajectory's true initial state: unit
    conversion in, :func:`integrate_field`, unit conversion out. Models supply only the field.

    Args:
        field: ``(t, z (B, n)) → (B, n)`` in the model's units; where ``data.conditions`` is set,
            ``(t, z (B, n), conditions (B, p)) → (B, n)``.
        data: The free-run data.
        settings: Resolved free-run settings (``settings.length`` cuts the run).
        like: A tensor of the model's dtype and device.

    Returns:
        ``t`` (T,), ``pred`` and ``reference`` (m, T, n) in physical units, the initial states first.

    Raises:
        SolveError, StepBudgetExceeded: As :func:`integrate_field`.
    """
    keep = settings.cut(len(data.times))
    times, ref = data.times[:keep], data.reference[:, :keep]
    z0 = torch.as_tensor(data.spec.states_to_model(data.initial_states()), dtype=like.dtype, device=like.device)
    cond = None if data.conditions is None else torch.as_tensor(data.conditions, dtype=like.dtype, device=like.device)
    z = integrate_field(field, z0, times, settings, cond)
    return {"t": times, "pred": data.spec.states_to_physical(z).transpose(1, 0, 2), "reference": ref}


def window_free_run(step: Callable[[Tensor, int], Tensor], data: FreeRunData, length: int | None,
                    like: Tensor) -> dict[str, np.ndarray]:
    """A window model's free run over the output series from its first true window.

    Args:
        step: ``rollout(init (1, k, n), steps) → (1, steps, n)`` in the model's units.
        data: The free-run data (``window`` set).
        length: Steps to run (``None``: the whole series).
        like: A tensor of the model's dtype and device.

    Returns:
        ``t``, ``pred`` and ``reference`` ``(steps, n)`` in physical units (the predicted states).
    """
    k = data.window
    if k is None:
        raise ValueError("window_free_run needs window samples (FreeRunData.window is None)")
    n = len(data.series) - k
    steps = n if length is None else min(length, n)
    init = torch.as_tensor(data.spec.states_to_model(data.series[:k]), dtype=like.dtype, device=like.device)
    pred = data.spec.states_to_physical(step(init.unsqueeze(0), steps)[0])
    return {"t": data.series_times[k:k + steps], "pred": pred, "reference": data.series[k:k + steps]}


def integrate_field(
    field: Callable[[Tensor, Tensor], Tensor],
    z0: Tensor,
    times: np.ndarray,
    settings: RolloutSettings,
    conditions: Tensor | None = None,
) -> np.ndarray:
    """Integrate a learned field ``dz/dt = field(t, z)`` from a batch of states.

    Call it with autograd enabled when the field needs it (Hamiltonian fields, implicit solvers'
    Jacobians); explicit solvers cut the graph after every evaluation.

    Args:
        field: Batched field, ``(t, z (B, n)) → (B, n)``.
        z0: Initial states ``(B, n)`` (their dtype and device are the model's).
        times: Output times, increasing, the first being the initial time.
        settings: The free-run settings, resolved for the family (:meth:`RolloutSettings.resolved`).
        conditions: Each state's scaled rate constants ``(B, p)``, for a field
            ``(t, z, conditions) → (B, n)`` conditioned on them; ``None``: ``field(t, z)``.

    Returns:
        States ``(T, B, n)`` in float64, the initial states first.

    Raises:
        SolveError: A scipy solver failed or the states blew up.
        StepBudgetExceeded: A torch solver exceeded ``steps_per_interval``.
    """
    if settings.solver == "auto" or settings.atol is None:
        raise ValueError("integrate_field needs resolved settings (RolloutSettings.resolved)")
    spec = settings.solver
    fixed = isinstance(spec, str) and spec in solver_names(backend="torch", adaptive=False)
    # a fixed-step method named by string steps from output time to output time
    step = float(times[1] - times[0]) if fixed and len(times) > 1 else (1.0 if fixed else None)
    solver = get_solver(spec, backend=ROLLOUT_BACKENDS, **({"step_size": step} if fixed else {}))
    if solver.backend == "scipy":  # one member at a time, each with its own conditions
        fields = [field] * len(z0) if conditions is None else [
            (lambda t, z, c=conditions[i:i + 1]: field(t, z, c)) for i in range(len(z0))]
        out = [LearnedField(f, z, z0.dtype, z0.device).solve(
            times, rtol=settings.rtol, atol=settings.atol, method=solver, t0=times[0]).y for f, z in zip(fields, z0)]
        return np.stack(out, axis=1)
    if conditions is not None:
        conditioned = field
        field = lambda t, z: conditioned(t, z, conditions)  # noqa: E731
    if z0.is_inference():  # validate/predict run in inference mode; autograd needs a normal tensor
        z0 = z0.clone()
    t = torch.as_tensor(times - times[0], dtype=z0.dtype, device=z0.device)
    budget = settings.steps_per_interval * (max(len(times) - 1, 1) if solver.budget_per == "solve" else 1)
    start = float(times[0])
    if solver.implicit:  # its Jacobian comes from autograd through the field
        func = lambda s, z: field(s + start, z)  # noqa: E731
    else:  # explicit steps: cut the graph per evaluation so memory stays flat
        func = lambda s, z: field(s + start, z).detach()  # noqa: E731
    out = solver.integrate(func, z0, t, rtol=settings.rtol, atol=settings.atol, max_steps=budget)  # type: ignore[attr-defined]
    return out.detach().to(torch.float64).cpu().numpy()


class LearnedField(StiffSystem):
    """A learned field as a :class:`StiffSystem` for one initial state, so scipy's stiff solvers
    (and their blow-up errors) integrate it, with the field's Jacobian by autograd."""

    name = "learned-field"
    blowup = 1e6  # normalised units: far outside any training data

    def __init__(self, field: Callable[[Tensor, Tensor], Tensor], z0: Tensor, dtype: torch.dtype,
                 device: torch.device) -> None:  # noqa: D107 (no parameters to check)
        self.field = field
        self.params: dict[str, float] = {}
        self.y0 = z0.detach().to(torch.float64).cpu().numpy()
        self.state_names = tuple(f"z{i}" for i in range(len(self.y0)))
        self._dtype, self._device = dtype, device  # the model may live on a GPU

    def _t(self, t: float) -> Tensor:
        return torch.tensor(t, dtype=self._dtype, device=self._device)

    def rhs(self, t: Any, y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = torch.as_tensor(np.atleast_2d(y.T), dtype=self._dtype, device=self._device)
            out = self.field(self._t(t), z).double().cpu().numpy().T
        return out if y.ndim == 2 else out[:, 0]

    def jac(self, t: Any, y: np.ndarray) -> np.ndarray:
        z = torch.as_tensor(y[None, :], dtype=self._dtype, device=self._device)
        return batched_jacobian(self.field, self._t(t), z)[0].detach().double().cpu().numpy()
