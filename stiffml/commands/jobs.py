"""What one benchmark job leaves behind, shared by the benchmark and its executors.

``stiffml.commands.benchmark`` runs jobs (locally or on worker processes) and ``stiffml.commands.ray_executor`` runs
them on Ray; both mark a finished job by its ``result.json`` and record a lost one with
:func:`lost_run`. These helpers live here so that neither executor imports the other (the job
function itself is handed to the Ray executor by the benchmark).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from stiffml.io import atomic_write


PARTIAL = ("lightning_logs", "predictions", "traceback.txt", "curve.json")


def clear_partial(run_dir: Path) -> None:
    """Remove what an unfinished attempt of this run left (an interrupted benchmark's
    ``lightning_logs/version_0``, its predictions): a run without ``result.json`` starts again from
    nothing, so its curves and figures never mix two attempts (a stale ``version_0`` beside the
    new ``version_1``)."""
    if (run_dir / "result.json").exists():
        return
    for name in PARTIAL:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)


def lost_run(suite: str, run: Any, seed: int, run_dir: Path, error: str) -> dict[str, Any]:
    """The failed record of a run whose worker died, written as its ``result.json`` too."""
    record = {"suite": suite, "config": run.config, "label": run.label, "seed": seed, "status": "failed",
              "error": " ".join(error.split())[:500], "run_dir": str(run_dir)}
    atomic_write(run_dir / "result.json", json.dumps(record, default=str))
    return record
