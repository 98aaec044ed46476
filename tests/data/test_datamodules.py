"""Datamodules: shapes, splits, normalisation, representations and DDP sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stiffml import registry
from stiffml.data import BatchLoader, BZDataModule, Scaler, VdPDataModule, VdPLienardDataModule

DATAMODULES = sorted(registry.load("datamodules"))
POINTWISE = [n for n in DATAMODULES if "pointwise" in registry.get_datamodule(n).representations]


def _small(cls, **kw):
    """A short grid of each system (about 400 samples)."""
    kw = {**cls.example_args, **kw}
    system = cls.system_class
    if system is not None and system.spacing == "log":
        kw.setdefault("t_span", (0.0, 10.0))
    elif system is not None:
        t0, t1 = system.t_span
        kw.setdefault("dt", (t1 - t0) / 400)
    return cls(**kw)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("VdPDataModule", "OregoDataModule", "PolluDataModule",
                                                                                "VdPLienardDataModule")
                                  else n for n in POINTWISE])
def test_pointwise_shapes_and_random_split(name: str) -> None:
    dm = _small(registry.get_datamodule(name), representation="pointwise", batch_size=32)
    dm.setup("fit")
    n = len(dm.samples)
    assert len(dm.train_idx) + len(dm.val_idx) == n
    assert len(dm.train_idx) == round(0.8 * n)
    assert not set(dm.train_idx.tolist()) & set(dm.val_idx.tolist())
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1) and y.shape == (32, dm.n_outputs)
    assert x.dtype == torch.float64  # float64 by default on the CPU
    batches = list(dm.val_dataloader())
    assert sum(len(b[1]) for b in batches) == len(dm.val_idx)


# slow: the paper's full 300,001-point VdP grid
@pytest.mark.slow
def test_vdp_outputs_x_only_and_paper_batches_per_epoch() -> None:
    dm = VdPDataModule(representation="pointwise", batch_size=300)
    assert dm.outputs == ["x"] and dm.n_outputs == 1
    assert len(dm.grid) == 300_001
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 800  # the paper's 800 batches per epoch


def test_extrapolation_split_is_by_time() -> None:
    dm = BZDataModule(representation="pointwise", dt=0.01, split="extrapolate", train_fraction=0.7)
    dm.setup("fit")
    t = dm.times
    assert t[dm.train_idx.numpy()].max() <= 7.0 < t[dm.val_idx.numpy()].min()


@pytest.mark.parametrize("kind", ["none", "zscore", "minmax", "log-zscore"])
def test_normalisation_round_trip(kind: str) -> None:
    y = np.random.default_rng(0).uniform(0.1, 1e4, (100, 3))
    s = Scaler.fit(kind, y)
    np.testing.assert_allclose(s.inverse(s.transform(y)), y, rtol=1e-12)
    t = torch.as_tensor(y)
    torch.testing.assert_close(s.inverse(s.transform(t)), t)
    if kind == "zscore":
        np.testing.assert_allclose(s.transform(y).mean(0), 0, atol=1e-12)


def test_log_normalisation_rejects_non_positive_states() -> None:
    dm = BZDataModule(representation="pointwise", dt=0.01, normalization="log-zscore", params={"h": 0.5})
    dm.setup("fit")  # B-Z concentrations are positive
    with pytest.raises(ValueError, match="strictly positive"):
        Scaler.fit("log-zscore", np.array([[1.0], [-1.0]]))


def test_window_pair_and_derivative_representations() -> None:
    dm = BZDataModule(representation="window", window=5, dt=0.01)
    dm.setup("fit")
    series = dm.samples.tensors["y"]
    idx = torch.tensor([0, 7])
    x, y = dm.samples.batch(idx)
    assert x.shape == (2, 5, 3) and torch.equal(x[1], series[7:12]) and torch.equal(y[1], series[12])
    assert len(dm.samples) == len(series) - 5
    dm = BZDataModule(representation="pair", dt=0.01, normalization="none")
    dm.setup("fit")
    (y0, t0, t1), y1 = dm.samples.batch(torch.tensor([3]))
    assert float(t1 - t0) == pytest.approx(0.01) and torch.equal(y1, dm.samples.tensors["y"][4:5])
    dm = BZDataModule(representation="derivative", dt=0.01, normalization="none")
    dm.setup("fit")
    y, dy = dm.samples.batch(torch.tensor([0]))
    np.testing.assert_allclose(dy[0].numpy(), dm.system.rhs(0.0, dm.system.y0))


def test_state_samples_add_exact_derivatives_off_the_trajectory_to_training_only() -> None:
    base = VdPLienardDataModule(representation="derivative", t_span=(0.0, 140.0), dt=0.1)
    dm = VdPLienardDataModule(representation="derivative", t_span=(0.0, 140.0), dt=0.1,
                              state_samples=500, state_margin=0.2)
    base.setup("fit")
    dm.setup("fit")
    n = len(base.samples)
    assert len(dm.samples) == n + 500
    assert torch.equal(dm.val_idx, base.val_idx)  # validation stays on the trajectory
    assert torch.equal(dm.train_idx[:-500], base.train_idx) and torch.equal(dm.train_idx[-500:], torch.arange(n, n + 500))
    z, dz = dm.samples.batch(torch.arange(n, n + 500))
    y = dm.target_scaler.inverse(z).numpy()
    np.testing.assert_allclose(dm.target_scaler.inverse_derivative(z, dz).numpy(), dm.system.rhs(0.0, y.T).T, rtol=1e-12)
    ref = dm.reference[dm.train_idx[:-500].numpy()]
    lo, hi = ref.min(0), ref.max(0)
    assert np.all(y >= lo - 0.2 * (hi - lo)) and np.all(y <= hi + 0.2 * (hi - lo))
    outside = (y < lo) | (y > hi)  # the margin is used, and the box is filled, not the cycle
    assert outside.any() and np.abs(y[:, 1] - (y[:, 0] - y[:, 0] ** 3 / 3)).max() > 0.5
    assert sum(len(b[1]) for b in dm.predict_dataloader()) == n == len(dm.target_times)


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="window=5000 is not shorter than the series"):
        BZDataModule(representation="window", window=5000, dt=0.01)
    with pytest.raises(ValueError, match=r"outputs \['w'\] must be distinct states"):
        BZDataModule(outputs=["w"])
    with pytest.raises(ValueError, match="needs every state"):
        VdPDataModule(representation="pair")
    with pytest.raises(ValueError, match="train_fraction"):
        BZDataModule(train_fraction=1.5)
    with pytest.raises(ValueError, match="unknown representation"):
        BZDataModule(representation="graph")
    with pytest.raises(ValueError, match="no representation set"):
        BZDataModule(dt=0.01).setup("fit")
    with pytest.raises(ValueError, match="state_samples=10 applies to derivative samples, not 'pair'"):
        VdPLienardDataModule(representation="pair", state_samples=10)
    with pytest.raises(ValueError, match="state_samples must be >= 0 and state_margin a finite number >= 0, got -1"):
        VdPLienardDataModule(state_samples=-1)
    with pytest.raises(ValueError, match="normalization 'log-zscore' cannot take them"):
        BZDataModule(state_samples=10, normalization="log-zscore")


def test_ddp_sharding_is_disjoint_and_even() -> None:
    dm = BZDataModule(representation="pointwise", dt=0.01)
    dm.setup("fit")
    shards = []
    for rank in range(3):
        loader = BatchLoader(dm.samples, dm.train_idx, 7, shuffle=True, equal_shards=True, seed=3, rank=rank, world_size=3)
        shards.append(torch.cat([b[0].squeeze(-1) for b in loader]))
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    seen = torch.cat(shards)
    assert len(torch.unique(seen)) == len(seen)  # no sample twice
    assert len(seen) >= len(dm.train_idx) - 3 * 7 - 3
    evals = [torch.cat([b[1] for b in BatchLoader(dm.samples, dm.val_idx, 10, rank=r, world_size=3)]) for r in range(3)]
    assert sum(len(e) for e in evals) == len(dm.val_idx)  # evaluation keeps every sample


def test_shuffle_changes_per_epoch_and_is_seeded() -> None:
    dm = BZDataModule(representation="pointwise", dt=0.01)
    dm.setup("fit")
    loader = BatchLoader(dm.samples, dm.train_idx, 50, shuffle=True, seed=1)
    first, second = next(iter(loader))[0], next(iter(loader))[0]
    assert not torch.equal(first, second)
    again = BatchLoader(dm.samples, dm.train_idx, 50, shuffle=True, seed=1)
    assert torch.equal(next(iter(again))[0], first)


def test_a_batch_larger_than_the_data_is_one_full_batch() -> None:
    dm = BZDataModule(representation="pointwise", dt=0.01)
    dm.setup("fit")
    n = len(dm.train_idx)
    loader = BatchLoader(dm.samples, dm.train_idx, 10 * n, shuffle=True, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 1 and len(batches[0][0]) == n


def test_loader_resumes_part_way_only_for_training() -> None:
    import torch

    from stiffml.data.loader import BatchLoader
    from stiffml.data.samples import PointwiseSamples

    samples = PointwiseSamples(t_in=torch.arange(10.0), y=torch.arange(10.0).unsqueeze(-1))
    done = {"n": 3}
    train = BatchLoader(samples, torch.arange(10), batch_size=2, shuffle=True, epoch_fn=lambda: 4,
                        progress_fn=lambda: done["n"])
    full = [b[1].flatten().tolist() for b in train]
    state = train.state_dict()
    assert state == {"epoch": 4, "done": 3}
    train.load_state_dict(state)
    assert [b[1].flatten().tolist() for b in train] == full[3:]  # the rest of epoch 4, same order
    assert [b[1].flatten().tolist() for b in train] == full  # then whole epochs again
    evaluation = BatchLoader(samples, torch.arange(10), batch_size=2)
    evaluation.load_state_dict({"epoch": 0, "done": 3})
    assert len(list(evaluation)) == 5


def test_single_trajectory_and_ensemble_datamodules_are_siblings(tmp_path) -> None:
    """One small abstract base with one hook (build_samples); the two kinds of data beside it."""
    from stiffml.data import Built, DuffingDataModule, EnsembleDataModule, StiffDataModule, SystemDataModule
    from stiffml.data.samples import DerivativeSamples
    from stiffml.systems import Duffing

    assert issubclass(StiffDataModule, SystemDataModule) and issubclass(EnsembleDataModule, SystemDataModule)
    assert not issubclass(EnsembleDataModule, StiffDataModule)
    with pytest.raises(TypeError, match="abstract"):
        SystemDataModule()

    class Corners(SystemDataModule):
        """A third kind of data in a few lines: the derivative at four fixed states."""

        system_class = Duffing
        representations = ("derivative",)

        def build_samples(self) -> Built:
            y = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
            dy = self.system.rhs(0.0, y.T).T
            scaler = Scaler.fit(self.hparams.normalization, y)
            samples = DerivativeSamples(torch.as_tensor(scaler.transform(y)), torch.as_tensor(scaler.derivative(y, dy)))
            return Built(samples, np.arange(3), np.arange(3, 4), scaler, np.zeros(4), y,
                         np.zeros(1), y[None, :1], 1)

    dm = Corners(representation="derivative", normalization="none", batch_size=2)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (2, 2) and dm.spec().reference.shape == (4, 2)
    ens = DuffingDataModule(n_trajectories=4, n_points=5, rollout_factor=2, representation="derivative")
    ens.setup("fit")
    assert ens.spec().reference.shape == (20, 2) and ens.rollout_reference.shape[1] == 9


def test_free_run_data_carries_what_a_free_run_needs_in_one_object() -> None:
    from stiffml.data import DuffingDataModule

    dm = BZDataModule(representation="window", dt=0.01, window=5, split="extrapolate", train_fraction=0.7)
    dm.setup("fit")
    data = dm.free_run_data()
    assert data.cut == pytest.approx(7.0) and not data.ensemble and data.window == 5
    assert data.reference.shape == (1, len(data.times), 3) and data.series.shape == dm.reference.shape
    np.testing.assert_array_equal(data.initial_states(), data.reference[:, 0])
    assert data.energy is None and not data.conservative
    random = BZDataModule(representation="pointwise", dt=0.01)
    random.setup("fit")
    assert random.free_run_data().cut is None and random.free_run_data().window is None
    ens = DuffingDataModule(n_trajectories=4, n_points=5, rollout_factor=2, representation="derivative")
    ens.setup("fit")
    data = ens.free_run_data()
    assert data.ensemble and data.reference.shape[0] == len(ens.val_trajectories) and data.horizon_index == 5
    assert callable(data.energy) and data.conservative == ens.conservative


@pytest.mark.slow  # five tight ROBER solves over ten decades
def test_rober_ensemble_holds_out_the_chosen_initial_state() -> None:
    from stiffml.data import RobertsonEnsembleDataModule
    from stiffml.systems import get_system

    dm = RobertsonEnsembleDataModule(representation="trajectory")
    dm.setup("fit")
    assert list(dm.train_trajectories) == [0, 1, 2, 4] and list(dm.val_trajectories) == [3]
    assert dm.grid[0] == 0.0 and dm.grid[1] == pytest.approx(1e-5) and dm.grid[-1] == pytest.approx(1e5)
    assert len(dm.grid) == 52  # t = 0 and 5 points per decade over ten decades
    np.testing.assert_allclose(dm.rollout_reference[0, 0], [0.7, 0.0, 0.3])  # the free run starts at a = 0.3
    # the held-out reference is the system's own solve from that state
    ref = get_system("robertson", y0=[0.7, 0.0, 0.3]).solve(dm.grid, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(dm.rollout_reference[0], ref.y, rtol=1e-6, atol=1e-12)
    y = dm.samples.tensors["y"]
    assert y.shape == (5, 52, 3)
    # the scaler is fitted on the training trajectories only (maxabs: each species' largest value)
    train_max = np.abs(dm.reference.reshape(5, 52, 3)[[0, 1, 2, 4]]).max(axis=(0, 1))
    np.testing.assert_allclose(y[0].numpy() * train_max, dm.reference.reshape(5, 52, 3)[0], rtol=1e-12)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"held_out": [7]}, "held_out must be distinct trajectory indices in [0, 5)"),
    ({"held_out": [0, 1, 2, 3, 4]}, "leaving at least one to train on"),
    ({"y0s": [[1.0, 0.0], [0.5, 0.5]]}, "y0s must be lists of 3 finite numbers"),
    ({"rollout_factor": 2}, "a log grid covers one horizon: rollout_factor must be 1, got 2"),
])
def test_rober_ensemble_bad_input(kwargs, message) -> None:
    import re

    from stiffml.data import RobertsonEnsembleDataModule

    with pytest.raises(ValueError, match=re.escape(message)):
        RobertsonEnsembleDataModule(representation="trajectory", **kwargs)
