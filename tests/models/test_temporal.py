"""The temporal family: Table 2 sizes, window memory, rollouts, predict files, stop rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stiffml import registry
from stiffml.data import BZDataModule, VdPDataModule
from stiffml.models import WindowModel

from ..conftest import CONF, assert_one_line_error, logged_events

TEMPORAL = sorted(n for n, e in registry.load("models").items() if e.cls.consumes({}) == "window")

# Table 2 of Zhang et al. (2024): (B-Z with 3 states, VdP with x only).
TABLE2 = {"RNN": (12_931, 12_673), "LSTM": (51_139, 50_497), "AttenLSTM": (22_083, 21_441)}


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_table2_parameter_counts_are_exact(name: str) -> None:
    cls = registry.get_model(name)
    bz, vdp = TABLE2[name]
    assert cls(n_inputs=3, n_outputs=3).n_params == bz
    assert cls(n_inputs=1, n_outputs=1).n_params == vdp


def test_the_paper_names_are_registered() -> None:
    assert {"RNN", "GRU", "LSTM", "StackedLSTM", "AttenLSTM"} <= set(TEMPORAL)


@pytest.mark.slow  # the paper's 300,001-point VdP series
def test_vdp_windows_are_views_within_twice_the_series_memory() -> None:
    dm = VdPDataModule(window=20, representation="window", batch_size=300)
    dm.setup("fit")
    series_bytes = dm.reference.size * 8
    held = sum(t.element_size() * t.nelement() for t in dm.samples.tensors.values())
    index_bytes = (dm.train_idx.nelement() + dm.val_idx.nelement()) * 8
    assert len(dm.samples) == 300_001 - 20
    assert held + index_bytes <= 2 * series_bytes + 8 * 300_001  # no 20-fold copy of the series
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (300, 20, 1) and y.shape == (300, 1)


class Identity(WindowModel):
    """Predicts the last state of the window (no parameters are trained)."""

    def __init__(self, n_inputs: int = 1, n_outputs: int = 1, lr: float = 1e-3) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, window):
        return window[:, -1] + 0 * self.dummy


def test_identity_rollout_is_the_constant_continuation() -> None:
    init = torch.randn(3, 6, 2, dtype=torch.float64)
    out = Identity(2, 2).double().rollout(init, 40)
    torch.testing.assert_close(out, init[:, -1:].expand(3, 40, 2))


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("name", TEMPORAL)
def test_fast_rollout_equals_rerunning_every_window(name: str, residual: bool) -> None:
    torch.manual_seed(0)
    model = registry.get_model(name)(n_inputs=3, n_outputs=3, hidden=16, residual=residual).double()
    init = 0.5 * torch.randn(2, 7, 3, dtype=torch.float64)
    fast, naive = model.rollout(init, 60), model.rollout(init, 60, naive=True)
    torch.testing.assert_close(fast, naive, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.rollout(init[1:], 60), naive[1:], rtol=1e-12, atol=1e-12)  # batched == single
    assert model.training  # restored


def test_rollout_needs_state_width_outputs() -> None:
    with pytest.raises(ValueError, match="n_inputs == n_outputs"):
        registry.get_model("LSTM")(n_inputs=3, n_outputs=3).double().rollout(torch.zeros(1, 4, 2, dtype=torch.float64), 3)


def test_free_run_and_errors_over_the_held_out_span() -> None:
    from stiffml.evaluation.free_run import rollout_errors

    dm = BZDataModule(representation="window", window=4, dt=0.01, split="extrapolate", train_fraction=0.6)
    dm.setup("fit")
    run = Identity(3, 3).double().free_run(dm)
    assert run["pred"].shape == run["reference"].shape == (1001 - 4, 3)
    np.testing.assert_allclose(run["pred"], np.repeat(dm.reference[3:4], 997, axis=0), rtol=1e-12)
    errs = rollout_errors(dm, run)
    assert set(errs) == {f"{split}_rollout_{name}" for split in ("val", "train") for name in ("rel_l2", "nmae", "nmae_worst")}
    held = run["t"] > 6.0
    ref = run["reference"][held]
    expected = np.linalg.norm(run["pred"][held] - ref) / np.linalg.norm(ref)
    assert errs["val_rollout_rel_l2"] == pytest.approx(expected)
    # divided by each state's range over the whole reference: over the held-out part alone one
    # B-Z species is nearly flat and the same error scored 18,110 (issue #31)
    full = dm.rollout_reference.reshape(-1, 3)
    span = full.max(axis=0) - full.min(axis=0)
    per_state = np.abs(run["pred"][held] - ref).mean(axis=0) / span
    assert errs["val_rollout_nmae"] == pytest.approx(np.mean(per_state))
    assert errs["val_rollout_nmae_worst"] == pytest.approx(np.max(per_state))


def test_fit_logs_rollout_and_predict_writes_files(cli, tmp_path) -> None:
    cfg = CONF / "bz_attenlstm_tiny.yaml"
    assert cli("fit", "--config", cfg, "--trainer.default_root_dir", tmp_path) == 0
    (version,) = (tmp_path / "lightning_logs").glob("version_*")
    acc = logged_events(version)
    assert {"val_rel_l2", "val_nmae", "val_rollout_rel_l2", "val_rollout_nmae"} <= set(acc.Tags()["scalars"])
    assert 0 < acc.Scalars("val_rollout_nmae")[-1].value < float("inf")
    assert cli("predict", "--config", cfg, "--trainer.default_root_dir", tmp_path,
               "--ckpt_path", version / "checkpoints" / "last.ckpt") == 0
    out = version / "predictions"
    data = np.load(out / "predictions.npz")
    assert data["rollout"].shape == data["reference_rollout"].shape == (1001 - 5, 3)
    assert data["prediction"].shape == data["reference"].shape
    np.testing.assert_allclose(data["t"], np.linspace(0, 10, 1001)[5:])
    header = (out / "predictions.csv").read_text().splitlines()[0]
    assert header == "t,reference_x,reference_y,reference_z,rollout_x,rollout_y,rollout_z"
    assert (out / "predictions.png").read_bytes()[:4] == b"\x89PNG"


BAD = [
    (["--data.window", "5000"], "window=5000 is not shorter than the series"),
    (["--data.representation", "pointwise"], "AttenLSTM consumes 'window' samples"),
    (["--trainer.callbacks+=StopOnLossBelow", "--trainer.callbacks.threshold", "0"], "threshold must be positive"),
    (["--trainer.callbacks+=StopOnLossBelow", "--trainer.callbacks.threshold=-1.0e-6"], "threshold must be positive"),
    (["--model.init_args.unroll", "0"], "unroll must be a positive integer (1: teacher forcing), got 0"),
    (["--model.init_args.unroll_gradient", "tbptt"], "unroll_gradient: 'tbptt' is not one of full, pushforward"),
    (["--model.init_args.unroll", "3", "--data.init_args.horizon", "2"], "model.unroll=3 but data.horizon=2"),
    (["--data.init_args.horizon", "0"], "horizon must be a positive integer, got 0"),
    (["--model.init_args.unroll", "1000"], "window=5 plus horizon=1000 is longer than the series"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input(args, message, cli, tmp_path, capsys) -> None:
    code = cli("fit", "--config", CONF / "bz_attenlstm_tiny.yaml", "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)


def test_residual_model_starts_at_the_do_nothing_prediction() -> None:
    model = registry.get_model("AttenLSTM")(n_inputs=2, n_outputs=2, residual=True).double()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    window = torch.randn(4, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(model(window), window[:, -1])


def test_window_model_that_ignores_residual_is_refused(tmp_path) -> None:
    from torch import nn

    from stiffml import WindowModel

    class Plain(WindowModel):
        def __init__(self, n_inputs: int = 1, n_outputs: int = 1, lr: float = 1e-3, residual: bool = False) -> None:
            super().__init__(n_inputs, n_outputs, lr)
            self.lin = nn.Linear(n_inputs, n_outputs)

        def forward(self, window):
            return self.lin(window[:, -1])  # never calls next_state

    Plain(residual=False).setup("fit")
    with pytest.raises(ValueError, match="was given residual=true but does not apply it"):
        Plain(residual=True).setup("fit")


# ----------------------------------------------------------------- training on own predictions
def test_window_samples_with_a_horizon_target_the_next_states() -> None:
    dm = BZDataModule(representation="window", window=4, horizon=3, dt=0.01)
    dm.setup("fit")
    series = dm.samples.tensors["y"]
    assert len(dm.samples) == 1001 - 4 - 3 + 1
    idx = torch.tensor([0, 7, len(dm.samples) - 1])
    x, y = dm.samples.batch(idx)
    assert x.shape == (3, 4, 3) and y.shape == (3, 3, 3)
    for row, i in enumerate(idx.tolist()):
        torch.testing.assert_close(x[row], series[i : i + 4])
        torch.testing.assert_close(y[row], series[i + 4 : i + 7])
    np.testing.assert_allclose(dm.target_times, dm.times[4 : 1001 - 2])  # a sample's time: its first target's


@pytest.mark.parametrize("name", TEMPORAL)
def test_unrolled_prediction_feeds_predictions_back(name: str) -> None:
    torch.manual_seed(0)
    cls = registry.get_model(name)
    full = cls(n_inputs=3, n_outputs=3, hidden=8, unroll=5).double()
    push = cls(n_inputs=3, n_outputs=3, hidden=8, unroll=5, unroll_gradient="pushforward").double()
    push.load_state_dict(full.state_dict())
    init = 0.5 * torch.randn(4, 6, 3, dtype=torch.float64)
    pred = full.unrolled(init, 5)
    torch.testing.assert_close(pred, full.rollout(init, 5), rtol=1e-12, atol=1e-12)  # same as the free run
    torch.testing.assert_close(push.unrolled(init, 5), pred, rtol=1e-12, atol=1e-12)  # same forward values
    target = torch.randn(4, 5, 3, dtype=torch.float64)
    grads = []
    for model in (full, push):
        model.zero_grad()
        model.loss(model.unrolled(init, 5), target).backward()
        grads.append(torch.cat([p.grad.ravel() for p in model.parameters()]))
    assert not torch.allclose(grads[0], grads[1])  # pushforward cuts the gradient through the feedback
    # pushforward's gradient: the sum of one-step gradients at the (detached) fed-back windows
    push.zero_grad()
    windows = torch.cat([init, pred.detach()], 1)
    for j in range(5):
        step = push(windows[:, j : j + 6])
        (torch.nn.functional.mse_loss(step, target[:, j], reduction="sum") / target.numel()).backward()
    torch.testing.assert_close(torch.cat([p.grad.ravel() for p in push.parameters()]), grads[1], rtol=1e-10, atol=1e-14)


def test_unroll_through_the_cli_trains_and_scores_one_step(cli, tmp_path) -> None:
    args = ["fit", "--config", CONF / "bz_attenlstm_tiny.yaml", "--trainer.default_root_dir", tmp_path,
            "--model.init_args.unroll", "4", "--model.init_args.unroll_gradient", "pushforward"]
    assert cli(*args) == 0
    (ckpt,) = (tmp_path / "lightning_logs").glob("version_*/checkpoints/last.ckpt")
    saved = torch.load(ckpt, weights_only=False)
    assert saved["datamodule_hyper_parameters"]["horizon"] == 4  # linked from the model's unroll
    assert np.isfinite(saved["callbacks"][next(k for k in saved["callbacks"] if "ModelCheckpoint" in k)]["best_model_score"].item())


def test_horizon_needs_window_samples_and_a_matching_model() -> None:
    with pytest.raises(ValueError, match="horizon=3 applies to window samples, not 'pair'"):
        BZDataModule(representation="pair", horizon=3, dt=0.01)
    dm = BZDataModule(representation="window", window=4, horizon=3, dt=0.01)
    model = registry.get_model("LSTM")(n_inputs=3, n_outputs=3, hidden=4, unroll=2)
    model._trainer = SimpleNamespace(datamodule=dm, precision="64-true")  # setup reads only these
    with pytest.raises(ValueError, match="LSTM has unroll=2 but BZDataModule serves horizon=3"):
        model.setup("fit")
