"""Checks that need a CUDA GPU; they skip on machines without one (CI never has one)."""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import CONF

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("config", ["bz_odenet_tiny.yaml", "bz_attenlstm_tiny.yaml"])
def test_free_runs_of_a_model_on_the_gpu(config, tmp_path) -> None:
    """A model trained on the GPU runs its free run (scipy's solvers call its field on the host
    side for the ODE-Net) and writes its predictions."""
    from stiffml.commands.benchmark import SuiteRun, run_one

    record = run_one("gpu", SuiteRun(config=str(CONF / config)), 0, tmp_path,
                     ["--config", "configs/trainer/gpu32.yaml", "--trainer.max_steps=3"])
    assert record["status"] == "ok", record.get("error")
    assert record["device"].startswith("cuda") and record["val_rollout_rel_l2"] is not None
    assert (tmp_path / "predictions" / "predictions.npz").exists()
    json.dumps(record)
