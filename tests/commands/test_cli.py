"""The real CLI on tiny configs: fit, outputs, precision, stop rule, bad input, DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ..conftest import CONF, assert_one_line_error, logged_events, run_stiffml

TINY = CONF / "bz_fcnn_tiny.yaml"


def _version_dir(root: Path) -> Path:
    (version,) = sorted((root / "lightning_logs").glob("version_*"))
    return version


def test_fit_writes_version_folder_events_config_and_checkpoints(cli, tmp_path) -> None:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path) == 0
    version = _version_dir(tmp_path)
    assert list(version.glob("events.out.tfevents.*"))
    cfg = yaml.safe_load((version / "config.yaml").read_text())
    assert cfg["model"]["class_path"].endswith("FCNN")
    assert cfg["data"]["init_args"]["representation"] == "pointwise"  # linked from the model
    assert cfg["trainer"]["precision"] == "64-true"  # CPU default
    hparams = yaml.safe_load((version / "hparams.yaml").read_text())
    assert hparams["n_params"] == 419
    assert (version / "checkpoints" / "last.ckpt").exists()
    assert list((version / "checkpoints").glob("best-*.ckpt"))
    ckpt = torch.load(version / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(v.dtype == torch.float64 for k, v in ckpt["state_dict"].items() if v.is_floating_point())


def test_logged_metrics(tmp_path, cli) -> None:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", 2,
               "--trainer.log_every_n_steps", 1) == 0
    acc = logged_events(_version_dir(tmp_path))
    tags = set(acc.Tags()["scalars"])
    assert {"train_loss", "train_loss_step", "val_loss", "val_rel_l2"} <= tags
    assert len(acc.Scalars("train_loss")) == 2  # one per epoch
    assert len(acc.Scalars("train_loss_step")) == 16  # 8 steps per epoch, every step logged
    rel = acc.Scalars("val_rel_l2")[-1].value
    assert 0 < rel < 10


def test_last_checkpoint_is_the_last_state_even_when_val_loss_stalls(cli, tmp_path) -> None:
    # lr 0: val_loss never improves after epoch 0, yet last.ckpt must hold the final step.
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", 3,
               "--model.lr", "1.0e-30") == 0
    ckpts = _version_dir(tmp_path) / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"] == 24
    assert len(list(ckpts.glob("best-*.ckpt"))) == 1


def test_validate_and_test_from_checkpoint(cli, tmp_path) -> None:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path) == 0
    ckpt = _version_dir(tmp_path) / "checkpoints" / "last.ckpt"
    for sub in ("validate", "test"):
        assert cli(sub, "--config", TINY, "--trainer.default_root_dir", tmp_path / sub, "--ckpt_path", ckpt) == 0


def test_print_config_shows_linked_defaults(capsys, cli) -> None:
    assert cli("fit", "--config", TINY, "--print_config") == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["seed_everything"] == 0
    assert cfg["checkpoint"]["monitor"] == "val_loss" and cfg["last_checkpoint"]["filename"] == "last"
    assert "n_inputs" not in cfg["model"]["init_args"]  # linked from the datamodule


def test_short_names_in_flags(cli, tmp_path) -> None:
    assert cli("fit", "--model", "ResNet", "--model.channels", 8, "--model.length", 4, "--model.blocks", 1,
               "--data", "VdPDataModule", "--data.t_span", "[0, 3]", "--data.dt", 0.01,
               "--trainer.max_epochs", 1, "--trainer.default_root_dir", tmp_path,
               "--trainer.enable_progress_bar", "false") == 0


def test_stop_rule_stops_mid_epoch(cli, tmp_path, capsys) -> None:
    # A loss threshold that the first batch already beats: the run ends in step 1, not at epoch end.
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", 5,
               "--trainer.callbacks+=StopOnLossBelow", "--trainer.callbacks.threshold", 1.0e3) == 0
    ckpt = torch.load(_version_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 1 and ckpt["epoch"] == 0


BAD_INPUT = [
    (["--model", "FCNNX"], "unknown model 'FCNNX'; valid: ["),
    (["--data", "BZX"], "unknown datamodule 'BZX'; valid: ["),
    (["--model.hiddn", "3"], "'hiddn' is not accepted"),
    (["--data.dt=-1"], "step dt must be positive"),
    (["--data.dt", "-1"], "write --data.dt=-1"),
    (["--data.t_span", "[5, 1]"], "t1 > t0"),
    (["--data.params", "{mu: 3}"], "unknown parameter(s) ['mu']"),
    (["--data.representation", "window"], "FCNN consumes 'pointwise' samples"),
    (["--data.params", "{c: -8.375e-6}"], "blew up at t≈0.23"),
    (["--config", "/nonexistent.yaml"], "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_non_zero(args, message, cli, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STIFFML_CACHE_DIR", str(tmp_path / "cache"))
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if p.suffix == ".tmp"]


def test_malformed_yaml(cli, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [\n  x: 1\n")
    assert cli("fit", "--config", bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"stiffml: error: config file {bad} is not valid YAML at line 3, column 1: "
                   "expected ',' or ']', but got '<stream end>'"]


@pytest.mark.parametrize("text", [None, "model: [\n"])
def test_a_missing_or_broken_config_is_reported_before_lightning_is_imported(tmp_path, text) -> None:
    import subprocess
    import sys

    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text)
    code = ("import sys; from stiffml.main import main; rc = main(['fit', '--config', sys.argv[1]]); "
            "print(rc, 'lightning' in sys.modules, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr
    assert str(path) in proc.stderr


@pytest.mark.slow
def test_console_script_runs(tmp_path) -> None:
    proc = run_stiffml("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bad = run_stiffml("fit", "--model", "Nope")
    assert bad.returncode == 2 and "stiffml: error: unknown model 'Nope'" in bad.stderr


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path) -> None:
    proc = run_stiffml(
        "fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.accelerator", "cpu",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "2", timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    version = _version_dir(tmp_path)
    assert list(version.glob("events.out.tfevents.*"))
    ckpt = torch.load(version / "checkpoints" / "last.ckpt", weights_only=False)
    # 801 training samples, 400 per rank, batch 100: 4 steps per epoch (unsharded it would be 8).
    assert ckpt["global_step"] == 8


@pytest.mark.slow
def test_ddp_stop_rule_stops_all_ranks_in_the_same_step(tmp_path) -> None:
    proc = run_stiffml(
        "fit", "--config", CONF / "bz_attenlstm_tiny.yaml", "--trainer.default_root_dir", tmp_path,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "3", "--trainer.callbacks+=StopOnLossBelow", "--trainer.callbacks.threshold", "1.0e3",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "StopOnLossBelow: batch loss" in proc.stderr + proc.stdout
    ckpt = torch.load(_version_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 1


def test_default_progress_bar_is_tqdm_and_a_configured_one_is_kept(tmp_path) -> None:
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    from stiffml.commands.cli import StiffCLI

    common = ["--config", str(TINY), "--trainer.enable_progress_bar", "true", "--trainer.default_root_dir", str(tmp_path)]
    assert type(StiffCLI(args=common, run=False).trainer.progress_bar_callback) is TQDMProgressBar
    chosen = StiffCLI(args=[*common, "--trainer.callbacks+=RichProgressBar"], run=False)
    assert type(chosen.trainer.progress_bar_callback) is RichProgressBar
