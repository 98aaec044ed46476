"""``stiffml benchmark``: the smoke suite end to end, resume, failures, aggregation, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from stiffml.commands import benchmark
from stiffml.commands.benchmark import aggregate, mean_std


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    from stiffml.main import main

    assert main(["benchmark", "--suite", "smoke", "--out", str(out)]) == 0
    return out


@pytest.mark.slow  # trains the whole smoke suite (the CLI benchmark tests below share it)
def test_smoke_suite_writes_results_report_and_figures(smoke) -> None:
    rows = list(csv.DictReader((smoke / "results.csv").open()))
    assert len(rows) == 4 * 2  # 4 configs x 2 seeds
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["label"] for r in rows} == {"FCNN", "ResNet", "AttenLSTM", "ODE-Net"}
    for r in rows:
        assert float(r["val_rel_l2"]) > 0 and float(r["fit_seconds"]) > 0 and int(r["n_params"]) > 0
        assert "torch" in r["versions"] and r["precision"] == "64-true"
    # epochs trained, not Lightning's epoch counter (which ends one past max_epochs)
    epochs = {r["label"]: float(r["epochs"]) for r in rows}
    assert epochs["FCNN"] == epochs["AttenLSTM"] == 2.0
    rollouts = {r["label"]: r["val_rollout_rel_l2"] for r in rows}
    assert rollouts["AttenLSTM"] and rollouts["ODE-Net"] and not rollouts["FCNN"]
    nmaes = {r["label"]: r["val_rollout_nmae"] for r in rows}
    assert 0 < float(nmaes["AttenLSTM"]) < float("inf") and 0 < float(nmaes["ODE-Net"]) and not nmaes["FCNN"]
    for r in rows:  # the worst state's error bounds the mean over states from above
        if r["val_rollout_nmae"]:
            assert float(r["val_rollout_nmae_worst"]) >= float(r["val_rollout_nmae"])
    assert all(0 < float(r["val_nmae"]) < float("inf") for r in rows)
    report = (smoke / "report.md").read_text()
    assert "| bz | AttenLSTM |" in report and "free-run rel. L2" in report and "| epochs |" in report
    assert "free-run NMAE" in report and "| worst state |" in report
    for fig in ("loss_curves.png", "run_times.png", "predictions_bz.png", "stiffness_ratio.png"):
        assert (smoke / fig).read_bytes()[:4] == b"\x89PNG"
        assert f"]({fig})" in report
    assert len(json.loads((smoke / "results.json").read_text())) == 8


@pytest.mark.slow  # shares the smoke suite's run
def test_rerun_resumes_without_training(smoke, monkeypatch) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(benchmark, "run_one", no_training)
    from stiffml.main import main

    assert main(["benchmark", "--suite", "smoke", "--out", str(smoke)]) == 0


@pytest.mark.slow
def test_failing_config_is_recorded_and_the_rest_runs(tmp_path) -> None:
    suite = tmp_path / "mixed.yaml"
    suite.write_text(
        "name: mixed\nrepeats: 1\nruns:\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: broken, args: ['--data.params={c: -8.375e-6}']}\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: fine}\n"
    )
    from stiffml.main import main

    assert main(["benchmark", "--suite", str(suite), "--out", str(tmp_path / "out")]) == 1
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    status = {r["label"]: r for r in records}
    assert status["broken"]["status"] == "failed" and "blew up" in status["broken"]["error"]
    assert status["fine"]["status"] == "ok"
    assert "## Failed runs" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_diverged_run_is_failed_reported_non_zero_and_retried(tmp_path, capsys, monkeypatch) -> None:
    from stiffml.main import main

    suite = tmp_path / "div.yaml"
    suite.write_text(
        "name: div\nrepeats: 1\nruns:\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: diverges, args: ['--model.lr=.inf', '--trainer.max_epochs=2']}\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: fine}\n"
    )
    out = tmp_path / "out"
    assert main(["benchmark", "--suite", str(suite), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and "diverged" in err
    rows = {r["label"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["diverges"]["status"] == "failed" and "diverged" in rows["diverges"]["error"]
    assert rows["fine"]["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "diverges" in report and "diverged" in report
    assert (out / "loss_curves.png").exists()  # figures from the runs that can be drawn

    # a second call retries the failed run (and only it)
    trained = []
    real = benchmark.run_one

    def spy(suite_name, run, seed, run_dir, extra):
        trained.append(run.key)
        return real(suite_name, run, seed, run_dir, extra)

    monkeypatch.setattr(benchmark, "run_one", spy)
    assert main(["benchmark", "--suite", str(suite), "--out", str(out)]) == 1
    assert trained == ["diverges"]


def test_report_survives_a_plugin_system_and_a_failing_figure(tmp_path, monkeypatch) -> None:
    from stiffml.evaluation import plots
    from stiffml.commands.benchmark import Suite, SuiteRun, write_report

    def broken(out, ok):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(plots, "FIGURES", [broken, *plots.FIGURES])
    records = [{"suite": "s", "config": "c.yaml", "label": "A", "seed": 0, "status": "ok", "model": "M",
                "system": "toggle", "system_class": "stiffml_example.toggle.ToggleSwitch", "system_params": "{}",
                "fit_seconds": 1.0, "run_dir": str(tmp_path / "run"), "train_loss": 1.0, "val_rel_l2": float("inf")}]
    with pytest.warns(UserWarning, match="figure broken skipped"):
        made = plots.write_figures(tmp_path, records)
    assert (tmp_path / "stiffness_ratio.png") in made and (tmp_path / "run_times.png") in made
    write_report(tmp_path, Suite("s", [SuiteRun("c.yaml")]), records)
    report = (tmp_path / "report.md").read_text()
    assert "stiffness_ratio.png" in report
    assert "Figures not drawn:" in report and "- `broken`: RuntimeError: figure exploded" in report


def test_prediction_figure_uses_a_log_axis_on_a_log_grid() -> None:
    from stiffml.evaluation.plots import log_time_axis

    assert log_time_axis(np.logspace(-5, 5, 50))
    assert not log_time_axis(np.linspace(0.02, 400, 50))


def test_shipped_suites_resolve_from_any_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in benchmark.suite_names():
        suite = benchmark.load_suite(name)
        assert all(run.path and Path(run.path).is_file() for run in suite.runs)
    assert set(benchmark.suite_names()) >= {"smoke", "paper-table1", "paper-table2", "physics"}
    assert Path(benchmark.resolve_config("configs/bz_fcnn.yaml")).is_file()  # the old spelling


def test_mean_and_std_on_hand_made_records() -> None:
    records = [
        {"config": "a.yaml", "label": "A", "status": "ok", "train_loss": 1.0, "fit_seconds": 10.0},
        {"config": "a.yaml", "label": "A", "status": "ok", "train_loss": 3.0, "fit_seconds": 14.0},
        {"config": "a.yaml", "label": "A", "status": "failed", "train_loss": None},
        {"config": "b.yaml", "label": None, "status": "ok", "train_loss": 2.0, "fit_seconds": 1.0},
    ]
    rows = {r["key"]: r for r in aggregate(records)}
    assert rows["A"]["train_loss"] == (2.0, math.sqrt(2.0), 2)
    assert rows["A"]["fit_seconds"] == (12.0, math.sqrt(8.0), 2)
    assert rows["A"]["runs"] == 3 and rows["A"]["failed"] == 1
    assert rows["b"]["train_loss"] == (2.0, 0.0, 1)
    mean, std, n = mean_std([None, float("inf")])
    assert n == 0 and math.isnan(mean)


@pytest.mark.parametrize(("args", "message"), [
    (["--suite", "nope", "--out", "{tmp}/o"], "unknown suite 'nope'; valid: ["),
    (["--configs", "missing.yaml", "--out", "{tmp}/o"], "config 'missing.yaml' not found"),
    (["--suite", "smoke", "--out", "{tmp}/o", "--bogus"], "unrecognized arguments: --bogus"),
    (["--suite", "smoke", "--out", "{tmp}/file/sub"], "is not writable"),
    (["--suite", "smoke", "--out", "{tmp}/o", "--repeats", "0"], "--repeats must be a positive integer"),
])
def test_bad_input(args, message, cli, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("")
    code = cli("benchmark", *[a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_physics_runs_in_parallel_workers_with_their_own_table(tmp_path) -> None:
    from pathlib import Path

    from stiffml.main import main

    conf = Path(__file__).parents[1] / "conf" / "duffing_hnn_tiny.yaml"
    suite = tmp_path / "phys.yaml"
    suite.write_text(
        "name: phys\nrepeats: 1\nruns:\n"
        f"  - {{config: {conf}, label: \"HNN (a/b)\", paper: {{test: 9.2e-4}}}}\n"
        f"  - {{config: {conf}, label: NODE, args: [\"--model=NODE\", \"--model.hidden=16\"]}}\n"
    )
    out = tmp_path / "out"
    assert main(["benchmark", "--suite", str(suite), "--out", str(out), "--jobs", "2"]) == 0
    assert (out / "runs" / "HNN_a_b" / "seed0" / "result.json").exists()
    rows = {r["label"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert {r["status"] for r in rows.values()} == {"ok"}
    for r in rows.values():
        for key in ("val_rollout_mse", "val_rollout_mse_long", "val_energy_drift"):
            assert 0 <= float(r[key]) < math.inf, (key, r[key])
    report = (out / "report.md").read_text()
    assert "| seed test |" in report and "| duffing | HNN (a/b) |" in report and "0.00092" in report


def test_epochs_are_fractional_when_a_run_stops_part_way() -> None:
    from types import SimpleNamespace

    from stiffml.training.experiment import epochs_trained as _epochs

    assert _epochs(SimpleNamespace(num_training_batches=800, global_step=1000, current_epoch=1)) == 1.25
    assert _epochs(SimpleNamespace(num_training_batches=float("inf"), global_step=7, current_epoch=3)) == 3.0


PLUGIN = '''
import numpy as np
from stiffml import StiffDataModule, StiffSystem


class Decay(StiffSystem):
    """Two species, one fast and one slow: a stiff linear chain a -> b -> (out)."""

    name = "decaychain"
    state_names = ("a", "b")
    defaults = {"k1": 50.0, "k2": 0.5}
    default_y0 = (1.0, 0.0)
    t_span = (0.0, 4.0)
    dt = 0.02

    def rhs(self, t, y):
        p = self.params
        return np.stack([-p["k1"] * y[0], p["k1"] * y[0] - p["k2"] * y[1]])

    def jac(self, t, y):
        p = self.params
        return np.array([[-p["k1"], 0.0], [p["k1"], -p["k2"]]])


class DecayDataModule(StiffDataModule):
    system_class = Decay
'''


def test_plugin_system_gets_a_full_benchmark_report(tmp_path, monkeypatch) -> None:
    # a system the zoo does not know (no entry point even: a class path in the config)
    (tmp_path / "decay_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "decay.yaml").write_text(
        "model: {class_path: FCNN, init_args: {hidden: 8, depth: 1}}\n"
        "data: {class_path: decay_plugin.DecayDataModule, init_args: {batch_size: 40}}\n"
        "trainer: {max_epochs: 2, enable_progress_bar: false, enable_model_summary: false}\n"
    )
    from stiffml.main import main

    out = tmp_path / "out"
    assert main(["benchmark", "--configs", str(tmp_path / "decay.yaml"), "--repeats", "1", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| decaychain | FCNN |" in report
    for fig in ("loss_curves.png", "run_times.png", "predictions_decaychain.png", "stiffness_ratio.png"):
        assert (out / fig).read_bytes()[:4] == b"\x89PNG" and f"]({fig})" in report
