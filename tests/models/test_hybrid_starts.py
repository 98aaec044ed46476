"""Multistart hybrid models (issue #27, speed): several initialisations of the networks trained in
one batched solve, each start's loss and gradient those it would have alone, the best start the
model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stiffml.data.sbml import SBMLEnsembleDataModule
from stiffml.models.hybrid import HybridModel

from ..conftest import CONF, assert_one_line_error

REPLACE = {"R3": {"inputs": ["y2", "y3"], "hidden": [4]}}


def _data() -> SBMLEnsembleDataModule:
    dm = SBMLEnsembleDataModule("robertson", y0s=[[1.0, 0.0, 0.0], [0.8, 0.0, 0.2], [0.9, 0.0, 0.1]],
                                t_span=(0.0, 0.1), points_per_decade=2, noise_std=0.05, representation="trajectory")
    dm.setup("fit")
    return dm


def _model(dm: SBMLEnsembleDataModule, starts: int) -> HybridModel:
    model = HybridModel(n_inputs=3, n_outputs=3, replace=REPLACE, starts=starts, rtol=1e-8, atol=1e-11).double()
    model.attach(dm)
    return model


def _single_from_start(dm: SBMLEnsembleDataModule, multi: HybridModel, k: int) -> HybridModel:
    """A one-start model holding start k's weights (same layer layout: Linear weights are (out, in))."""
    single = _model(dm, 1)
    mlp = multi.hybrid.networks[0].net
    layers = [m for m in single.hybrid.networks[0].net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, w, b in zip(layers, mlp.weights, mlp.biases):
            lin.weight.copy_(w[k].T)
            lin.bias.copy_(b[k, 0])
    return single


@pytest.mark.slow
def test_every_start_gets_the_loss_and_gradient_it_would_have_alone() -> None:
    torch.manual_seed(0)
    dm = _data()
    multi = _model(dm, 2)
    with torch.no_grad():  # the starts differ in their last layer too, so their losses differ
        for p in multi.hybrid.networks[0].net.biases[-1:]:
            p.copy_(torch.tensor([[[0.3]], [[-0.3]]], dtype=torch.float64))
    (t, z0, rows, cols), y = dm.samples.batch(dm.train_idx)
    x = (t, z0, rows, cols)
    pred = multi(x)
    assert pred.shape == (len(y), 2, 3)
    total = multi.loss(pred, y)
    per = multi._step_start_losses
    total.backward()
    assert float(per[0]) != pytest.approx(float(per[1]), rel=1e-3)
    for k in range(2):
        single = _single_from_start(dm, multi, k)
        loss = single.loss(single(x), y)
        loss.backward()
        assert float(per[k]) == pytest.approx(float(loss.detach()), rel=1e-6)
        mlp = multi.hybrid.networks[0].net
        lin = [m for m in single.hybrid.networks[0].net if isinstance(m, torch.nn.Linear)]
        for layer, w, b in zip(lin, mlp.weights, mlp.biases):
            torch.testing.assert_close(w.grad[k].T, layer.weight.grad, rtol=1e-5, atol=1e-9)
            torch.testing.assert_close(b.grad[k, 0], layer.bias.grad, rtol=1e-5, atol=1e-9)
    # the best start is the lowest loss, and evaluation is that start's model alone
    best = int(torch.argmin(per))
    assert int(multi.hybrid.best_start) == best
    multi.eval()
    single = _single_from_start(dm, multi, best).eval()
    with torch.no_grad():
        torch.testing.assert_close(multi(x), single(x), rtol=1e-6, atol=1e-10)


@pytest.mark.slow
def test_a_multistart_fit_through_the_cli_logs_its_best_start_and_reloads(cli, tmp_path: Path) -> None:
    config = CONF / "sbml_robertson_hybrid_tiny.yaml"
    assert cli("fit", "--config", config, "--model.starts", "3", "--trainer.default_root_dir", tmp_path) == 0
    ckpt = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)
    assert state["hyper_parameters"]["starts"] == 3
    assert state["state_dict"]["hybrid.networks.0.net.weights.0"].shape == (3, 2, 8)
    assert 0 <= int(state["state_dict"]["hybrid.best_start"]) < 3
    assert cli("validate", "--config", config, "--ckpt_path", ckpt, "--trainer.default_root_dir", tmp_path) == 0


@pytest.mark.parametrize("args, message", [
    (["--model.starts", "0"], "model.starts must be a positive number of network initialisations, got 0"),
    (["--model.starts", "2", "--model.mode", "derivative"], "model.starts=2 trains the starts in one batched solve"),
])
def test_bad_starts_are_one_line(args: list[str], message: str, cli, capsys, tmp_path: Path) -> None:
    code = cli("fit", "--config", CONF / "sbml_robertson_hybrid_tiny.yaml", *args,
               "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, message)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_a_start_whose_solve_fails_is_dropped_and_the_others_go_on() -> None:
    torch.manual_seed(0)
    dm = _data()
    model = _model(dm, 3)
    model.hparams.step_budget = 2000
    (t, z0, rows, cols), y = dm.samples.batch(dm.train_idx)
    with torch.no_grad():  # start 1's term is not a number: its solve cannot succeed
        model.hybrid.networks[0].net.biases[-1][1].fill_(float("nan"))
    with pytest.warns(UserWarning, match=r"multistart: start\(s\) \[1\] dropped, their solve failed"):
        pred = model((t, z0, rows, cols))
    assert pred.shape == (len(y), 2, 3) and torch.isfinite(pred).all()
    assert model.hybrid.alive.tolist() == [True, False, True]
    model.loss(pred, y).backward()
    assert int(model.hybrid.best_start) != 1 and torch.isinf(model._step_start_losses[1])
    assert model.hybrid.networks[0].net.weights[-1].grad[1].abs().sum() == 0  # a dropped start is not trained
    with torch.no_grad():
        for k in (0, 2):
            model.hybrid.networks[0].net.biases[-1][k].fill_(float("nan"))
    with pytest.raises(RuntimeError, match="every start's solve failed"):
        model((t, z0, rows, cols))
