"""Every shipped run config parses and instantiates through the CLI (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stiffml.cli import StiffCLI

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_instantiates(config: Path, tmp_path) -> None:
    cli = StiffCLI(args=["--config", str(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model.consumes(dict(cli.model.hparams)) == cli.datamodule.representation
    assert (cli.model.hparams.n_inputs, cli.model.hparams.n_outputs) == (cli.datamodule.n_inputs, cli.datamodule.n_outputs)
    assert cli.trainer.max_epochs >= 1


def test_there_are_paper_configs() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"bz_attenlstm", "bz_fcnn", "vdp_fcnn", "bz_odenet", "vdp_odenet", "robertson_odenet"} <= names
