"""The datamodule classes: a small abstract base and the single-trajectory datamodule.

:class:`SystemDataModule` holds what every stiffml datamodule shares (the system, the
representation linked from the model, validation of common settings, whole-batch loaders, the
:class:`DataSpec` handed to the model) and calls one hook, :meth:`SystemDataModule.build_samples`.
Its two siblings implement it: :class:`StiffDataModule` (one reference trajectory on a grid,
the paper's setting; subclass it for a new system) and
:class:`~stiffml.data.ensemble.EnsembleDataModule` (many trajectories from random initial states).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from stiffml.data.cache import cached_solve
from stiffml.data.loader import BatchLoader
from stiffml.data.samples import (
    REPRESENTATIONS,
    DerivativeSamples,
    PairSamples,
    SegmentSamples,
    PointwiseSamples,
    SampleSet,
    TrajectorySamples,
    WindowSamples,
)
from stiffml.data.scaling import NORMALIZATIONS, Normalization, Scaler
from stiffml.evaluation.rollout import FreeRunData
from stiffml.systems import STIFF_METHODS, StiffSystem, Trajectory

Representation = Literal["pointwise", "window", "pair", "segment", "derivative", "trajectory"]


def precision_dtype(precision: str | None) -> torch.dtype:
    """The dtype data should have for a Lightning precision setting (no per-step casts)."""
    p = str(precision)
    if p.startswith("64"):
        return torch.float64
    if p == "bf16-true":
        return torch.bfloat16
    if p == "16-true":
        return torch.float16
    return torch.float32


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model needs from its data, handed over once (``StiffModel.setup``) so that no model
    reaches into the datamodule for it again.

    Attributes:
        representation: The samples served (``pointwise``, ``window``, ``pair``, ``segment``,
            ``derivative``).
        n_inputs: Input width per time step.
        n_outputs: Number of predicted states.
        normalization: The normalisation's name (``none``, ``zscore``, ...).
        scaler: The fitted normalisation of the states (physical ↔ model units).
        times: Times of the reference series, shape ``(T,)`` (an ensemble: one trajectory's).
        reference: The reference series of the outputs in physical units, ``(T, n_outputs)``
            (an ensemble: every sample's state, ``(m·T, n)``).
    """

    representation: str
    n_inputs: int
    n_outputs: int
    normalization: str
    scaler: Scaler
    times: np.ndarray
    reference: np.ndarray

    def to_physical(self, x: Any, out: Tensor) -> Tensor:
        """Model outputs (or targets) in physical units: states, or for ``derivative`` samples the
        derivatives at the batch's states ``x``. Computed in float64 (float32 on Apple's MPS)."""
        dtype = torch.float32 if out.device.type == "mps" else torch.float64
        out = out.to(dtype)
        if self.representation == "derivative":
            states = x[0] if isinstance(x, (tuple, list)) else x  # (states, conditions) of a rate ensemble
            return self.scaler.inverse_derivative(states.to(dtype), out)
        return self.scaler.inverse(out)

    def states_to_physical(self, z: Any) -> np.ndarray:
        """Normalised states (tensor or array, last axis the state) in physical units, as float64
        numpy: what every family's free run returns."""
        if isinstance(z, Tensor):
            z = z.detach().to(torch.float64).cpu().numpy()
        return self.scaler.inverse(np.asarray(z, dtype=np.float64))

    def states_to_model(self, y: np.ndarray) -> np.ndarray:
        """Physical states in the model's normalised units (float64 numpy)."""
        return self.scaler.transform(np.asarray(y, dtype=np.float64))


@dataclasses.dataclass
class Built:
    """What :meth:`SystemDataModule.build_samples` returns (numpy or CPU tensors; the base moves
    the samples to the training device and dtype).

    Attributes:
        samples: Every sample of the chosen representation.
        train: Indices of the training samples.
        val: Indices of the validation samples.
        scaler: The normalisation, fitted on the training split.
        times: Times of the reference series.
        reference: The reference series in physical units (see :class:`DataSpec`).
        rollout_times: Output times of free runs of a learned field.
        rollout_reference: States free runs are scored against, ``(m, T, n)``.
        horizon_index: ``rollout_times[:horizon_index]`` is the training horizon.
        cut: Time after which samples were held out (an ``extrapolate`` split), else ``None``.
    """

    samples: SampleSet
    train: np.ndarray
    val: np.ndarray
    scaler: Scaler
    times: np.ndarray
    reference: np.ndarray
    rollout_times: np.ndarray
    rollout_reference: np.ndarray
    horizon_index: int
    cut: float | None = None


class SystemDataModule(pl.LightningDataModule, abc.ABC):
    """The base of every stiffml datamodule (the registry and the CLI accept its subclasses).

    Subclasses set ``system_class`` (or override :meth:`make_system`) and implement
    :meth:`build_samples`; :meth:`setup` calls it once per device and moves what it returns
    there. Most plugins subclass :class:`StiffDataModule` instead, which implements it for one
    reference trajectory.

    Args:
        params: System parameter overrides.
        y0: Initial state; default the system's.
        representation: The samples served; set by the CLI from the model.
        train_fraction: Fraction of the data used for training, in (0, 1).
        normalization: One of the class's ``normalizations``.
        batch_size: Training batch size.
        eval_batch_size: Validation/test/predict batch size.
        shuffle: Reshuffle training batches every epoch.
        drop_last: Drop a final short training batch.
        seed: Seed of the split, the shuffling and any random data.
        ref_solver: Solver of the reference data (one of the class's ``ref_solvers``).
        ref_rtol: Relative tolerance of the reference solve.
        ref_atol: Absolute tolerance of the reference solve.
        cache_dir: Trajectory cache folder; default ``$STIFFML_CACHE_DIR`` or ``~/.cache/stiffml``.
    """

    system_class: ClassVar[type[StiffSystem] | None] = None
    ref_solvers: ClassVar[tuple[str, ...]] = STIFF_METHODS
    normalizations: ClassVar[tuple[str, ...]] = NORMALIZATIONS
    representations: ClassVar[tuple[str, ...]] = REPRESENTATIONS
    # arguments that make a small instance for contract and smoke tests, for datamodules that have
    # required arguments or no fixed system (e.g. SBML's model); empty: the defaults with a short grid
    example_args: ClassVar[dict[str, Any]] = {}
    rollout_factor: ClassVar[int] = 1  # free runs cover the one span (ensembles: several)
    #: Indices of the held-out trajectories of an ensemble (set in its setup); ``None``: one trajectory.
    val_trajectories: np.ndarray | None = None
    #: Time after which samples are held out (an ``extrapolate`` split, set in setup); ``None``: none.
    extrapolation_cut: float | None = None

    def __init__(
        self,
        params: dict[str, float] | None = None,
        y0: list[float] | None = None,
        representation: str | None = None,
        train_fraction: float = 0.8,
        normalization: str = "zscore",
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        ref_solver: str = "Radau",
        ref_rtol: float = 1e-10,
        ref_atol: float = 1e-12,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.system: StiffSystem = self.make_system(params or {}, y0)
        if representation is not None and representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {representation!r}; valid: {list(REPRESENTATIONS)}")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
        if normalization not in self.normalizations:
            raise ValueError(f"normalization {normalization!r} is not available for {type(self).__name__}; "
                             f"valid: {list(self.normalizations)}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(f"batch sizes must be positive, got {batch_size}, {eval_batch_size}")
        if ref_solver not in self.ref_solvers:
            raise ValueError(f"unknown ref_solver {ref_solver!r}; valid: {list(self.ref_solvers)}")
        if not (ref_rtol > 0 and ref_atol > 0):
            raise ValueError(f"reference tolerances must be positive, got {ref_rtol}, {ref_atol}")
        self.representation = representation
        self.outputs: list[str] = list(self.system.state_names)
        self.drop_last = drop_last  # attribute, not hparams: subclasses may not expose it
        self.samples: SampleSet | None = None
        self.target_scaler: Scaler | None = None
        self.train_idx: Tensor | None = None
        self.val_idx: Tensor | None = None
        SystemDataModule._check_representation(self)  # subclasses check their own after their setup

    # ----------------------------------------------------------------------- hooks for subclasses
    def make_system(self, params: dict[str, float], y0: list[float] | None) -> StiffSystem:
        """Build the system from ``system_class`` (unknown parameters list the valid ones)."""
        if self.system_class is None:
            raise TypeError(f"{type(self).__name__} must set system_class or override make_system")
        return self.system_class(y0=y0, **params)

    @abc.abstractmethod
    def build_samples(self) -> Built:
        """Solve (or load) the reference data and build the samples of ``self.representation``."""

    # ----------------------------------------------------------------------------- dimensions
    def set_representation(self, representation: str) -> None:
        """Choose the sample representation (the CLI calls this from the model's declaration)."""
        if representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {representation!r}; valid: {list(REPRESENTATIONS)}")
        self.representation = representation
        self.samples = None
        self._check_representation()

    def _check_representation(self) -> None:
        rep = self.representation
        if rep is not None and rep not in self.representations:
            raise ValueError(
                f"{type(self).__name__} serves {list(self.representations)} samples, not '{rep}'"
            )

    @property
    def n_inputs(self) -> int:
        """Input width per time step for the current representation."""
        return 1 if self.representation == "pointwise" else len(self.outputs)

    @property
    def n_outputs(self) -> int:
        """Number of predicted states."""
        return len(self.outputs)

    # --------------------------------------------------------------------------------- setup
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return torch.device("cpu"), torch.float64
        return trainer.strategy.root_device, precision_dtype(trainer.precision)

    def setup(self, stage: str | None = None) -> None:
        if self.representation is None:
            raise ValueError(
                f"{type(self).__name__}: no representation set; pass representation= "
                f"(one of {list(self.representations)}) or let the CLI link it from the model"
            )
        device, dtype = self._device_dtype()
        if self.samples is not None and self.samples.device == device:
            return
        built = self.build_samples()
        if len(built.train) == 0 or len(built.val) == 0:
            raise ValueError(f"split leaves {len(built.train)} training and {len(built.val)} validation samples")
        self.target_scaler = built.scaler
        self.times, self.reference = built.times, built.reference
        self.rollout_times, self.rollout_reference = built.rollout_times, built.rollout_reference
        self.horizon_index = built.horizon_index
        self.extrapolation_cut = built.cut
        self.samples = built.samples.to(device, dtype)
        self.train_idx = torch.as_tensor(built.train, device=device)
        self.val_idx = torch.as_tensor(built.val, device=device)

    def spec(self) -> DataSpec:
        """What a model needs from the data, after :meth:`setup`."""
        if self.samples is None or self.target_scaler is None:
            raise RuntimeError(f"{type(self).__name__}.spec() needs setup() first")
        return DataSpec(self.representation, self.n_inputs, self.n_outputs, self.hparams.normalization,
                        self.target_scaler, self.times, self.reference)

    def free_run_data(self) -> FreeRunData:
        """What a free run needs, after :meth:`setup` (:class:`stiffml.evaluation.rollout.FreeRunData`)."""
        spec = self.spec()
        return FreeRunData(
            times=self.rollout_times, reference=self.rollout_reference, horizon_index=self.horizon_index,
            ensemble=self.val_trajectories is not None, series_times=self.times, series=self.reference,
            window=self.hparams.get("window") if self.representation in ("window", "segment") else None,
            cut=self.extrapolation_cut, spec=spec, energy=self.system.energy,
            conservative=bool(self.system.conservative),
        )

    def energy(self, y: np.ndarray) -> np.ndarray | None:
        """The system's energy of states ``(..., n)``, or None if it defines none."""
        fn = self.system.energy
        return fn(y) if fn is not None else None

    @property
    def conservative(self) -> bool:
        """Whether the system conserves its energy (then free runs report energy drift)."""
        return bool(self.system.conservative)

    # ----------------------------------------------------------------------------- loaders
    def batch_size(self, train: bool) -> int:
        """Batch size of the training loader, or of the evaluation loaders."""
        h = self.hparams
        return h.batch_size if train else (h.eval_batch_size or 10 * h.batch_size)

    def _loader(self, idx: Tensor, train: bool) -> BatchLoader:
        trainer = getattr(self, "trainer", None)
        h = self.hparams
        return BatchLoader(
            self.samples,
            idx,
            batch_size=self.batch_size(train),
            shuffle=train and h.shuffle,
            drop_last=train and self.drop_last,
            equal_shards=train,
            seed=h.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            epoch_fn=(lambda: trainer.current_epoch) if trainer else None,
            # batches of the current epoch already trained on: what a mid-epoch checkpoint saves
            progress_fn=(lambda: trainer.fit_loop.epoch_loop.batch_progress.current.ready) if trainer and train else None,
        )

    def train_dataloader(self) -> BatchLoader:
        return self._loader(self.train_idx, train=True)

    def val_dataloader(self) -> BatchLoader:
        return self._loader(self.val_idx, train=False)

    def test_dataloader(self) -> BatchLoader:
        return self._loader(self.val_idx, train=False)

    def predict_dataloader(self) -> BatchLoader:
        all_idx = torch.arange(len(self.samples), device=self.samples.device)
        return self._loader(all_idx, train=False)



class StiffDataModule(SystemDataModule):
    """Reference trajectories of one stiff system, served as whole in-memory batches.

    Subclasses set ``system_class`` (a :class:`~stiffml.systems.StiffSystem` subclass, from the zoo
    or their own) and may override :meth:`make_system` or :meth:`make_trajectory`. The representation is normally filled in by the CLI from the
    model's declaration; set it yourself only when using the Python API.

    Args:
        params: System parameter overrides (e.g. ``{c: -8.375e-6}`` for B-Z); defaults are the
            papers'.
        y0: Initial state; default the system's.
        t_span: Time span ``[t0, t1]``; default the system's (the paper's).
        dt: Sampling step; default the system's (the paper's).
        spacing: ``linear`` (the paper's grid) or ``log`` (log-spaced times, e.g. ROBER).
        points_per_decade: Density of a log grid (Kim et al. 2021 use 5: 50 points over ten decades).
        outputs: State names the model predicts; default the system's (VdP: ``[x]``).
        representation: ``pointwise`` | ``window`` | ``pair`` | ``segment`` | ``derivative`` |
            ``trajectory``; set by the CLI from the model.
        window: Past states per sample (``window``), or steps per segment (``segment``).
        horizon: States each ``window`` sample targets: 1 (the next state, teacher forcing), or
            h > 1 (the next h, for window models trained on their own unrolled predictions; set
            by the CLI from the model's ``unroll``).
        state_samples: ``derivative`` samples only: add this many states drawn uniformly from the
            box the training states span (widened by ``state_margin``), with their exact
            derivatives, to the training set, so that a learned field is pinned down off the
            trajectory too (a limit cycle alone leaves the field around it free). Validation
            stays on the trajectory. The states are given the start time, so the system must be
            autonomous (every built-in one is). 0: the trajectory only.
        state_margin: Widen the box of ``state_samples`` by this fraction of each state's range
            on either side (>= 0).
        split: ``random`` (the paper's random split) or ``extrapolate`` (train on the first
            ``train_fraction`` of the time span, validate on the rest).
        train_fraction: Fraction of samples (or of time) used for training, in (0, 1).
        normalization: ``none`` | ``zscore`` | ``minmax`` | ``maxabs`` (y / max|y|, Kim et al.'s
            species scaling) | ``log-zscore`` (log, then z-score: for positive concentrations). Fitted on the training split; time inputs are mapped to
            [0, 1] unless ``none``.
        batch_size: Training batch size.
        eval_batch_size: Validation/test/predict batch size; default 10 × ``batch_size``.
        shuffle: Reshuffle training batches every epoch.
        drop_last: Drop a final short training batch (BatchNorm cannot train on one sample).
        seed: Seed of the random split and the shuffling.
        ref_solver: scipy stiff solver for the reference data: ``Radau`` | ``BDF`` | ``LSODA``.
        ref_rtol: Relative tolerance of the reference solve.
        ref_atol: Absolute tolerance of the reference solve.
        cache_dir: Trajectory cache folder; default ``$STIFFML_CACHE_DIR`` or ``~/.cache/stiffml``.
    """

    default_outputs: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        params: dict[str, float] | None = None,
        y0: list[float] | None = None,
        t_span: tuple[float, float] | None = None,
        dt: float | None = None,
        spacing: Literal["linear", "log"] | None = None,
        points_per_decade: int = 100,
        outputs: list[str] | None = None,
        representation: Representation | None = None,
        window: int = 20,
        horizon: int = 1,
        state_samples: int = 0,
        state_margin: float = 0.1,
        split: Literal["random", "extrapolate"] = "random",
        train_fraction: float = 0.8,
        normalization: Normalization = "zscore",
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        ref_solver: Literal["Radau", "BDF", "LSODA"] = "Radau",
        ref_rtol: float = 1e-10,
        ref_atol: float = 1e-12,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            params=params, y0=y0, representation=representation, train_fraction=train_fraction,
            normalization=normalization, batch_size=batch_size, eval_batch_size=eval_batch_size,
            shuffle=shuffle, drop_last=drop_last, seed=seed, ref_solver=ref_solver, ref_rtol=ref_rtol,
            ref_atol=ref_atol, cache_dir=cache_dir,
        )
        if points_per_decade < 1:
            raise ValueError(f"points_per_decade must be a positive integer, got {points_per_decade}")
        self.grid = self.system.default_grid(t_span, dt, spacing, points_per_decade)
        repeated = np.flatnonzero(np.diff(self.grid) <= 0)
        if repeated.size:
            raise ValueError(f"the time grid repeats or reverses at t={self.grid[repeated[0]]:.6g}; "
                             "choose a larger dt or fewer points_per_decade")
        names = list(self.system.state_names)
        if not names:
            raise ValueError(f"system '{self.system.name}' has no state to learn (no species and no variable "
                             "with a rate rule); a model needs at least one changing quantity")
        outputs = list(outputs or self.default_outputs or names)
        bad = [o for o in outputs if o not in names]
        if bad or len(set(outputs)) != len(outputs):
            raise ValueError(f"outputs {outputs} must be distinct states of '{self.system.name}': {names}")
        self.outputs = outputs
        self.output_index = [names.index(o) for o in outputs]
        if split not in ("random", "extrapolate"):
            raise ValueError(f"unknown split {split!r}; valid: ['random', 'extrapolate']")
        if window < 1:
            raise ValueError(f"window must be a positive integer, got {window}")
        if horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon}")
        if state_samples < 0 or not (state_margin >= 0 and np.isfinite(state_margin)):
            raise ValueError(f"state_samples must be >= 0 and state_margin a finite number >= 0, "
                             f"got {state_samples}, {state_margin}")
        if state_samples and normalization == "log-zscore":
            raise ValueError("state_samples draws states from a box that may hold non-positive values; "
                             "normalization 'log-zscore' cannot take them (use zscore, minmax or maxabs)")
        self._check_representation()

    # ----------------------------------------------------------------------- hooks for subclasses
    def make_trajectory(self) -> Trajectory:
        """The reference trajectory on ``self.grid`` (cached)."""
        h = self.hparams
        return cached_solve(
            self.system, self.grid, h.cache_dir, method=h.ref_solver, rtol=h.ref_rtol, atol=h.ref_atol
        )

    def _check_representation(self) -> None:
        super()._check_representation()
        rep = self.representation
        if rep in ("window", "segment") and self.hparams.window >= len(self.grid):
            raise ValueError(
                f"window={self.hparams.window} is not shorter than the series "
                f"({len(self.grid)} samples)"
            )
        if self.hparams.get("state_samples", 0) and rep not in (None, "derivative"):
            raise ValueError(f"state_samples={self.hparams.state_samples} applies to derivative samples, not '{rep}'")
        horizon = self.hparams.get("horizon", 1)
        if horizon > 1 and rep != "window":
            raise ValueError(f"horizon={horizon} applies to window samples, not '{rep}'")
        if rep == "window" and self.hparams.window + horizon > len(self.grid):
            raise ValueError(
                f"window={self.hparams.window} plus horizon={horizon} is longer than the series "
                f"({len(self.grid)} samples)"
            )
        if rep in ("pair", "segment", "derivative", "trajectory") and len(self.outputs) != self.system.n:
            raise ValueError(
                f"representation '{rep}' needs every state as output "
                f"({list(self.system.state_names)}), got outputs={self.outputs}"
            )

    # --------------------------------------------------------------------------------- setup
    def prepare_data(self) -> None:
        self.make_trajectory()

    @property
    def target_times(self) -> np.ndarray:
        """Time of each sample's target, in sample order (after ``setup``)."""
        return self._target_times(self.times)

    def _target_times(self, t: np.ndarray) -> np.ndarray:
        rep, k = self.representation, self.hparams.window
        # a window sample's time is that of its first target
        last = len(t) - self.hparams.get("horizon", 1) + 1
        return {"window": t[k:last], "segment": t[k:], "pair": t[1:]}.get(rep, t)

    def build_samples(self) -> Built:
        traj = self.make_trajectory()
        reference = traj.y[:, self.output_index]
        target_t = self._target_times(traj.t)
        n = len(target_t)
        h = self.hparams
        if h.split == "random":
            perm = np.random.default_rng(h.seed).permutation(n)
            n_train = int(round(h.train_fraction * n))
            train, val = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        else:
            cut = traj.t[0] + h.train_fraction * (traj.t[-1] - traj.t[0])
            train, val = np.flatnonzero(target_t <= cut), np.flatnonzero(target_t > cut)
        # sample i's (first) target is row i + lead of the series
        lead = {"window": h.window, "segment": h.window, "pair": 1}.get(self.representation, 0)
        fitted = reference[train + lead] if len(train) else reference  # the training states
        scaler = Scaler.fit(h.normalization, fitted)
        samples = self._samples(traj, reference, scaler)
        if h.get("state_samples", 0) and self.representation == "derivative":  # lead is 0 here
            box = self._state_samples(traj.t[0], fitted, scaler)
            train = np.concatenate([train, len(samples) + np.arange(len(box))])
            samples = DerivativeSamples(*(torch.cat([samples.tensors[k], box.tensors[k]]) for k in ("y", "dy")))
        return Built(
            samples=samples, train=train, val=val, scaler=scaler,
            times=traj.t, reference=reference,
            # free runs of a learned field (physics family): the one trajectory over the whole span
            rollout_times=traj.t, rollout_reference=traj.y[None], horizon_index=len(traj.t),
            cut=None if h.split == "random" else float(cut),
        )

    def _samples(self, traj: Trajectory, reference: np.ndarray, scaler: Scaler) -> SampleSet:
        z = torch.as_tensor(scaler.transform(reference))
        rep = self.representation
        t = traj.t
        if rep == "pointwise":
            t_in = t if self.hparams.normalization == "none" else (t - t[0]) / (t[-1] - t[0])
            return PointwiseSamples(torch.as_tensor(t_in), z)
        if rep == "window":
            return WindowSamples(z, self.hparams.window, self.hparams.get("horizon", 1))
        if rep == "pair":
            return PairSamples(torch.as_tensor(t), z)
        if rep == "segment":
            return SegmentSamples(torch.as_tensor(t), z, self.hparams.window)
        if rep == "trajectory":
            return TrajectorySamples(torch.as_tensor(t), z[None])
        dz = scaler.derivative(traj.y, self.system.rhs(t, traj.y.T).T)
        return DerivativeSamples(z, torch.as_tensor(dz))

    def _state_samples(self, t0: float, states: np.ndarray, scaler: Scaler) -> DerivativeSamples:
        """``state_samples`` states uniform in the (widened) box of ``states``, with exact derivatives."""
        h = self.hparams
        lo, hi = states.min(axis=0), states.max(axis=0)
        pad = h.state_margin * (hi - lo)
        y = np.random.default_rng([h.seed, 1]).uniform(lo - pad, hi + pad, size=(h.state_samples, len(lo)))
        dy = self.system.rhs(t0, y.T).T
        return DerivativeSamples(torch.as_tensor(scaler.transform(y)), torch.as_tensor(scaler.derivative(y, dy)))

    def predict_dataloader(self) -> BatchLoader:
        # the series' samples only (not the extra state_samples), in time order, as target_times
        return self._loader(torch.arange(len(self.target_times), device=self.samples.device), train=False)
