"""``stiffml benchmark --executor ray`` with a real local Ray runtime (no mock)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from ..conftest import REPO

ray = pytest.importorskip("ray")

FIELDS = ("train_loss", "val_loss", "val_rel_l2", "val_rollout_rel_l2", "n_params", "steps", "status")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["label"]: r for r in csv.DictReader((out / "results.csv").open())}


@pytest.mark.slow
def test_smoke_suite_on_ray_gives_the_local_records(tmp_path) -> None:
    from stiffml.main import main

    # the same torch thread count on both sides, so float64 sums are the same to the last bit
    threads = str(torch.get_num_threads())
    assert main(["benchmark", "--suite", "smoke", "--repeats", "1", "--out", str(tmp_path / "local")]) == 0
    assert main(["benchmark", "--suite", "smoke", "--repeats", "1", "--out", str(tmp_path / "ray"),
                 "--executor", "ray", "--ray.cpus_per_run", threads]) == 0
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert local.keys() == remote.keys() == {"FCNN", "ResNet", "AttenLSTM", "ODE-Net"}
    for label in local:
        assert {f: local[label][f] for f in FIELDS} == {f: remote[label][f] for f in FIELDS}, label
    # the report's inputs came back to the driver's folder, not left on the worker
    run = tmp_path / "ray" / "runs" / "AttenLSTM" / "seed0"
    assert (run / "curve.json").exists() and (run / "predictions" / "predictions.npz").exists()
    assert json.loads((run / "result.json").read_text())["run_dir"] == str(run)
    report = (tmp_path / "ray" / "report.md").read_text()
    assert "| bz | AttenLSTM |" in report and "](stiffness_ratio.png)" in report


@pytest.mark.slow
def test_failures_on_ray_are_recorded_killed_workers_retried_once_and_resume(tmp_path, monkeypatch) -> None:
    from stiffml.main import main

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # workers import tests.helpers
    kills = tmp_path / "kills.log"
    suite = tmp_path / "mixed.yaml"
    suite.write_text(
        "name: mixed\nrepeats: 1\nruns:\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: fine}\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: raises, args: ['--data.params={c: -8.375e-6}']}\n"
        "  - {config: tiny/bz_fcnn_tiny.yaml, label: killed, args: ['--trainer.callbacks+=tests.helpers.KillAtStep',"
        f" '--trainer.callbacks.step=1', '--trainer.callbacks.log_file={kills}']}}\n"
    )
    out = tmp_path / "out"
    assert main(["benchmark", "--suite", str(suite), "--out", str(out), "--executor", "ray"]) == 1
    rows = _rows(out)
    assert rows["fine"]["status"] == "ok"
    assert rows["raises"]["status"] == "failed" and "blew up" in rows["raises"]["error"]
    assert rows["killed"]["status"] == "failed" and "Ray task lost" in rows["killed"]["error"]
    assert kills.read_text().count("killed") == 2  # the first death was retried once
    assert "## Failed runs" in (out / "report.md").read_text()

    fine = out / "runs" / "fine" / "seed0" / "result.json"
    before = fine.stat().st_mtime_ns
    assert main(["benchmark", "--suite", str(suite), "--out", str(out), "--executor", "ray"]) == 1
    assert fine.stat().st_mtime_ns == before  # finished: skipped
    assert kills.read_text().count("killed") == 4  # failed: run again (and retried again)


def test_unreachable_ray_address_is_one_line_within_seconds(cli, capsys, tmp_path) -> None:
    import time

    start = time.perf_counter()
    code = cli("benchmark", "--suite", "smoke", "--out", tmp_path / "o", "--executor", "ray",
               "--ray.address", "127.0.0.1:1")
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code == 2 and len(err) == 1 and "127.0.0.1:1" in err[0] and "cannot reach" in err[0], err
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["--ray.gpus_per_run", "0.25"], "the Ray cluster has no GPUs"),
    (["--ray.cpus_per_run", "4096"], "no node has more than"),
])
def test_requests_no_node_can_satisfy_are_one_line(cli, capsys, tmp_path, args, message) -> None:
    if args[0].endswith("gpus_per_run") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = cli("benchmark", "--suite", "smoke", "--out", tmp_path / "o", "--executor", "ray", *args)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--ray.address", "auto"], "--ray.address needs --executor ray"),
    (["--executor", "ray", "--ray.cpus_per_run", "0"], "--ray.cpus_per_run must be positive"),
    (["--executor", "ray", "--ray.gpus_per_run", "1.5"], "--ray.gpus_per_run must be 0, a fraction"),
    (["--executor", "ray", "--ray.address", "nonsense"], "expected 'auto', HOST:PORT"),
])
def test_bad_ray_options_are_one_line(cli, capsys, tmp_path, args, message) -> None:
    code = cli("benchmark", "--suite", "smoke", "--out", tmp_path / "o", *args)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_without_ray_installed_the_extra_is_named(cli, capsys, tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    code = cli("benchmark", "--suite", "smoke", "--out", tmp_path / "o", "--executor", "ray")
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code == 2 and len(err) == 1 and "pip install 'stiffml[ray]'" in err[0], err
