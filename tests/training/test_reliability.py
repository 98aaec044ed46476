"""Reliability through the real CLI: bad input is one line, divergence fails, resume is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ..conftest import CONF, REPO, run_stiffml

TINY = CONF / "bz_fcnn_tiny.yaml"
ATTEN = CONF / "bz_attenlstm_tiny.yaml"


def _errors(capsys: pytest.CaptureFixture) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return [ln for ln in captured.err.splitlines() if ln.startswith("stiffml: error:")]


def _bad_files(root: Path) -> dict[str, Path]:
    files = {"empty": root / "empty.ckpt", "truncated": root / "truncated.ckpt", "random": root / "random.ckpt",
             "tensor": root / "tensor.pt"}
    files["empty"].write_bytes(b"")
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, root / "good.ckpt")
    files["truncated"].write_bytes((root / "good.ckpt").read_bytes()[:2000])
    files["random"].write_bytes(os.urandom(4096))
    torch.save(torch.zeros(3), files["tensor"])
    return files


BAD_INPUTS = [
    (["--trainer.accelerator", "gpu"], "no CUDA GPU"),
    (["--config", "configs/trainer/gpu32.yaml"], "no CUDA GPU"),
    (["--trainer.devices", "64"], "trainer.devices is 64"),
    (["--trainer.max_epochs=-5"], "got -5"),
    (["--trainer.max_steps=-3"], "got -3"),
    (["--data.t_span", "[0, .inf]"], "t_span must be two finite times"),
    (["--data.dt", "1e-300"], "points"),
    (["--data.dt=-1e-3"], "dt must be positive"),
    (["--data.dt", "-1e-3"], "write --data.dt=-1e-3"),
    (["--data.params", "{c: .nan}"], "must be finite, got nan"),
    (["--data.y0", "[1, .nan, 4]"], "y0 for system 'bz' must be finite"),
    (["--trainer.precision", "65"], "--trainer.precision: '65' is not one of 64, 32, 16, transformer-engine"),
    (["--model.lr", "0"], "lr must be positive"),
    (["--rollout.solver", "rk45"], "unknown rollout solver 'rk45'; valid: ['auto', 'Radau'"),
    (["--rollout.length", "0"], "rollout steps_per_interval and length must be positive"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_fit_input_is_one_line_and_leaves_no_run_folder(cli, capsys, tmp_path, args, message) -> None:
    code = cli("fit", "--config", TINY, *args, "--trainer.default_root_dir", tmp_path)
    errors = _errors(capsys)
    assert code != 0 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


def test_config_file_that_is_not_utf8_is_named(cli, capsys, tmp_path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("model:\n  class_path: FCNN # caf\xe9\n".encode("latin-1"))
    code = cli("fit", "--config", bad)
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and str(bad) in errors[0] and "UTF-8" in errors[0], errors


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "tensor"])
@pytest.mark.parametrize("command", ["validate", "fit"])
def test_unreadable_checkpoint_is_one_line(cli, capsys, tmp_path, kind, command) -> None:
    path = _bad_files(tmp_path)[kind]
    code = cli(command, "--config", TINY, "--ckpt_path", path, "--trainer.default_root_dir", tmp_path / "runs")
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and str(path) in errors[0], errors
    assert "weights_only" not in errors[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", ["empty", "random"])
def test_symbolic_rejects_unreadable_checkpoint(cli, capsys, tmp_path, kind) -> None:
    path = _bad_files(tmp_path)[kind]
    code = cli("symbolic", "--ckpt", path)
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and str(path) in errors[0], errors


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_evaluation_without_checkpoint_is_refused(cli, capsys, tmp_path, command) -> None:
    code = cli(command, "--config", TINY, "--trainer.default_root_dir", tmp_path)
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and "--ckpt_path" in errors[0] and "--allow_untrained" in errors[0]
    assert not (tmp_path / "lightning_logs").exists()
    # the explicit option allows it
    assert cli(command, "--config", TINY, "--trainer.default_root_dir", tmp_path, "--allow_untrained", "true") == 0


def test_checkpoint_of_another_model_class_is_refused(cli, capsys, tmp_path) -> None:
    assert cli("fit", "--config", ATTEN, "--trainer.default_root_dir", tmp_path, "--trainer.max_steps", 2) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    code = cli("validate", "--config", TINY, "--ckpt_path", last)
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and "AttenLSTM" in errors[0] and "FCNN" in errors[0], errors


def test_resume_last_without_a_run_is_an_error(cli, capsys, tmp_path) -> None:
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", "last")
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and "no run under" in errors[0], errors
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


def test_run_failing_before_training_leaves_no_run_folder(cli, capsys, tmp_path) -> None:
    # log-zscore needs positive data; this B-Z variant goes negative (fails in the datamodule's setup)
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--data.normalization", "log-zscore",
               "--data.params", "{h: -50.0}")
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1 and "strictly positive" in errors[0], errors
    assert not (tmp_path / "lightning_logs").exists()


def test_state_dict_mismatch_is_one_line_and_leaves_no_run_folder(cli, capsys, tmp_path) -> None:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_steps", 2) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    code = cli("validate", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", last,
               "--model.hidden", 32)
    errors = _errors(capsys)
    assert code == 2 and errors == [
        "stiffml: error: the checkpoint was written for a FCNN of other sizes: net.0.weight is (16, 1) there and "
        "(32, 1) in this config; use the config the checkpoint was trained with (config.yaml in its run folder)"]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


def test_free_run_that_blows_up_is_scored_inf_not_a_crash() -> None:
    from stiffml.evaluation.free_run import scored_free_run
    from stiffml.systems import SolveError

    class Exploding:
        def free_run(self, dm, settings=None):
            raise SolveError("learned field: solution blew up at t=0.3")

    with pytest.warns(UserWarning, match="free run diverged"):
        run, metrics = scored_free_run(Exploding(), dm=None)
    assert run is None and metrics == {"val_rollout_rel_l2": float("inf"), "val_rollout_nmae": float("inf"),
                                       "val_rollout_nmae_worst": float("inf")}


@pytest.mark.parametrize(("lr", "what"), [(".inf", "nan"), ("1e6", "above max_loss")])
def test_divergence_stops_the_run_non_zero_with_no_best_checkpoint(cli, capsys, tmp_path, lr, what) -> None:
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--model.lr", lr,
               "--trainer.max_epochs", 2)
    errors = _errors(capsys)
    assert code == 2 and len(errors) == 1, errors
    assert "diverged" in errors[0] and "at step" in errors[0], errors
    assert f"lr={float(lr.replace('.inf', 'inf')):g}" in errors[0], errors
    if what == "nan":
        assert "nan" in errors[0]
    else:
        assert "max_loss" in errors[0]
    assert not list(tmp_path.rglob("best-*.ckpt"))


def test_divergence_ceiling_is_configuration(cli, capsys, tmp_path) -> None:
    # a ceiling below any real loss stops the first step; null turns the ceiling off
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--divergence.max_loss", "1.0e-30")
    errors = _errors(capsys)
    assert code == 2 and "above max_loss 1e-30" in errors[0] and "at step 1" in errors[0]
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--divergence.max_loss", "null") == 0


def test_divergence_names_the_last_good_checkpoint(cli, capsys, tmp_path) -> None:
    # epoch 0 trains normally and writes last.ckpt; resumed with a ceiling no loss can meet
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", "last",
               "--trainer.max_epochs", 2, "--divergence.max_loss", "1.0e-30")
    errors = _errors(capsys)
    assert code == 2 and f"last good checkpoint: {last}" in errors[0], errors


def test_validate_reproduces_the_logged_val_loss_exactly(tmp_path) -> None:
    from stiffml.commands.cli import StiffCLI

    common = ["--config", str(TINY), "--trainer.default_root_dir", str(tmp_path)]
    StiffCLI(args=["fit", *common, "--trainer.max_epochs", "2"])
    (best,) = (tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("best-*.ckpt")
    logged = next(v for k, v in torch.load(best, weights_only=True)["callbacks"].items()
                  if k.startswith("ModelCheckpoint{'monitor': 'val_loss'"))["best_model_score"]
    assert logged.dtype == torch.float64
    cli = StiffCLI(args=common, run=False)
    (metrics,) = cli.trainer.validate(cli.model, cli.datamodule, ckpt_path=str(best), verbose=False)
    assert metrics["val_loss"] == logged.item()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_last_is_bitwise_equal(tmp_path) -> None:
    # 8 batches per epoch; checkpoints every 3 steps; SIGKILL after step 13 (epoch 1, batch 4):
    # the resumed run restarts from step 12 (mid-epoch) and must end on the same weights.
    common = ["fit", "--config", TINY, "--trainer.max_epochs", "3", "--step_checkpoint.every_n_train_steps", "3"]
    assert run_stiffml(*common, "--trainer.default_root_dir", tmp_path / "a").returncode == 0
    killed = run_stiffml(*common, "--trainer.default_root_dir", tmp_path / "b",
                         "--trainer.callbacks+=tests.helpers.KillAtStep", "--trainer.callbacks.step", "13",
                         env={"PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_b = tmp_path / "b" / "lightning_logs" / "version_0"
    assert torch.load(run_b / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    resumed = run_stiffml(*common, "--trainer.default_root_dir", tmp_path / "b", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "b" / "lightning_logs").iterdir()) == ["version_0"]  # same run
    assert len(list(run_b.glob("events.out.tfevents.*"))) == 2  # curves continued in its folder
    a = _weights(tmp_path / "a" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    b = _weights(run_b / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float64 for v in b.values() if v.is_floating_point())


@pytest.mark.slow
def test_kill_during_cache_write_leaves_nothing_after_the_next_run(tmp_path) -> None:
    from stiffml.data.cache import cached_solve
    from stiffml.systems import get_system

    cache = tmp_path / "cache"
    cache.mkdir()
    # a writer that dies after creating its temporary file (a real process, really killed)
    code = ("import os, signal, stiffml.io as io;"
            f"io.atomic_write({str(cache / 'bz-x.npz')!r}, lambda f: (f.write(b'x' * 2048), os.kill(os.getpid(), signal.SIGKILL)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(cache.glob(".*.tmp"))) == 1
    time.sleep(0.1)
    cached_solve(get_system("bz"), get_system("bz").default_grid(dt=0.05), cache_dir=cache)
    assert not list(cache.glob(".*.tmp")) and len(list(cache.glob("*.npz"))) == 1


def test_plugin_that_exits_on_import_is_skipped_with_a_warning(tmp_path, monkeypatch) -> None:
    from importlib.metadata import EntryPoint

    from stiffml import registry

    (tmp_path / "exits_plugin.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "raises_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("Exits", "exits_plugin:Exits", "stiffml.models"),
           EntryPoint("Raises", "raises_plugin:Raises", "stiffml.models")]
    with pytest.warns(registry.PluginWarning) as caught:
        assert registry.load("models", eps=eps) == {}
    text = " ".join(str(w.message) for w in caught)
    assert "'Exits'" in text and "SystemExit" in text and "'Raises'" in text and "boom" in text


def test_top_level_help_lists_every_command_quickly() -> None:
    started = time.perf_counter()
    proc = run_stiffml("--help")
    assert proc.returncode == 0
    for name in ("fit", "validate", "test", "predict", "list", "benchmark", "symbolic"):
        assert f"  {name} " in proc.stdout
    unknown = run_stiffml("frobnicate")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "benchmark" in unknown.stderr
    # no torch, no Lightning: the import cost alone would be seconds (timed in bench/cli_startup.py)
    probe = subprocess.run([sys.executable, "-c", "import sys, stiffml.main as m; m.main(['--help']);"
                            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'lightning')))"],
                           capture_output=True, text=True)
    assert probe.stdout.strip().endswith("[]"), probe.stdout[-300:]
    assert time.perf_counter() - started < 60


def test_checkpoint_writes_are_atomic_and_stage_nothing_in_tmpdir(tmp_path, monkeypatch) -> None:
    import tempfile

    from stiffml.training.checkpoints import AtomicCheckpointIO

    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, folder / "last.ckpt")
    assert torch.equal(torch.load(folder / "last.ckpt", weights_only=True)["state_dict"]["w"], torch.ones(3))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("interrupted mid-write")

    with pytest.raises(RuntimeError, match="interrupted mid-write"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "x": Unpicklable()}, folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]  # the old one, whole
    assert torch.equal(torch.load(folder / "last.ckpt", weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert not list(staging.iterdir())


def test_cli_uses_atomic_checkpoints(tmp_path) -> None:
    from stiffml.training.checkpoints import AtomicCheckpointIO
    from stiffml.commands.cli import StiffCLI

    cli = StiffCLI(args=["--config", str(TINY), "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
