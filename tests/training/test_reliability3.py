"""Reliability, round three (issue #31): no run lost from a benchmark, damaged checkpoints refused,
bounded SBML ids, Ctrl-C, empty listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stiffml.commands.benchmark import load_suite

from ..conftest import CONF, assert_one_line_error

TINY = CONF / "bz_fcnn_tiny.yaml"


@pytest.mark.slow
def test_broken_suite_entries_become_failed_records_and_the_rest_runs(tmp_path: Path, cli) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: [unclosed\n")
    suite = tmp_path / "mixed.yaml"
    suite.write_text(
        "name: mixed\nrepeats: 1\nruns:\n"
        f"  - {{config: {TINY}, label: first}}\n"
        f"  - {{config: {bad_yaml}, label: yaml_error}}\n"
        f"  - {{config: {TINY}, label: typo, args: ['--model.hiden=3']}}\n"
        f"  - {{config: {TINY}, label: last}}\n"
    )
    assert cli("benchmark", "--suite", suite, "--out", tmp_path / "out") == 1
    records = {r["label"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())}
    assert records["first"]["status"] == records["last"]["status"] == "ok"
    assert records["yaml_error"]["status"] == "failed" and "bad.yaml" in records["yaml_error"]["error"]
    assert records["typo"]["status"] == "failed" and "hiden" in records["typo"]["error"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed runs" in report and "typo" in report
    assert (tmp_path / "out" / "results.csv").is_file()


def test_an_option_every_run_rejects_fails_every_run_with_its_reason(tmp_path: Path, cli) -> None:
    assert cli("benchmark", "--configs", TINY, "--out", tmp_path / "out", "--repeats", "1",
               "--", "--trainer.bogus", "1") == 1
    (record,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["status"] == "failed" and "bogus" in record["error"]
    assert (tmp_path / "out" / "report.md").is_file()


@pytest.mark.slow
def test_a_rerun_after_an_interrupted_benchmark_leaves_no_stale_version(tmp_path: Path, cli) -> None:
    out = tmp_path / "out"
    assert cli("benchmark", "--configs", TINY, "--out", out, "--repeats", "1", "--", "--trainer.max_steps", "2") == 0
    (seed_dir,) = (out / "runs").glob("*/seed0")
    # what Ctrl-C in the middle of this run would have left: a version folder, no result.json
    (seed_dir / "result.json").unlink()
    (seed_dir / "lightning_logs" / "version_0" / "stale.txt").write_text("from the interrupted attempt")
    assert cli("benchmark", "--configs", TINY, "--out", out, "--repeats", "1", "--", "--trainer.max_steps", "2") == 0
    assert sorted(p.name for p in (seed_dir / "lightning_logs").iterdir()) == ["version_0"]
    assert not (seed_dir / "lightning_logs" / "version_0" / "stale.txt").exists()
    assert (seed_dir / "result.json").is_file()


def test_duplicate_labels_are_refused_at_load(tmp_path: Path) -> None:
    suite = tmp_path / "dup.yaml"
    suite.write_text(f"runs:\n  - {{config: {TINY}, label: a}}\n  - {{config: {TINY}, label: a}}\n")
    with pytest.raises(ValueError, match="runs 1 and 2 both have the label 'a'"):
        load_suite(str(suite))


def test_configs_with_one_file_name_in_two_folders_get_distinct_labels(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "fcnn.yaml").write_text(TINY.read_text())
    suite = tmp_path / "s.yaml"
    suite.write_text("runs:\n  - {config: one/fcnn.yaml}\n  - {config: two/fcnn.yaml}\n")
    runs = load_suite(str(suite)).runs
    assert [r.key for r in runs] == ["one/fcnn", "two/fcnn"]
    assert len({r.folder for r in runs}) == 2


def test_the_same_config_twice_without_labels_is_refused(tmp_path: Path, cli, capsys) -> None:
    code = cli("benchmark", "--configs", TINY, TINY, "--out", tmp_path / "out")
    assert_one_line_error(code, capsys, "both have the label")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_during_fit_exits_130_and_says_how_to_resume(tmp_path: Path) -> None:
    from ..conftest import REPO, run_stiffml

    proc = run_stiffml("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", "5",
                       "--trainer.callbacks+=tests.helpers.SigintAtStep", "--trainer.callbacks.step", "12",
                       env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 130, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("stiffml:")]
    assert lines == ["stiffml: interrupted: fit at step 12; resume with --ckpt_path last"], proc.stderr[-2000:]
    resumed = run_stiffml("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", "2",
                          "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]


@pytest.mark.slow
def test_a_time_based_step_checkpoint_is_written_by_default_before_the_epoch_ends(tmp_path: Path) -> None:
    import yaml

    from ..conftest import REPO, run_stiffml

    # the default: every 5 minutes of training; here every step, and Ctrl-C at step 5 of an 8-step epoch
    proc = run_stiffml("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", "5",
                       "--step_checkpoint.train_time_interval", "0:00:00",
                       "--trainer.callbacks+=tests.helpers.SigintAtStep", "--trainer.callbacks.step", "5",
                       env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 130, proc.stderr[-2000:]
    run = tmp_path / "lightning_logs" / "version_0"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert 1 <= ckpt["global_step"] <= 5 and ckpt["epoch"] == 0  # saved inside the first epoch
    defaults = run_stiffml("fit", "--config", TINY, "--print_config")
    cfg = yaml.safe_load(defaults.stdout)
    assert cfg["step_checkpoint"]["train_time_interval"] == "0:05:00"


@pytest.mark.slow
def test_validate_and_predict_log_inside_the_run_they_evaluate(tmp_path: Path, cli) -> None:
    ckpt = _fit_tiny(cli, tmp_path)
    trained_config = (ckpt.parent.parent / "config.yaml").read_text()
    for sub in ("validate", "predict", "validate"):
        assert cli(sub, "--config", TINY, "--ckpt_path", "last", "--trainer.default_root_dir", tmp_path) == 0
    logs = tmp_path / "lightning_logs"
    assert sorted(p.name for p in logs.iterdir()) == ["version_0"]  # no empty version_1, version_2 ...
    run = ckpt.parent.parent
    assert sorted(p.name for p in (run / "validate").iterdir()) == ["version_0", "version_1"]
    assert (run / "validate" / "version_1" / "config.yaml").is_file() and (run / "predictions" / "predictions.npz").is_file()
    assert (run / "config.yaml").read_text() == trained_config  # the training run's config is not overwritten
    # and the next resume still finds the training run
    assert cli("fit", "--config", TINY, "--ckpt_path", "last", "--trainer.max_epochs", "2",
               "--trainer.default_root_dir", tmp_path) == 0
    assert sorted(p.name for p in logs.iterdir()) == ["version_0"]


def _fit_tiny(cli, root: Path) -> Path:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", root, "--trainer.max_epochs", "1") == 0
    return root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


def test_flipped_weight_bytes_are_refused_with_one_line(cli, capsys, tmp_path: Path) -> None:
    import torch

    ckpt = _fit_tiny(cli, tmp_path)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    name, weight = next((k, v) for k, v in state.items() if v.numel() >= 8)
    raw = bytearray(ckpt.read_bytes())
    at = bytes(raw).find(weight.numpy().tobytes())
    assert at >= 0
    raw[at + 3] ^= 0x10  # one bit inside one float of the weights
    ckpt.write_bytes(bytes(raw))
    assert not torch.equal(torch.load(ckpt, weights_only=True)["state_dict"][name], weight)  # torch loads it
    capsys.readouterr()
    code = cli("validate", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", ckpt)
    assert_one_line_error(code, capsys, f"checkpoint {ckpt} is damaged: the digest recorded when it was written does not match its model weights")
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", "last")
    assert_one_line_error(code, capsys, "is damaged")


def test_changed_optimiser_state_is_refused(cli, capsys, tmp_path: Path) -> None:
    import torch

    ckpt = _fit_tiny(cli, tmp_path)
    data = torch.load(ckpt, weights_only=True)
    state = data["optimizer_states"][0]["state"]
    first = next(iter(state))
    state[first]["step"] = torch.tensor(-0.5)
    torch.save(data, ckpt)  # the recorded digest is kept, the content changed
    capsys.readouterr()
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", "last",
               "--trainer.max_epochs", "2")
    assert_one_line_error(code, capsys, "does not match its optimiser state")


def test_a_checkpoint_without_a_digest_loads_with_a_warning(cli, tmp_path: Path) -> None:
    import torch

    from stiffml.training.checkpoints import DIGEST_KEY, UnverifiedCheckpointWarning, load_checkpoint

    ckpt = _fit_tiny(cli, tmp_path)
    data = torch.load(ckpt, weights_only=True)
    assert DIGEST_KEY in data
    del data[DIGEST_KEY]
    torch.save(data, ckpt)
    with pytest.warns(UnverifiedCheckpointWarning, match="no stiffml content digest"):
        load_checkpoint(ckpt)
    with pytest.warns(UnverifiedCheckpointWarning):
        assert cli("validate", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--ckpt_path", ckpt) == 0


@pytest.mark.slow
@pytest.mark.parametrize("attribute, size", [("name", 150_000), ("id", 200_000)])
def test_a_long_sbml_model_name_or_id_simulates_instead_of_crashing(tmp_path: Path, attribute: str, size: int) -> None:
    import re
    import subprocess
    import sys

    pytest.importorskip("roadrunner")
    from stiffml.sbml.examples import resolve_model

    text = resolve_model("tyson1991")[0].read_text()
    tag = re.search(r"<model [^>]*>", text).group(0)
    long_value = ("N" if attribute == "name" else "I") * size
    new_tag = re.sub(rf'{attribute}="[^"]*"', f'{attribute}="{long_value}"', tag) if f' {attribute}="' in tag \
        else tag.replace("<model ", f'<model {attribute}="{long_value}" ')
    path = tmp_path / "long.xml"
    path.write_text(text.replace(tag, new_tag))
    # in a subprocess: before the fix libroadrunner killed the process with a segfault
    code = ("import sys, numpy as np; from stiffml.sbml import SBMLSystem; s = SBMLSystem(sys.argv[1]); "
            "y = np.asarray(s.simulate(np.linspace(0, 10, 5), s.state_names)); print(len(s.name), y.shape)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    length, *_ = proc.stdout.split()
    assert int(length) <= 5 + 64


def test_error_lines_stay_short() -> None:
    from stiffml.errors import MAX_ERROR_CHARS, one_line

    line = one_line(ValueError("unknown model id " + "x" * 200_000))
    assert len(line) < MAX_ERROR_CHARS + 40 and line.endswith("(200,017 characters)")


def test_list_with_no_match_says_so(cli, capsys) -> None:
    code = cli("list", "Zzz*")
    out = capsys.readouterr()
    assert code == 1 and "Models" not in out.out
    assert out.err.strip().splitlines() == [
        "stiffml: error: no model, datamodule or solver matches 'Zzz*' (a case-insensitive glob such as '*LSTM*'; "
        f"'stiffml list' shows all {out.err.split('shows all ')[1].split(')')[0]})"]


@pytest.mark.parametrize("args, message", [
    (["--trainer.max_epochs", "1.5"], "--trainer.max_epochs: '1.5' is not an integer"),
    (["--trainer.precision", "99-weird"], "--trainer.precision: '99-weird' is not an integer or one of "),
    (["--model.lr", "abc"], "lr: 'abc' is not a number"),
    (["--trainer.max_epoch", "2"], "unrecognized arguments: --trainer.max_epoch 2"),
    (["--trainer.precision", "16-mixed"], "trainer.precision 16-mixed needs a CUDA GPU"),
    (["--trainer.precision", "16-true"], "trainer.precision 16-true needs a CUDA GPU"),
])
def test_wrong_values_name_their_key(cli, capsys, tmp_path: Path, args, message) -> None:
    import torch

    if "16-" in args[-1] and torch.cuda.is_available():
        pytest.skip("16-bit precision is allowed on a GPU")
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)
    assert not (tmp_path / "lightning_logs").exists()


def test_free_runs_use_one_thread_and_restore_the_count() -> None:
    import numpy as np
    import torch

    from stiffml.evaluation.free_run import scored_free_run

    seen = []

    class Model:
        def free_run(self, dm, settings):
            seen.append(torch.get_num_threads())
            t = np.linspace(0, 1, 5)
            y = np.stack([t, t ** 2], axis=1)
            return {"t": t, "pred": y, "reference": y}

    class Data:
        hparams = type("H", (), {"split": "random"})()

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run, metrics = scored_free_run(Model(), Data())
        assert seen == [1] and torch.get_num_threads() == 2
        assert metrics["val_rollout_nmae"] == 0.0
    finally:
        torch.set_num_threads(before)


def test_an_sbml_model_without_species_is_one_line(cli, capsys, tmp_path: Path) -> None:
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    model.setId("empty")
    k = model.createParameter()
    k.setId("k"), k.setValue(1.0), k.setConstant(True)
    path = tmp_path / "empty.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    code = cli("fit", "--config", CONF / "sbml_tyson_fcnn_tiny.yaml", "--data.model", path, "--data.t_span", "[0, 1]",
               "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, "system 'sbml-empty' has no state to learn")
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_fit_says_which_precision_runs(tmp_path: Path) -> None:
    from ..conftest import run_stiffml

    proc = run_stiffml("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.precision", "32-true",
                       "--trainer.accelerator", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "precision: 32-true on cpu" in proc.stdout + proc.stderr
    assert "Tip" not in proc.stdout + proc.stderr and "LeafSpec" not in proc.stderr


def test_a_file_as_the_root_folder_is_named_before_training(tmp_path: Path, cli, capsys) -> None:
    (tmp_path / "afile").write_text("")
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path / "afile" / "runs")
    assert_one_line_error(code, capsys, f"trainer.default_root_dir '{tmp_path / 'afile' / 'runs'}' is a file, not a folder")
    assert code == 2


def test_a_full_disk_while_checkpointing_is_one_line_naming_the_file(tmp_path: Path, cli, capsys, monkeypatch) -> None:
    real = torch.save

    def full(obj, f, *args, **kwargs):  # what torch.save raises when the disk fills up
        if isinstance(obj, dict) and "state_dict" in obj:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", "1")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code != 0 and len(lines) == 1 and "cannot write the checkpoint" in lines[0], lines
    assert "no space left on the device" in lines[0] and ".ckpt" in lines[0]
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("*.tmp"))  # nothing half-written


@pytest.mark.slow
def test_a_full_cache_disk_names_the_cache_and_the_way_out(tmp_path: Path, cli, capsys, monkeypatch) -> None:
    import errno

    import numpy as np

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    code = cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path / "runs",
               "--data.cache_dir", tmp_path / "cache")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code != 0 and len(lines) == 1, lines
    assert "cannot write the trajectory cache" in lines[0] and "no space left on the device" in lines[0]
    assert "--data.cache_dir (or STIFFML_CACHE_DIR)" in lines[0]
