"""The physics family: analytic fields, PSD dissipation, guards, ensemble data, CLI and symbolic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ..conftest import assert_one_line_error
from stiffml.data import DuffingDataModule
from stiffml.models.physics.mechanics import SingularLagrangianError, hamiltonian_field, lagrangian_acceleration
from stiffml.models.physics import HNN, LNN, DissipativeHNN
from stiffml.systems import Duffing

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("duffing_*.yaml"))
TINY = ["--data.n_trajectories", "10", "--data.n_points", "20", "--data.rollout_factor", "2"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, u):
        return self.fn(u)


def duffing_h(a: float, b: float):
    return Lambda(lambda u: (a * u[:, 0] ** 2 / 2 + b * u[:, 0] ** 4 / 4 + u[:, 1] ** 2 / 2).unsqueeze(-1))


def test_hnn_field_of_a_known_hamiltonian_is_the_analytic_field() -> None:
    sys = Duffing(alpha=1.3, beta=0.7, gamma=0.0)
    model = HNN().double()
    model.hamiltonian = duffing_h(1.3, 0.7)
    u = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.as_tensor(sys.rhs(0.0, u.numpy().T).T)
    torch.testing.assert_close(model(u), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hamiltonian_field(model.energy, u), expected, rtol=1e-12, atol=1e-12)


def test_dissipative_hnn_with_the_true_h_and_r_gives_the_damped_field() -> None:
    sys = Duffing(alpha=1.0, beta=2.0, gamma=0.1)
    model = DissipativeHNN(dissipation="block").double()
    model.hamiltonian = duffing_h(1.0, 2.0)
    with torch.no_grad():
        model.factor.copy_(torch.tensor([[[0.0]], [[0.1**0.5]]], dtype=torch.float64))
    u = torch.randn(32, 2, dtype=torch.float64)
    torch.testing.assert_close(model(u), torch.as_tensor(sys.rhs(0.0, u.numpy().T).T), rtol=1e-12, atol=1e-12)
    assert float(model.learned_damping(model.dissipation_matrix())["learned_damping"]) == pytest.approx(0.1)


def test_lnn_of_a_known_lagrangian_gives_the_analytic_acceleration() -> None:
    sys = Duffing(alpha=0.5, beta=0.25, gamma=0.0)
    model = LNN().double()
    model.lagrangian = Lambda(lambda u: sys.lagrangian(u[:, 0], u[:, 1]))
    u = torch.randn(64, 2, dtype=torch.float64)
    torch.testing.assert_close(model(u), torch.as_tensor(sys.rhs(0.0, u.numpy().T).T), rtol=1e-12, atol=1e-12)


def test_lagrangian_acceleration_with_a_coupled_mass_matrix_and_rayleigh_damping() -> None:
    # L = ½ q̇ᵀ M q̇ − ½ qᵀ K q; with D = ½ q̇ᵀ C q̇: q̈ = M⁻¹(−K q − C q̇)
    m = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    k = torch.tensor([[3.0, -1.0], [-1.0, 2.0]], dtype=torch.float64)
    c = torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=torch.float64)

    def lagr(u):
        q, v = u[:, :2], u[:, 2:]
        return 0.5 * ((v @ m) * v).sum(-1) - 0.5 * ((q @ k) * q).sum(-1)

    u = torch.randn(16, 4, dtype=torch.float64)
    expected = torch.linalg.solve(m, (-(u[:, :2] @ k) - u[:, 2:] @ c).T).T
    torch.testing.assert_close(lagrangian_acceleration(lagr, u, damping=c), expected, rtol=1e-10, atol=1e-12)


def test_singular_lagrangian_hessian_raises_a_clear_error() -> None:
    u = torch.randn(8, 2, dtype=torch.float64)
    with pytest.raises(SingularLagrangianError, match=r"singular Lagrangian Hessian .* at q=\[.*\], q̇=\[.*\]"):
        lagrangian_acceleration(lambda x: x[:, 1] - x[:, 0] ** 2, u)  # linear in q̇: ∂²L/∂q̇² = 0


@pytest.mark.parametrize("dissipation", ["block", "constant", "state"])
def test_dissipation_matrix_stays_positive_semidefinite(dissipation: str) -> None:
    torch.manual_seed(0)
    model = DissipativeHNN(dissipation=dissipation, damping_init=0.05).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    u = torch.randn(256, 2, dtype=torch.float64)
    # targets from an *anti*-damped oscillator push R towards negative damping
    target = torch.stack([u[:, 1], -u[:, 0] + 0.5 * u[:, 1]], dim=1)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(model(u), target)
        loss.backward()
        opt.step()
    r = model.dissipation_matrix(u)
    eig = torch.linalg.eigvalsh(r.detach())
    assert eig.min() >= -1e-12
    assert torch.allclose(r, r.transpose(-1, -2))


def test_odd_state_dimension_is_a_clear_error(cli, capsys, tmp_path) -> None:
    with pytest.raises(ValueError, match="HNN needs an even state dimension .* got 3"):
        HNN(n_inputs=3, n_outputs=3)
    code = cli("fit", "--model", "HNN", "--data", "BZDataModule", "--trainer.max_steps", "1",
               "--trainer.default_root_dir", tmp_path, *QUIET)
    assert_one_line_error(code, capsys, "HNN needs an even state dimension (positions then momenta/velocities), got 3")


def test_structure_preserving_models_refuse_normalised_data(cli, capsys, tmp_path) -> None:
    code = cli("fit", "--model", "HNN", "--data", "DuffingDataModule", *TINY, "--data.normalization", "zscore",
               "--trainer.max_steps", "1", "--trainer.default_root_dir", tmp_path, *QUIET)
    assert_one_line_error(code, capsys, "HNN needs data.normalization 'none'")


def test_singular_hessian_during_training_stops_the_cli_with_one_line(cli, capsys, tmp_path) -> None:
    code = cli("fit", "--model", "LNN", "--model.hessian_eps", "1.0e6", "--data", "DuffingDataModule", *TINY,
               "--trainer.max_steps", "2", "--trainer.default_root_dir", tmp_path, *QUIET)
    assert_one_line_error(code, capsys, "singular Lagrangian Hessian")


# ---------------------------------------------------------------------------------- data
def test_duffing_ensemble_split_noise_and_exact_derivatives() -> None:
    dm = DuffingDataModule(representation="derivative", n_trajectories=20, n_points=30, rollout_factor=3)
    dm.setup("fit")
    assert len(dm.samples) == 20 * 30
    assert set(dm.train_trajectories).isdisjoint(dm.val_trajectories) and len(dm.val_trajectories) == 4
    train_traj = set((dm.train_idx.numpy() // 30).tolist())
    assert train_traj == set(dm.train_trajectories.tolist())
    y, dy = dm.samples.batch(torch.arange(len(dm.samples)))
    np.testing.assert_allclose(dy.numpy(), dm.system.rhs(0.0, y.numpy().T).T, rtol=0, atol=1e-14)
    # the long reference continues the training trajectories: energy is conserved along it
    e = dm.system.energy(dm.rollout_reference)
    assert dm.rollout_reference.shape == (4, 3 * 29 + 1, 2)
    assert np.abs(e - e[:, :1]).max() < 1e-8 * np.abs(e).max()
    np.testing.assert_allclose(dm.rollout_reference[:, :30].reshape(-1, 2),
                               y.numpy().reshape(20, 30, 2)[dm.val_trajectories].reshape(-1, 2), atol=0)
    noisy = DuffingDataModule(representation="derivative", n_trajectories=20, n_points=30, noise_std=0.05)
    noisy.setup("fit")
    ny, ndy = noisy.samples.batch(torch.arange(len(noisy.samples)))
    assert 0.04 < float((ny - y).std()) < 0.06 and 0.04 < float((ndy - dy).std()) < 0.06
    again = DuffingDataModule(representation="derivative", n_trajectories=20, n_points=30, noise_std=0.05)
    again.setup("fit")
    assert torch.equal(again.samples.batch(torch.arange(5))[0], ny[:5])


def test_ensemble_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="n_trajectories must be at least 2"):
        DuffingDataModule(n_trajectories=1)
    with pytest.raises(ValueError, match="noise_std must be >= 0"):
        DuffingDataModule(noise_std=-0.1)
    with pytest.raises(ValueError, match=r"DuffingDataModule serves \['derivative', 'trajectory'\] samples, not 'window'"):
        DuffingDataModule(representation="window")


# ----------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("config", [pytest.param(c, marks=pytest.mark.slow) if "kan" in c.stem else c
                                    for c in CONFIGS], ids=lambda p: p.stem)
def test_each_duffing_config_trains_a_few_steps_and_validates(config: Path, cli, tmp_path) -> None:
    root = tmp_path / "run"
    args = ["--config", config, *TINY, "--trainer.default_root_dir", root, *QUIET]
    assert cli("fit", *args, "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "1") == 0
    ckpt = root / "lightning_logs/version_0/checkpoints/last.ckpt"
    assert ckpt.exists()
    from stiffml.commands.cli import StiffCLI

    run = StiffCLI(args=["validate", *map(str, args), "--ckpt_path", str(ckpt)])
    metrics = run.trainer.callback_metrics
    assert {"val_loss", "val_rollout_mse", "val_rollout_mse_2x"} <= set(metrics), sorted(metrics)
    gamma = 0.1 if "dhnn" in config.stem else 0.0
    assert ("val_energy_drift" in metrics) == (gamma == 0.0)
    assert torch.isfinite(metrics["val_loss"])
    if "lnn" in config.stem:
        # a 3-epoch Lagrangian may be singular somewhere along a free run: that scores inf (with a
        # warning saying where), never NaN
        assert not torch.isnan(metrics["val_rollout_mse"])
    else:
        assert torch.isfinite(metrics["val_rollout_mse"])


def test_dissipative_hnn_logs_learned_damping(cli, tmp_path) -> None:
    from stiffml.commands.cli import StiffCLI

    run = StiffCLI(args=["fit", "--config", str(Path(CONFIGS[0].parent / "duffing_dhnn.yaml")), *TINY,
                         "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path), *QUIET])
    metrics = run.trainer.callback_metrics
    assert "learned_damping" in metrics and "learned_damping_q" in metrics


def test_predict_writes_phase_portraits(cli, tmp_path) -> None:
    root = tmp_path / "run"
    args = ["--model", "HNN", "--data", "DuffingDataModule", *TINY, "--trainer.default_root_dir", root, *QUIET]
    assert cli("fit", *args, "--trainer.max_steps", "2") == 0
    ckpt = root / "lightning_logs/version_0/checkpoints/last.ckpt"
    assert cli("predict", *args, "--ckpt_path", ckpt) == 0
    out = root / "lightning_logs/version_0/predictions"
    with np.load(out / "predictions.npz") as f:
        assert f["rollout"].shape == f["reference_rollout"].shape == (2, 2 * 19 + 1, 2)
        assert "val_energy_drift" in f.files
    assert (out / "predictions.png").stat().st_size > 10_000
    assert (out / "predictions.csv").read_text().startswith("trajectory,t,reference_q,reference_p,rollout_q,rollout_p")


@pytest.mark.slow
def test_kan_models_write_nothing_outside_the_run_folder(cli, tmp_path, monkeypatch, capsys) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    root = tmp_path / "run"
    for model in ("KANLNN", "KAN"):
        args = ["--model", model, "--data", "DuffingDataModule", *TINY, "--trainer.default_root_dir", root / model, *QUIET]
        assert cli("fit", *args, "--trainer.max_epochs", "6") == 0
        ckpt = root / model / "lightning_logs/version_0/checkpoints/last.ckpt"
        capsys.readouterr()
        assert cli("symbolic", "--ckpt", ckpt, "--samples", "100", "--refit-steps", "20") == 0  # small: files, not fits
        text = capsys.readouterr().out
        assert ("Lagrangian learned by the KAN" if model == "KANLNN" else "field learned by the KAN") in text
        assert (root / model / "lightning_logs/version_0/symbolic/kan.png").exists()
    assert os.listdir(work) == []
    assert sorted(os.listdir(root)) == ["KAN", "KANLNN"]


def test_symbolic_normalisation_recovers_the_true_lagrangian_terms() -> None:
    import sympy

    from stiffml.commands.symbolic import compare, dropped_line, normalise_lagrangian, polynomial_terms, prune_terms

    q, v = sympy.symbols("q qdot")
    sys = Duffing(alpha=0.5, beta=0.25)
    # a learned L: scaled by 3, a constant, a total derivative 2 q q̇ and a negligible q³ term
    learned = 3 * sys.lagrangian(q, v) + 7 + 2 * q * v + 1e-6 * q**3
    got = prune_terms(normalise_lagrangian(polynomial_terms(learned, [q, v])), 1e-3)
    true = normalise_lagrangian(polynomial_terms(sys.lagrangian(q, v), [q, v]))
    same, rows = compare(got, true, ["q", "qdot"])
    assert same, rows
    assert got == pytest.approx(true)
    off = normalise_lagrangian(polynomial_terms(3 * sys.lagrangian(q, v) + q**3, [q, v]))
    assert not compare(prune_terms(off, 1e-3), true, ["q", "qdot"])[0]
    # the shape an outer x^2 snap gives: one q-edge x^2 squared again yields both q^2 and q^4
    nested = polynomial_terms(v**2 / 2 - (q**2 / 4 + 0.5) ** 2 + 1e-4 * q**2 * v**2, [q, v])
    full = normalise_lagrangian(nested)
    kept = prune_terms(full, 1e-2)
    assert compare(kept, true, ["q", "qdot"])[0]
    assert dropped_line(full, kept, ["q", "qdot"], 1e-2).endswith("1 terms below 0.01 x the largest |coefficient|; "
                                                                   "the largest of them: 0.0001·q^2·qdot^2")
    assert dropped_line(true, true, ["q", "qdot"], 1e-2).endswith("nothing")


def test_symbolic_hnn_report_and_bad_input(cli, capsys, tmp_path) -> None:
    root = tmp_path / "run"
    args = ["--model", "DissipativeHNN", "--data", "DuffingDataModule", *TINY, "--data.params", "{gamma: 0.1}",
            "--trainer.default_root_dir", root, *QUIET]
    assert cli("fit", *args, "--trainer.max_steps", "2") == 0
    ckpt = root / "lightning_logs/version_0/checkpoints/last.ckpt"
    capsys.readouterr()
    assert cli("symbolic", "--ckpt", ckpt, "--grid", "3") == 0
    text = capsys.readouterr().out
    assert "learned H on a 3×3 grid" in text and "true γ = 0.1" in text
    assert_one_line_error(cli("symbolic", "--ckpt", tmp_path / "nope.ckpt"), capsys, "does not exist")
    assert_one_line_error(cli("symbolic", "--ckpt", ckpt, "--bogus"), capsys, "unrecognized arguments: --bogus")


def test_switch_to_lbfgs_takes_over_after_the_given_epoch(tmp_path) -> None:
    from stiffml.commands.cli import StiffCLI

    args = ["fit", "--model", "HNN", "--data", "DuffingDataModule", *TINY, "--trainer.max_epochs", "5",
            "--trainer.callbacks+=SwitchToLBFGS", "--trainer.callbacks.epoch=2",
            "--trainer.default_root_dir", str(tmp_path), *QUIET]
    run = StiffCLI(args=args)
    assert isinstance(run.trainer.optimizers[0], torch.optim.LBFGS)
    assert torch.isfinite(run.trainer.callback_metrics["train_loss"])
    assert run.trainer.global_step == 5


@pytest.mark.parametrize("solver", ["Radau", *[pytest.param(s, marks=pytest.mark.slow) for s in ("rosenbrock23", "rk4")]])
def test_free_run_settings_reach_the_physics_family(solver: str) -> None:
    """One --rollout.* object for every family: scipy's implicit solvers (Jacobian by autograd
    through the learned field), rosenbrock23 and fixed-step torchdiffeq solvers."""
    from stiffml.data import DuffingDataModule
    from stiffml.models.physics import NODE
    from stiffml.evaluation.rollout import RolloutSettings

    dm = DuffingDataModule(n_trajectories=4, n_points=11, rollout_factor=2, representation="derivative")
    dm.setup("fit")
    model = NODE(n_inputs=2, n_outputs=2, hidden=8).double()
    run = model.free_run(dm, RolloutSettings(solver=solver, length=5))
    assert run["pred"].shape == run["reference"].shape == (1, 6, 2)
    assert np.all(np.isfinite(run["pred"]))
    np.testing.assert_allclose(run["pred"][:, 0], run["reference"][:, 0], rtol=1e-12)
