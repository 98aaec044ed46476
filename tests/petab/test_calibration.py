"""Calibration in Lightning: batched solves over starts, the batched optimisers, and
``stiffml fit`` with MechanisticModel on PEtabDataModule through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("petab")

from stiffml.petab import Problem  # noqa: E402
from stiffml.petab.batched import BatchedAdam, BatchedFides, BatchedLBFGS  # noqa: E402
from stiffml.petab.optimize import latin_hypercube  # noqa: E402
from stiffml.petab.simulate import Experiment  # noqa: E402
from stiffml.systems.base import SolveError  # noqa: E402

from ..conftest import CONF, assert_one_line_error, logged_events  # noqa: E402

TINY = CONF / "petab_tiny.yaml"
# a PEtab test-suite case: the same code paths as Tyson at a fraction of the cost per step
SMALL = ["--data.problem", str(Path(__file__).parents[1] / "petab_cases" / "0001" / "_0001.yaml")]


@pytest.fixture(scope="module")
def tyson() -> Problem:
    return Problem("tyson1991")


@pytest.mark.slow
def test_batched_values_and_gradients_match_one_start_at_a_time(tyson: Problem) -> None:
    points = latin_hypercube(tyson, 3, seed=1)
    values, grads = tyson.values_and_gradients(points)
    for k, x in enumerate(points):
        value, grad = tyson.value_and_gradient(x)
        assert values[k] == pytest.approx(value, rel=1e-6)
        np.testing.assert_allclose(grads[k], grad, rtol=1e-4, atol=1e-6 * np.abs(grad).max())


@pytest.mark.slow
def test_one_solve_per_start_gives_the_single_start_values_exactly() -> None:
    problem = Problem("tyson1991", joint_solves=False)
    points = latin_hypercube(problem, 2, seed=3)
    values, grads = problem.values_and_gradients(points)
    for k, x in enumerate(points):
        value, grad = problem.value_and_gradient(x)
        assert values[k] == value
        np.testing.assert_array_equal(grads[k], grad)


@pytest.mark.slow
def test_rows_restrict_the_sum(tyson: Problem) -> None:
    rows = np.arange(0, len(tyson.measurements), 2)
    whole, _ = tyson.values_and_gradients(tyson.nominal[None])
    half, _ = tyson.values_and_gradients(tyson.nominal[None], rows=rows)
    other, _ = tyson.values_and_gradients(tyson.nominal[None], rows=np.arange(1, len(tyson.measurements), 2))
    assert half[0] + other[0] == pytest.approx(whole[0], rel=1e-12)
    assert half[0] != pytest.approx(whole[0])


@pytest.mark.slow
def test_a_start_that_cannot_be_solved_fails_alone(tyson: Problem, monkeypatch) -> None:
    points = latin_hypercube(tyson, 3, seed=2)
    expected = [tyson.value_and_gradient(x) for x in points]
    original = Experiment._solve
    marker = float(np.exp(np.log(10) * points[1][0]))  # k4 of start 1 on the linear scale

    def failing(self, v, *args):
        if np.any(np.isclose(v, marker, rtol=1e-12)):
            raise SolveError("simulated failure")
        return original(self, v, *args)

    monkeypatch.setattr(Experiment, "_solve", failing)
    values, grads = tyson.values_and_gradients(points)
    assert values[1] == np.inf and np.all(grads[1] == 0)
    for k in (0, 2):
        assert values[k] == pytest.approx(expected[k][0], rel=1e-6)


def _rosenbrock(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a ** 2) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a ** 2), 200 * (b - a ** 2)], axis=1)
    return f, g


def _run(opt, limit: int = 20000) -> int:
    n = 0
    while not opt.done and n < limit:
        idx, points = opt.ask()
        opt.tell(idx, *_rosenbrock(points))
        n += 1
    return n


@pytest.mark.parametrize("cls, kwargs", [(BatchedLBFGS, {}), (BatchedFides, {}),
                                         (BatchedAdam, {"lr": 0.02, "patience": 50, "max_iterations": 20000})])
def test_batched_optimisers_reach_the_bounded_minimum(cls, kwargs) -> None:
    # Rosenbrock on [-2, 2] x [-2, 0.5]: the minimum sits on the bound b = 0.5, at a = 0.70856
    x0 = np.random.default_rng(0).uniform(-2, 0.5, (6, 2))
    opt = cls(x0, [-2, -2], [2, 0.5], **kwargs)
    _run(opt)
    assert opt.done
    np.testing.assert_allclose(opt.best_x, np.tile([0.708559, 0.5], (6, 1)), atol=2e-4)
    assert np.all(opt.best_x[:, 1] <= 0.5)


@pytest.mark.parametrize("cls", [BatchedLBFGS, BatchedFides])
def test_each_start_has_its_own_state_and_a_frozen_start_does_not_move(cls) -> None:
    x0 = np.array([[-1.5, 1.0], [1.2, 1.4], [0.0, 0.0]])
    together = cls(x0, [-2, -2], [2, 2])
    _run(together)
    for k in range(3):  # the same start alone takes the same path
        alone = cls(x0[k:k + 1], [-2, -2], [2, 2])
        _run(alone)
        np.testing.assert_array_equal(alone.best_x[0], together.best_x[k])
        assert alone.evaluations[0] == together.evaluations[k]
    assert len(set(together.evaluations.tolist())) > 1  # they converged after different numbers of steps


@pytest.mark.parametrize("cls", [BatchedLBFGS, BatchedFides])
def test_optimiser_state_round_trip_continues_identically(cls) -> None:
    x0 = np.array([[-1.5, 1.0], [1.2, 1.4]])
    straight = cls(x0, [-2, -2], [2, 2])
    _run(straight)
    first = cls(x0, [-2, -2], [2, 2])
    _run(first, limit=7)
    second = cls(np.zeros((2, 2)), [-2, -2], [2, 2])
    # through tensors, as a checkpoint stores it (weights_only loading takes tensors and plain values)
    state = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in first.state_dict().items()}
    assert all(isinstance(v, (torch.Tensor, int, float, str, bool, list, tuple)) for v in state.values())
    second.load_state_dict({k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()})
    _run(second)
    np.testing.assert_array_equal(second.best_x, straight.best_x)
    np.testing.assert_array_equal(second.evaluations, straight.evaluations)


def test_batched_fides_takes_the_path_of_fides_itself() -> None:
    # one start driven in lockstep ends where fides.Optimizer.minimize ends, after as many evaluations
    import logging

    import fides

    x0 = np.array([-1.5, 0.2])
    lb, ub = np.array([-2.0, -2.0]), np.array([2.0, 0.5])
    calls = [0]

    def one(x: np.ndarray) -> tuple[float, np.ndarray]:
        calls[0] += 1
        f, g = _rosenbrock(x[None])
        return float(f[0]), g[0]

    ref = fides.Optimizer(one, lb=lb, ub=ub, verbose=logging.ERROR, hessian_update=fides.BFGS(),
                          options={fides.Options.MAXITER: 1000, fides.Options.GATOL: 1e-6, fides.Options.FRTOL: 1e-10})
    ref.minimize(x0.copy())
    ours = BatchedFides(x0[None], lb, ub, gtol=1e-6, ftol=1e-10)
    _run(ours)
    np.testing.assert_array_equal(ours.best_x[0], ref.x_min)
    assert ours.best_f[0] == ref.fval_min
    assert ours.evaluations[0] == calls[0]
    assert ours.reason[0].endswith(ref.exitflag.name)  # the same stop rule ended both


# ------------------------------------------------------------------------------- the real CLI
def _version(root: Path) -> Path:
    (version,) = sorted((root / "lightning_logs").glob("version_*"))
    return version


@pytest.mark.slow
def test_fit_calibrates_and_writes_the_report(cli, tmp_path: Path) -> None:
    assert cli("fit", "--config", TINY, *SMALL, "--trainer.default_root_dir", tmp_path) == 0
    version = _version(tmp_path)
    for name in ("best_parameters.tsv", "starts.tsv", "waterfall.png", "fit.png", "summary.json"):
        assert (version / name).is_file(), name
    assert (version / "checkpoints" / "last.ckpt").is_file()
    acc = logged_events(version)
    best = [s.value for s in acc.Scalars("best_nllh")]
    assert len(best) == 4 and best[-1] <= best[0] and all(np.isfinite(best))
    ckpt = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    theta = ckpt["state_dict"]["theta"]
    problem = Problem(SMALL[1])
    assert theta.shape == (2, len(problem.parameter_ids)) and theta.dtype == torch.float64
    assert torch.all(theta >= torch.as_tensor(problem.lower)) and torch.all(theta <= torch.as_tensor(problem.upper))
    import json

    summary = json.loads((version / "summary.json").read_text())
    assert summary["best_nllh"] == pytest.approx(min(best), rel=1e-6)
    # the joint solve of two starts and a solve of one take different steps (on Tyson's oscillator
    # their nllh differed by about 6e-6 relative; both within the solver's tolerance)
    assert summary["best_nllh"] == pytest.approx(problem.nllh(summary["estimates"]), rel=1e-4)


@pytest.mark.slow
def test_resumed_calibration_continues_exactly(cli, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli("fit", "--config", TINY, *SMALL, "--trainer.default_root_dir", straight, "--trainer.max_epochs", 5,
               "--model.max_iterations", 20) == 0
    assert cli("fit", "--config", TINY, *SMALL, "--trainer.default_root_dir", split, "--trainer.max_epochs", 3,
               "--model.max_iterations", 20) == 0
    assert cli("fit", "--config", TINY, *SMALL, "--trainer.default_root_dir", split, "--trainer.max_epochs", 5,
               "--model.max_iterations", 20, "--ckpt_path", "last") == 0
    a = torch.load(_version(straight) / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(_version(split) / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 5
    assert torch.equal(a["state_dict"]["theta"], b["state_dict"]["theta"])
    assert torch.equal(a["stiffml"]["optimizer"]["trial"], b["stiffml"]["optimizer"]["trial"])


@pytest.mark.slow
def test_predict_writes_the_simulation_table(cli, tmp_path: Path) -> None:
    assert cli("fit", "--config", TINY, *SMALL, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", 1) == 0
    ckpt = _version(tmp_path) / "checkpoints" / "last.ckpt"
    assert cli("predict", "--config", TINY, *SMALL, "--trainer.default_root_dir", tmp_path, "--ckpt_path", ckpt) == 0
    import pandas as pd

    table = pd.read_csv(ckpt.parent.parent / "predictions" / "simulation.tsv", sep="\t")
    problem = Problem(SMALL[1])
    assert len(table) == len(problem.measurements) and "simulation" in table
    assert np.all(np.isfinite(table["simulation"]))


@pytest.mark.parametrize("args, message", [
    (["--model.starts", "0"], "model.starts must be a positive integer, got 0"),
    (["--data.problem", "no/such/problem.yaml"], "no/such/problem.yaml' not found"),
    (["--data.class_path", "BZDataModule"], "MechanisticModel calibrates PEtab problems"),
    (["--model.class_path", "FCNN"], "is a PEtab problem; it is fitted by model: MechanisticModel"),
    (["--trainer.precision", "32-true"], "MechanisticModel computes in float64"),
])
def test_bad_calibration_input_is_one_line_and_leaves_no_run_folder(cli, capsys, tmp_path: Path, args, message) -> None:
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)
    assert code == 2
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())
