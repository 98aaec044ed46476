"""Many trajectories from random initial states: the physics family's data (Yaguchi 2025).

Samples are ``(state, d state/dt)`` pairs at every time of every trajectory. The split is by
trajectory, so held-out samples come from initial states the model never saw. Every trajectory
is also solved over ``rollout_factor`` times the training horizon (one stacked solve, cached),
so free runs of a learned field can be scored over 1× and 10× the horizon from held-out states.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch

from stiffml.data.base import Built, SystemDataModule
from stiffml.data.cache import cached_ensemble
from stiffml.data.samples import DerivativeSamples, TrajectorySamples
from stiffml.data.scaling import Normalization, Scaler


class EnsembleDataModule(SystemDataModule):
    """Derivative samples from an ensemble of trajectories with Gaussian initial states.

    Args:
        params: System parameter overrides (e.g. ``{alpha: 1.0, beta: 2.0, gamma: 0.0}``).
        n_trajectories: Number of trajectories.
        y0_mean: Mean of the initial states (default zeros).
        y0_std: Standard deviation of the initial states (each component, independent).
        t_span: Time span ``[t0, t1]`` of each training trajectory; default the system's.
        n_points: Samples per trajectory, equally spaced over ``t_span`` (both ends included).
        noise_std: Standard deviation of Gaussian noise added to the observed states and
            derivatives (train and held-out samples alike, as in the seed); 0 for exact data.
        rollout_factor: Free runs are scored over this many training horizons (and over one).
        representation: ``derivative`` or ``trajectory`` (whole trajectories from their initial
            states, split by trajectory); set by the CLI from the model.
        train_fraction: Fraction of trajectories used for training, in (0, 1).
        normalization: ``none`` (default: structure-preserving models need physical units) |
            ``zscore`` | ``minmax`` | ``maxabs``.
        batch_size: Training batch size; default the whole training set (full batch).
        eval_batch_size: Validation/test/predict batch size; default all samples at once.
        shuffle: Reshuffle training batches every epoch (mini-batch training only).
        seed: Seed of the initial states, the noise and the split.
        ref_solver: scipy solver of the reference solve: ``LSODA`` | ``Radau`` | ``BDF``.
        ref_rtol: Relative tolerance of the reference solve.
        ref_atol: Absolute tolerance of the reference solve.
        cache_dir: Trajectory cache folder; default ``$STIFFML_CACHE_DIR`` or ``~/.cache/stiffml``.
    """

    representations: ClassVar[tuple[str, ...]] = ("derivative", "trajectory")
    normalizations: ClassVar[tuple[str, ...]] = ("none", "zscore", "minmax", "maxabs")  # states may be negative

    def __init__(
        self,
        params: dict[str, float] | None = None,
        n_trajectories: int = 100,
        y0_mean: list[float] | None = None,
        y0_std: float = 1.0,
        t_span: tuple[float, float] | None = None,
        n_points: int = 50,
        noise_std: float = 0.0,
        rollout_factor: int = 10,
        representation: Literal["derivative", "trajectory"] | None = None,
        train_fraction: float = 0.8,
        normalization: Normalization = "none",
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        ref_solver: Literal["LSODA", "Radau", "BDF"] = "LSODA",
        ref_rtol: float = 1e-12,
        ref_atol: float = 1e-12,
        cache_dir: str | None = None,
    ) -> None:
        if n_trajectories < 2:
            raise ValueError(f"n_trajectories must be at least 2 (train and held-out), got {n_trajectories}")
        if n_points < 2:
            raise ValueError(f"n_points must be at least 2, got {n_points}")
        if not y0_std > 0:
            raise ValueError(f"y0_std must be positive, got {y0_std}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if rollout_factor < 1:
            raise ValueError(f"rollout_factor must be a positive integer, got {rollout_factor}")
        super().__init__(
            params=params, representation=representation, train_fraction=train_fraction,
            normalization=normalization, batch_size=batch_size or 1, eval_batch_size=eval_batch_size,
            shuffle=shuffle, drop_last=False, seed=seed, ref_solver=ref_solver, ref_rtol=ref_rtol,
            ref_atol=ref_atol, cache_dir=cache_dir,
        )
        t0, t1 = self.system.t_span if t_span is None else (float(t_span[0]), float(t_span[1]))
        if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
            raise ValueError(f"t_span must be two finite times with t1 > t0, got ({t0}, {t1})")
        self.n_trajectories = n_trajectories
        self.n_points = n_points
        self.noise_std = noise_std
        self.rollout_factor = rollout_factor
        self.full_batch = batch_size is None
        self.eval_full_batch = eval_batch_size is None
        mean = np.zeros(self.system.n) if y0_mean is None else np.asarray(y0_mean, dtype=np.float64)
        if mean.shape != (self.system.n,):
            raise ValueError(
                f"y0_mean must have {self.system.n} components {list(self.system.state_names)}, got {list(mean)}"
            )
        self.y0_mean, self.y0_std = mean, float(y0_std)
        # grid of the long (rollout) solve; the training grid is its first n_points
        self.grid = np.linspace(t0, t0 + rollout_factor * (t1 - t0), rollout_factor * (n_points - 1) + 1)
        self._check_representation()

    # ------------------------------------------------------------------------------ data
    def initial_states(self) -> np.ndarray:
        """The seeded initial states, shape ``(n_trajectories, n)``."""
        rng = np.random.default_rng(self.hparams.seed)
        return self.y0_mean + self.y0_std * rng.standard_normal((self.n_trajectories, self.system.n))

    def make_ensemble(self) -> np.ndarray:
        """Clean states of every trajectory over the rollout horizon, ``(m, T_long, n)`` (cached)."""
        h = self.hparams
        return cached_ensemble(
            self.system, self.initial_states(), self.grid, h.cache_dir,
            method=h.ref_solver, rtol=h.ref_rtol, atol=h.ref_atol,
        )

    def prepare_data(self) -> None:
        self.make_ensemble()

    @property
    def target_times(self) -> np.ndarray:
        """Time of each sample, in sample order (trajectory-major)."""
        return np.tile(self.times, self.n_trajectories)

    def build_samples(self) -> Built:
        h = self.hparams
        full = self.make_ensemble()
        m, T, n = self.n_trajectories, self.n_points, self.system.n
        clean = full[:, :T]
        times = self.grid[:T]
        dclean = np.stack([self.system.rhs(t, clean[:, k].T).T for k, t in enumerate(times)], axis=1)
        noise = np.random.default_rng([h.seed, 1])
        observed = clean + self.noise_std * noise.standard_normal(clean.shape)
        dobserved = dclean + self.noise_std * noise.standard_normal(clean.shape)

        order = np.random.default_rng([h.seed, 2]).permutation(m)
        n_train = min(m - 1, max(1, int(round(h.train_fraction * m))))
        self.train_trajectories, self.val_trajectories = np.sort(order[:n_train]), np.sort(order[n_train:])
        rows = lambda trajs: (trajs[:, None] * T + np.arange(T)).ravel()  # noqa: E731
        train, val = rows(self.train_trajectories), rows(self.val_trajectories)

        flat, dflat = observed.reshape(-1, n), dobserved.reshape(-1, n)
        scaler = Scaler.fit(h.normalization, flat[train])
        z = scaler.transform(flat)
        if self.representation == "trajectory":  # whole trajectories; held-out ones validate
            samples: Any = TrajectorySamples(torch.as_tensor(times), torch.as_tensor(z.reshape(m, T, n)))
        else:
            samples = DerivativeSamples(torch.as_tensor(z), torch.as_tensor(scaler.derivative(flat, dflat)))
        return Built(
            samples=samples, train=train, val=val,
            scaler=scaler, times=times, reference=flat,
            # free-run scoring: clean held-out trajectories over the long horizon
            rollout_times=self.grid, rollout_reference=full[self.val_trajectories], horizon_index=T,
        )

    def batch_size(self, train: bool) -> int:
        if train:
            return len(self.train_idx) if self.full_batch else self.hparams.batch_size
        if self.eval_full_batch:  # every sample in one batch (predict serves all of them)
            return len(self.samples)
        return self.hparams.eval_batch_size

