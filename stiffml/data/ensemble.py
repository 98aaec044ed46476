"""Many trajectories from random initial states: the physics family's data (Yaguchi 2025).

Samples are ``(state, d state/dt)`` pairs at every time of every trajectory. The split is by
trajectory, so held-out samples come from initial states the model never saw. Every trajectory
is also solved over ``rollout_factor`` times the training horizon (one stacked solve, cached),
so free runs of a learned field can be scored over 1× and 10× the horizon from held-out states.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from stiffml.data.base import Built, SystemDataModule
from stiffml.data.cache import cached_ensemble
from stiffml.data.samples import DerivativeSamples, TrajectorySamples
from stiffml.data.scaling import Normalization, Scaler
from stiffml.evaluation.rollout import FreeRunData


class EnsembleDataModule(SystemDataModule):
    """Derivative samples from an ensemble of trajectories with Gaussian initial states.

    Args:
        params: System parameter overrides (e.g. ``{alpha: 1.0, beta: 2.0, gamma: 0.0}``).
        n_trajectories: Number of trajectories.
        y0_mean: Mean of the initial states (default zeros).
        y0_std: Standard deviation of the initial states (each component, independent).
        t_span: Time span ``[t0, t1]`` of each training trajectory; default the system's.
        n_points: Samples per trajectory, equally spaced over ``t_span`` (both ends included);
            ignored for ``spacing: log``.
        y0s: The initial states themselves, one list per trajectory (instead of the Gaussian
            ``y0_mean``/``y0_std``; ``n_trajectories`` is then their number).
        held_out: Indices (into ``y0s`` or the drawn states) of the trajectories held out for
            validation, instead of a random ``1 − train_fraction`` of them.
        initial_states: Draw the initial states from a seeded distribution instead:
            ``{y1: [0.5, 1.0], y2: [0.0, 1.0e-4]}`` (uniform) or ``{name: {low, high, scale:
            log}}`` per component; unnamed components keep the system's default, except one that
            the system's conservation law completes (ROBER: y3 = 1 − y1 − y2).
        n_held_out: With ``initial_states``: this many held-out members drawn with
            ``held_out_seed``, besides the ``n_trajectories`` training members drawn with ``seed``
            (every held-out member is scored by its own free run).
        held_out_seed: Seed of the held-out members' draw (must differ from ``seed``).
        rate_constants: Draw system parameters per member too: ``{k1: {factor: 2}, k2: [1.5e7,
            6.0e7], k3: {low: 5.0e3, high: 2.0e4, scale: log}}`` (``factor: f``: log-uniform
            from default/f to default·f); training members from ``seed``, held-out ones from
            ``held_out_seed``. Models read them scaled to [−1, 1] (log intervals in log), as
            ``n_conditions`` extra inputs (``ODENet``). Without ``initial_states`` or ``y0s``
            every member starts from the system's initial state.
        spacing: ``linear`` (``n_points`` over ``t_span``) or ``log`` (``t0``, then
            ``points_per_decade`` log-spaced times from ``dt`` to ``t1``, e.g. ROBER over ten
            decades; free runs then cover the one horizon: ``rollout_factor`` must be 1).
        dt: First sample time after ``t0`` of a log grid.
        points_per_decade: Density of a log grid.
        noise_std: Standard deviation of Gaussian noise added to the observed states and
            derivatives (train and held-out samples alike, as in the seed); 0 for exact data.
        noise: ``absolute`` (``noise_std`` in the states' units) or ``relative`` (each value
            times ``1 + noise_std·ε``: ``noise_std: 0.05`` is 5 % measurement noise).
        noisy_initial_states: Whether the initial states are observed with noise too; ``false``
            when they are a known experimental condition (a designed initial state).
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
        y0s: list[list[float]] | None = None,
        held_out: list[int] | None = None,
        initial_states: dict[str, Any] | None = None,
        n_held_out: int | None = None,
        held_out_seed: int = 1000,
        rate_constants: dict[str, Any] | None = None,
        spacing: Literal["linear", "log"] = "linear",
        dt: float | None = None,
        points_per_decade: int = 5,
        noise_std: float = 0.0,
        noise: Literal["absolute", "relative"] = "absolute",
        noisy_initial_states: bool = True,
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
        if y0s is not None:
            n_trajectories = len(y0s)
        if initial_states is not None and y0s is not None:
            raise ValueError("give the initial states as y0s or draw them from initial_states, not both")
        if n_held_out is not None:
            if initial_states is None and rate_constants is None:
                raise ValueError("n_held_out draws held-out members from data.initial_states or data.rate_constants; "
                                 "give a distribution")
            if n_held_out < 1:
                raise ValueError(f"n_held_out must be a positive number of held-out members (an empty held-out set "
                                 f"scores nothing), got {n_held_out}")
            if held_out_seed == seed:
                raise ValueError(f"held_out_seed must differ from seed ({seed}): the held-out members would be the "
                                 "training members")
            if held_out is not None:
                raise ValueError("give held_out indices or n_held_out drawn members, not both")
        # drawn held-out members come after the training ones (new names: the arguments stay as
        # given, since the hyperparameters that rebuild this datamodule are read from them)
        total = n_trajectories + (n_held_out or 0)
        held_idx = list(range(n_trajectories, total)) if n_held_out else held_out
        if total < 2:
            raise ValueError(f"n_trajectories must be at least 2 (train and held-out), got {n_trajectories}")
        if n_points < 2:
            raise ValueError(f"n_points must be at least 2, got {n_points}")
        if not y0_std > 0:
            raise ValueError(f"y0_std must be positive, got {y0_std}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if noise not in ("absolute", "relative"):
            raise ValueError(f"unknown noise {noise!r}; valid: ['absolute', 'relative']")
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
        self.n_trajectories = total
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
        self.y0s = None if y0s is None else np.asarray(y0s, dtype=np.float64)
        if self.y0s is not None and (self.y0s.ndim != 2 or self.y0s.shape[1] != self.system.n
                                     or not np.all(np.isfinite(self.y0s))):
            raise ValueError(f"y0s must be lists of {self.system.n} finite numbers "
                             f"{list(self.system.state_names)}, got {y0s}")
        if held_idx is not None:
            bad = [i for i in held_idx if not 0 <= i < total]
            if bad or not held_idx or len(set(held_idx)) != len(held_idx) or len(held_idx) >= total:
                raise ValueError(f"held_out must be distinct trajectory indices in [0, {total}) leaving "
                                 f"at least one to train on, got {held_idx}")
        self.held_out = None if held_idx is None else sorted(held_idx)
        self.distribution = None
        if initial_states is not None:
            from stiffml.data.distributions import StateDistribution

            system = self.system
            self.distribution = StateDistribution(initial_states, system.state_names, system.y0,
                                                  type(system).conservation)
        self.n_held_out = n_held_out
        self.parameter_distribution = None
        if rate_constants is not None:
            from stiffml.data.distributions import ParameterDistribution

            self.parameter_distribution = ParameterDistribution(rate_constants, self.system.params)
        if spacing == "log":
            if rollout_factor != 1:
                raise ValueError(f"a log grid covers one horizon: rollout_factor must be 1, got {rollout_factor}")
            self.grid = self.system.default_grid((t0, t1), dt, "log", points_per_decade)
            self.n_points = len(self.grid)
        elif spacing == "linear":
            # grid of the long (rollout) solve; the training grid is its first n_points
            self.grid = np.linspace(t0, t0 + rollout_factor * (t1 - t0), rollout_factor * (n_points - 1) + 1)
        else:
            raise ValueError(f"unknown spacing {spacing!r}; valid: ['linear', 'log']")
        self._check_representation()

    # ------------------------------------------------------------------------------ data
    def initial_states(self) -> np.ndarray:
        """The initial states (``y0s``, draws from ``initial_states``, or seeded Gaussian draws),
        shape ``(n_trajectories, n)``; drawn held-out members come last."""
        if self.y0s is not None:
            return self.y0s
        if self.distribution is None and self.parameter_distribution is not None:
            return np.tile(self.system.y0, (self.n_trajectories, 1))
        if self.distribution is not None:
            held = self.n_held_out or 0
            train = self.distribution.draw(self.n_trajectories - held, self.hparams.seed)
            if not held:
                return train
            return np.concatenate([train, self.distribution.draw(held, self.hparams.held_out_seed)])
        rng = np.random.default_rng(self.hparams.seed)
        return self.y0_mean + self.y0_std * rng.standard_normal((self.n_trajectories, self.system.n))

    def member_parameters(self) -> np.ndarray | None:
        """Each member's drawn rate constants ``(n_trajectories, p)`` (columns
        ``parameter_distribution.names``; held-out members last), or ``None``."""
        dist = self.parameter_distribution
        if dist is None:
            return None
        if getattr(self, "_drawn_parameters", None) is None:  # drawn once: the seeds are fixed at init
            held = self.n_held_out or 0
            train = dist.draw(self.n_trajectories - held, self.hparams.seed)
            self._drawn_parameters = np.concatenate([train, dist.draw(held, self.hparams.held_out_seed)]) \
                if held else train
        return self._drawn_parameters

    def _member_params(self) -> list[dict[str, float]] | None:
        values = self.member_parameters()
        if values is None:
            return None
        names = self.parameter_distribution.names  # type: ignore[union-attr]
        return [dict(zip(names, map(float, row))) for row in values]

    @property
    def n_conditions(self) -> int | None:
        """How many scaled rate constants a model reads besides the state (``None``: none drawn)."""
        return None if self.parameter_distribution is None else len(self.parameter_distribution.names)

    def conditions(self) -> np.ndarray | None:
        """Every member's rate constants as a model reads them, scaled to [−1, 1], or ``None``."""
        values = self.member_parameters()
        return None if values is None else self.parameter_distribution.scaled(values)  # type: ignore[union-attr]

    def make_ensemble(self) -> np.ndarray:
        """Clean states of every trajectory over the rollout horizon, ``(m, T_long, n)`` (cached)."""
        h = self.hparams
        return cached_ensemble(
            self.system, self.initial_states(), self.grid, h.cache_dir,
            method=h.ref_solver, rtol=h.ref_rtol, atol=h.ref_atol, params=self._member_params(),
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
        members = self._member_params()
        if members is None:
            dclean = np.stack([self.system.rhs(t, clean[:, k].T).T for k, t in enumerate(times)], axis=1)
        else:  # each member's derivatives with its own rate constants
            systems = [self.system.with_params(**p) for p in members]
            dclean = np.stack([np.stack([sys.rhs(t, clean[i, k]) for k, t in enumerate(times)])
                               for i, sys in enumerate(systems)])
        rng = np.random.default_rng([h.seed, 1])
        eps, deps = rng.standard_normal(clean.shape), rng.standard_normal(clean.shape)
        if not h.get("noisy_initial_states", True):
            eps[:, 0] = deps[:, 0] = 0.0
        if h.get("noise", "absolute") == "relative":
            observed, dobserved = clean * (1 + self.noise_std * eps), dclean * (1 + self.noise_std * deps)
        else:
            observed, dobserved = clean + self.noise_std * eps, dclean + self.noise_std * deps

        if self.held_out is not None:
            self.val_trajectories = np.asarray(self.held_out)
            self.train_trajectories = np.setdiff1d(np.arange(m), self.val_trajectories)
        else:
            order = np.random.default_rng([h.seed, 2]).permutation(m)
            n_train = min(m - 1, max(1, int(round(h.train_fraction * m))))
            self.train_trajectories, self.val_trajectories = np.sort(order[:n_train]), np.sort(order[n_train:])
        rows = lambda trajs: (trajs[:, None] * T + np.arange(T)).ravel()  # noqa: E731
        train, val = rows(self.train_trajectories), rows(self.val_trajectories)

        flat, dflat = observed.reshape(-1, n), dobserved.reshape(-1, n)
        scaler = Scaler.fit(h.normalization, flat[train])
        z = scaler.transform(flat)
        cond = self.conditions()
        if self.representation == "trajectory":  # whole trajectories; held-out ones validate
            samples: Any = TrajectorySamples(torch.as_tensor(times), torch.as_tensor(z.reshape(m, T, n)),
                                             None if cond is None else torch.as_tensor(cond))
        else:
            samples = DerivativeSamples(torch.as_tensor(z), torch.as_tensor(scaler.derivative(flat, dflat)),
                                        None if cond is None else torch.as_tensor(np.repeat(cond, T, axis=0)))
        return Built(
            samples=samples, train=train, val=val,
            scaler=scaler, times=times, reference=flat,
            # free-run scoring: clean held-out trajectories over the long horizon
            rollout_times=self.grid, rollout_reference=full[self.val_trajectories], horizon_index=T,
        )

    def free_run_data(self) -> FreeRunData:
        data = super().free_run_data()
        cond = self.conditions()
        if cond is None:
            return data
        return dataclasses.replace(data, conditions=cond[self.val_trajectories])

    def batch_size(self, train: bool) -> int:
        if train:
            return len(self.train_idx) if self.full_batch else self.hparams.batch_size
        if self.eval_full_batch:  # every sample in one batch (predict serves all of them)
            return len(self.samples)
        return self.hparams.eval_batch_size

