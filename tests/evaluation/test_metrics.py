"""The range-normalised MAE: what a flat line scores, and its one-step form (the CLI logs of
``val_nmae`` and ``val_rollout_nmae`` are checked in ``test_temporal.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stiffml.evaluation.metrics import NormalizedMAE, nmae, nmae_breakdown, nmae_worst, rel_l2
from stiffml.systems import get_system


def _reference(name: str) -> np.ndarray:
    if name == "tyson1991":
        pytest.importorskip("roadrunner")
        from stiffml.sbml import SBMLSystem

        s = SBMLSystem(name)
    else:
        s = get_system(name)
    grid = s.default_grid()
    return s.solve(grid[:: max(1, len(grid) // 5000)], rtol=1e-8, atol=1e-12).y


@pytest.mark.parametrize("name", ["robertson", "bz", *[pytest.param(n, marks=pytest.mark.slow) for n in ("hires", "tyson1991")]])
def test_exact_scores_zero_and_a_flat_line_at_least_0_3(name: str) -> None:
    ref = _reference(name)
    assert nmae(ref, ref) == 0.0
    flat = np.repeat(ref[:1], len(ref), axis=0)
    assert nmae(flat, ref) >= 0.3, name
    if name == "tyson1991":  # six species: the relative L2 lets the flat line look good
        assert rel_l2(flat, ref) < 0.25


def test_every_state_counts_alike() -> None:
    t = np.linspace(0, 1, 101)
    ref = np.stack([1e3 * np.sin(6 * t), 1e-6 * np.cos(6 * t)], axis=1)
    off_small = ref + np.array([0.0, 1e-7])  # 10 % of the tiny state's half-range
    assert rel_l2(off_small, ref) < 1e-9 and nmae(off_small, ref) == pytest.approx(0.5 * 1e-7 / np.ptp(ref[:, 1]))
    assert nmae(ref + 1.0, ref.copy()) == pytest.approx(0.5 * (1 / np.ptp(ref[:, 0]) + 1 / np.ptp(ref[:, 1])))


def test_worst_state_shows_one_lost_species_that_the_mean_hides() -> None:
    t = np.linspace(0, 1, 201)
    ref = np.stack([np.sin((k + 1) * t) + k for k in range(20)], axis=1)  # 20 moving species
    pred = ref.copy()
    pred[:, 7] = ref[0, 7]  # one species a flat line at its start, the rest exact
    lost = np.abs(pred[:, 7] - ref[:, 7]).mean() / np.ptp(ref[:, 7])
    assert nmae_worst(pred, ref) == pytest.approx(lost) and nmae(pred, ref) == pytest.approx(lost / 20)
    assert nmae_worst(ref, ref) == 0.0
    const = np.concatenate([ref, np.ones((201, 1))], axis=1)  # a constant state is left out
    assert nmae_worst(np.concatenate([pred, 9 * np.ones((201, 1))], axis=1), const) == pytest.approx(lost)


def test_constant_states_are_left_out_and_trajectories_averaged() -> None:
    ref = np.zeros((3, 10, 2))
    ref[..., 0] = np.linspace(0, 1, 10)
    pred = ref.copy()
    pred[..., 1] += 5.0  # the constant state: no range, not scored
    pred[..., 0] += 0.1
    assert nmae(pred, ref) == pytest.approx(0.1)


def test_epoch_metric_equals_the_whole_series_score() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((57, 4)) * [1, 10, 1e-3, 5]
    pred = ref + rng.standard_normal(ref.shape) * 1e-2
    metric = NormalizedMAE()
    for chunk in np.array_split(np.arange(57), 5):
        metric.update(torch.as_tensor(pred[chunk]), torch.as_tensor(ref[chunk]))
    assert float(metric.compute()) == pytest.approx(nmae(pred, ref), rel=1e-12)


def test_breakdown_per_state_and_decade_adds_up_to_the_headline() -> None:
    rng = np.random.default_rng(0)
    t = np.logspace(-3, 2, 26)  # five points per decade over five decades, and t = 100
    ref = np.stack([np.log10(t), np.exp(-t), np.ones_like(t)], axis=1)  # the third state is constant
    pred = ref + 0.01 * rng.standard_normal(ref.shape)
    parts = nmae_breakdown(t, pred, ref)
    assert np.isnan(parts["per_state"][2])  # no range: left out, as in nmae
    assert np.nanmean(parts["per_state"]) == pytest.approx(nmae(pred, ref), rel=1e-12)
    assert list(parts["decades"]) == [-3, -2, -1, 0, 1, 2]
    span0 = ref[:, 0].max() - ref[:, 0].min()
    first = (t >= 1e-3) & (t < 1e-2)
    assert parts["per_decade"][0, 0] == pytest.approx(np.abs(pred - ref)[first, 0].mean() / span0, rel=1e-12)
    # a free run that is exact until t = 1 and then wrong is lost in the late decades only
    late = ref.copy()
    late[t >= 1, 0] += 1.0
    per_decade = nmae_breakdown(t, late, ref)["per_decade"][:, 0]
    assert np.all(per_decade[:3] == 0) and np.all(per_decade[3:] > 0)
    # trajectories (m, T, n) are averaged like nmae averages them
    both = nmae_breakdown(t, np.stack([pred, ref]), np.stack([ref, ref]))
    assert np.nanmean(both["per_state"]) == pytest.approx(nmae(np.stack([pred, ref]), np.stack([ref, ref])), rel=1e-12)


def test_log_time_axis_only_for_grids_whose_steps_grow() -> None:
    from stiffml.evaluation.free_run import _log_time

    assert _log_time(np.logspace(-5, 5, 51))  # ROBER's grid, as Kim et al. plot it
    assert not _log_time(np.arange(1, 20001) * 0.02)  # VdP: 0.02 … 400 s uniform, an oscillation
    assert not _log_time(np.logspace(0, 2, 30))  # log-spaced but two decades
    assert not _log_time(np.linspace(0.0, 1e5, 51))  # starts at 0
