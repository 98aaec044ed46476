"""Ensembles whose members have their own rate constants, and the ODE-Net conditioned on them
(issue #28 item 2): draws, per-member reference solves, the conditioned field, a tiny CLI run, and
the one-line errors of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stiffml.data.distributions import ParameterDistribution
from stiffml.data.modules import RobertsonEnsembleDataModule
from stiffml.evaluation.rollout import RolloutSettings, integrate_field
from stiffml.models import ODENet
from stiffml.systems import Robertson

from ..conftest import REPO, assert_one_line_error

FACTOR2 = {"k1": {"factor": 2}, "k2": {"factor": 2}, "k3": {"factor": 2}}


def test_rate_constants_are_drawn_log_uniform_within_their_factor_and_scaled_to_unit_range() -> None:
    dist = ParameterDistribution({**FACTOR2, "k3": [5.0e3, 2.0e4]}, Robertson().params)
    k = dist.draw(2000, seed=0)
    assert dist.names == ["k1", "k2", "k3"] and k.shape == (2000, 3)
    assert np.all((k[:, 0] >= 0.02) & (k[:, 0] <= 0.08)) and np.all((k[:, 1] >= 1.5e7) & (k[:, 1] <= 6e7))
    # log-uniform for a factor (as many draws below the default as above), uniform for [low, high]
    assert abs(np.mean(k[:, 0] < 0.04) - 0.5) < 0.04 and abs(np.mean(k[:, 2] < 1.25e4) - 0.5) < 0.04
    z = dist.scaled(k)
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99
    np.testing.assert_allclose(dist.scaled(np.array([[0.04, 3e7, 1.25e4]])), 0.0, atol=1e-12)
    # the same seed, the same members; more members keep the first ones
    np.testing.assert_array_equal(dist.draw(5, seed=0), k[:5])
    assert not np.allclose(dist.draw(5, seed=1), k[:5])


def test_every_member_is_solved_with_its_own_rate_constants() -> None:
    system = Robertson()
    t = np.concatenate([[0.0], np.logspace(-5, 3, 17)])
    params = [{"k1": 0.08, "k3": 5e3}, {"k2": 1.5e7}]
    both = system.solve_ensemble(np.tile(system.y0, (2, 1)), t, rtol=1e-10, atol=1e-14, method="Radau", params=params)
    for member, p in zip(both, params):
        alone = system.with_params(**p).solve(t, rtol=1e-10, atol=1e-14, method="Radau").y
        np.testing.assert_allclose(member, alone, rtol=1e-6, atol=1e-12)
    assert not np.allclose(both[0], both[1], rtol=1e-3)  # the parameters did change the dynamics


@pytest.mark.slow
def test_the_datamodule_serves_each_members_scaled_rate_constants(tmp_path: Path) -> None:
    dm = RobertsonEnsembleDataModule(rate_constants=FACTOR2, n_trajectories=3, n_held_out=2, held_out_seed=9,
                                     points_per_decade=1, representation="trajectory", cache_dir=str(tmp_path))
    dm.setup("fit")
    assert dm.n_conditions == 3 and dm.held_out == [3, 4]
    np.testing.assert_array_equal(dm.initial_states(), np.tile(Robertson().y0, (5, 1)))
    k = dm.member_parameters()
    np.testing.assert_array_equal(k[3:], ParameterDistribution(FACTOR2, Robertson().params).draw(2, seed=9))
    (t, z0, rows, cols, cond), y = dm.samples.batch(torch.arange(len(dm.samples)))
    np.testing.assert_allclose(cond.numpy(), dm.parameter_distribution.scaled(k))
    data = dm.free_run_data()
    np.testing.assert_array_equal(data.conditions, cond.numpy()[3:])
    # each member's reference follows its own constants: y3 at 1e5 s differs between members
    assert np.ptp(data.reference[:, -1, 2]) > 1e-3


def test_a_conditioned_field_reads_each_members_constants_in_every_solver() -> None:
    torch.manual_seed(0)
    model = ODENet(n_inputs=3, n_outputs=3, n_conditions=2, hidden=8, depth=1, mode="trajectory").double()
    z0 = torch.tensor([[1.0, 0.0, 0.0]] * 2, dtype=torch.float64)
    cond = torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=torch.float64)
    times = np.linspace(0.0, 1.0, 6)
    with torch.no_grad():
        direct = [model.field(torch.tensor(0.0), z0[:1], c[None]) for c in cond]
    assert not torch.allclose(direct[0], direct[1])  # the conditions reach the network
    runs = {name: integrate_field(model.field, z0, times, RolloutSettings(solver=name, rtol=1e-9, atol=1e-11), cond)
            for name in ("Radau", "rosenbrock23", "dopri5")}
    for name in ("rosenbrock23", "dopri5"):  # scipy solves one member at a time, torch all at once
        np.testing.assert_allclose(runs[name], runs["Radau"], rtol=1e-5, atol=1e-7)
    assert not np.allclose(runs["Radau"][:, 0], runs["Radau"][:, 1])


@pytest.mark.slow
def test_a_tiny_run_scores_held_out_rate_constants_and_reloads(cli, tmp_path: Path) -> None:
    config = REPO / "configs" / "tiny" / "robertson_rates_tiny.yaml"
    assert cli("fit", "--config", config, "--trainer.default_root_dir", tmp_path,
               "--data.cache_dir", tmp_path / "cache") == 0
    ckpt = next((tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("last.ckpt"))
    hparams = torch.load(ckpt, weights_only=False)["hyper_parameters"]
    assert hparams["n_conditions"] == 3
    assert cli("validate", "--config", config, "--ckpt_path", ckpt, "--trainer.default_root_dir", tmp_path,
               "--data.cache_dir", tmp_path / "cache") == 0


@pytest.mark.parametrize("args, message", [
    (["--data.rate_constants", "{k4: {factor: 2}}"],
     "data.rate_constants names 'k4', which the system does not have; valid: ['k1', 'k2', 'k3']"),
    (["--data.rate_constants", "{k1: {factor: 0.5}}"], "data.rate_constants.k1.factor must be a number >= 1, got 0.5"),
    (["--data.rate_constants", "{}"], "data.rate_constants is empty: name at least one of ['k1', 'k2', 'k3']"),
    (["--data.rate_constants", "{k1: {factor: 2}}", "--model", "NODE"],
     "draws rate constants per member (data.rate_constants) but NODE does not read them"),
])
def test_bad_rate_constants_are_one_line_errors(args: list[str], message: str, cli, capsys, tmp_path: Path) -> None:
    model = [] if "--model" in args else ["--model", "ODENet", "--model.mode", "trajectory"]
    code = cli("fit", *model, "--data", "RobertsonEnsembleDataModule", "--data.n_held_out", "2", "--data.n_trajectories", "2",
               "--data.points_per_decade", "1", *args, "--trainer.default_root_dir", tmp_path,
               "--data.cache_dir", tmp_path / "cache")
    assert_one_line_error(code, capsys, message)
    assert code == 2 and not (tmp_path / "lightning_logs").exists()
