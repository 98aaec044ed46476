"""Every bench script runs at a tiny size, so none rots unnoticed (their figures are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import CONF, REPO

TINY = str(CONF / "bz_fcnn_tiny.yaml")
SCRIPTS = {
    "overhead.py": ["--repeats", "1", "--hidden", "8", "--depth", "2", "--dt", "0.01", "--root", "{tmp}"],
    "cli_startup.py": ["--repeats", "1"],
    "throughput.py": ["--config", TINY, "--epochs", "2", "--root", "{tmp}"],
    "rollout.py": ["--steps", "200", "--naive-steps", "20", "--threads", "1"],
    "ensemble_solve.py": ["--separate", "1"],
    "robertson.py": ["--adam-epochs", "1", "--epochs", "2", "--max-steps", "500", "--root", "{tmp}"],
    "sync_probe.py": [TINY],
    "sbml_examples.py": ["--every", "50"],
    "petab_nllh.py": [str(REPO / "tests" / "petab_cases"), "--repeats", "1"],
    "free_run_threads.py": ["--steps", "200", "--train-steps", "2"],
    "petab_batched.py": [str(REPO / "tests" / "petab_cases"), "--starts", "2"],
    "hybrid_step.py": ["--t-end", "1", "--repeats", "1"],
    "petab_multistart.py": [str(REPO / "tests" / "petab_cases" / "0001" / "_0001.yaml"), "--starts", "2"],
    "surrogate_vs_solver.py": ["--ckpt", "{tmp}/lightning_logs/version_0/checkpoints/last.ckpt", "--repeats", "1",
                               "--members", "2"],
}
# scripts that read a trained run: a two-step fit of a tiny config first
TRAINED = {"surrogate_vs_solver.py": CONF / "robertson_rates_tiny.yaml"}
GPU_ONLY = {"sync_probe.py"}


def test_every_bench_script_is_listed() -> None:
    assert {p.name for p in (REPO / "bench").glob("*.py")} == set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_bench_script_runs_at_a_tiny_size(script: str, tmp_path: Path) -> None:
    if script in GPU_ONLY and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    args = [a.format(tmp=tmp_path) for a in SCRIPTS[script]]
    if script in TRAINED:
        fit = subprocess.run([sys.executable, "-m", "stiffml", "fit", "--config", str(TRAINED[script]),
                              "--trainer.default_root_dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                             timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert fit.returncode == 0, fit.stderr[-3000:]
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "printed nothing"


def test_gpu_tables_script_parses() -> None:
    proc = subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_tables.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
