"""Ensembles drawn from seeded distributions (issue #28): draws, conservation laws, held-out sets,
their scores, and the one-line errors of bad distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stiffml.data.distributions import StateDistribution
from stiffml.data.modules import RobertsonEnsembleDataModule
from stiffml.evaluation.free_run import rollout_errors
from stiffml.evaluation.metrics import nmae, state_range

from ..conftest import assert_one_line_error

ROBER = {"y1": [0.5, 1.0], "y2": [0.0, 1.0e-4]}


def test_draws_keep_their_bounds_and_the_conservation_law() -> None:
    dist = StateDistribution({**ROBER, "y2": {"low": 1e-7, "high": 1e-4, "scale": "log"}}, ("y1", "y2", "y3"),
                             (1.0, 0.0, 0.0), ((1.0, 1.0, 1.0), 1.0))
    y = dist.draw(500, seed=3)
    assert np.all((y[:, 0] >= 0.5) & (y[:, 0] <= 1.0)) and np.all((y[:, 1] >= 1e-7) & (y[:, 1] <= 1e-4))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-15)
    assert np.all(y[:, 2] >= 0)  # draws that would leave y3 negative (y1 near 1) are drawn again
    # log-uniform: about as many draws in each decade of y2
    decades = np.histogram(np.log10(y[:, 1]), bins=[-7, -6, -5, -4])[0]
    assert decades.min() > 120
    np.testing.assert_array_equal(dist.draw(5, seed=3), y[:5])
    assert not np.allclose(dist.draw(5, seed=4), y[:5])


def test_held_out_members_come_from_their_own_seed() -> None:
    dm = RobertsonEnsembleDataModule(initial_states=ROBER, n_trajectories=6, n_held_out=4, seed=0,
                                     held_out_seed=7, representation="trajectory")
    y0 = dm.initial_states()
    assert y0.shape == (10, 3) and dm.held_out == [6, 7, 8, 9]
    other = RobertsonEnsembleDataModule(initial_states=ROBER, n_trajectories=3, n_held_out=4, seed=5,
                                        held_out_seed=7, representation="trajectory")
    # the held-out set does not depend on the training set's size or seed
    np.testing.assert_array_equal(other.initial_states()[3:], y0[6:])
    assert not np.allclose(other.initial_states()[:3], y0[:3])


def test_an_ensemble_reports_the_median_and_the_worst_member() -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, (5, 30, 3))
    pred = ref + rng.normal(0, 1, (5, 1, 1)) * 0.01 * np.arange(1, 6)[:, None, None]
    scores = rollout_errors(None, {"t": np.arange(30.0), "pred": pred, "reference": ref})
    span = state_range(ref)
    members = [nmae(p, r, span) for p, r in zip(pred, ref)]
    assert scores["val_rollout_nmae"] == pytest.approx(np.mean(members), rel=1e-12)
    assert scores["val_rollout_nmae_median"] == pytest.approx(np.median(members), rel=1e-12)
    assert scores["val_rollout_nmae_max"] == pytest.approx(max(members), rel=1e-12)


@pytest.mark.parametrize("args, message", [
    (["--data.initial_states", "{y1: [0.5, 1.5], y2: [0.0, 1.0e-4]}"],
     "data.initial_states.y1 = [0.5, 1.5] violates the conservation law y1 + y2 + y3 = 1"),
    (["--data.initial_states", "{y1: [0.5, 1.0], y4: [0.0, 1.0]}"],
     "data.initial_states names 'y4', which the system does not have; valid: ['y1', 'y2', 'y3']"),
    (["--data.initial_states", "{y1: [0.5, 1.0], y2: [0.0, 1.0e-4]}", "--data.n_held_out", "0"],
     "n_held_out must be a positive number of held-out members (an empty held-out set scores nothing), got 0"),
    (["--data.initial_states", "{y1: [0.5, 1.0]}"],
     "must leave exactly one component of the conservation law y1 + y2 + y3 = 1 undrawn"),
])
def test_bad_distributions_are_one_line_errors(args: list[str], message: str, cli, capsys, tmp_path: Path) -> None:
    code = cli("fit", "--model", "ODENet", "--model.mode", "trajectory", "--data", "RobertsonEnsembleDataModule",
               *args, "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, message)
    assert code == 2 and not (tmp_path / "lightning_logs").exists()
