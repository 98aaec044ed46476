"""Shared fixtures: an isolated trajectory cache and an in-process CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).parent / "conf"
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stiffml-cache")
    os.environ["STIFFML_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _no_stale_log_streams():
    """Lightning attaches a StreamHandler to the ``sys.stderr`` of the moment it is imported; under
    capsys that stream is closed one test later and logging prints "--- Logging error ---"
    tracebacks into the next test's stderr. pytest's own log capture shows these messages."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
    yield


@pytest.fixture
def cli():
    """Run ``stiffml ARGS`` in-process; returns the exit code."""
    from stiffml.main import main

    return lambda *args: main([str(a) for a in args])


def run_stiffml(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``stiffml`` console script in a subprocess."""
    exe = Path(sys.executable).parent / "stiffml"
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )


def assert_one_line_error(code: int, capsys: pytest.CaptureFixture, message: str) -> None:
    """The CLI exited non-zero with exactly one ``stiffml: error:`` line containing ``message``."""
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stiffml: error:")]
    assert code != 0 and len(err) == 1 and message in err[0], err


def logged_events(version: Path):
    """The TensorBoard scalars a run logged in its ``version_N`` folder, loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(version))
    acc.Reload()
    return acc
