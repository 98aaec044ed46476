"""``stiffml benchmark --executor ray``: each run a Ray task, on a laptop or a cluster.

Ray schedules the tasks (declared CPUs and a GPU fraction per run), retries a task whose worker
died once (``max_retries=1``; an exception inside a run is recorded by the run itself and never
retried), and returns each result to the driver. Workers need not share a filesystem with the
driver: a task trains in a temporary folder on its node and returns its record together with the
files the report needs (the loss curve, the prediction arrays and plot, a traceback); the driver
writes them under ``OUT/runs/<label>/seed<k>/`` as the local executor does. Checkpoints and
TensorBoard events stay on the worker's temporary folder and are deleted with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stiffml.io import atomic_write
from stiffml.commands.jobs import clear_partial, lost_run

# Files of a run folder that travel back to the driver (relative paths; directories recursively).
RETURNED = ("result.json", "curve.json", "traceback.txt", "predictions")


@dataclass
class RayOptions:
    """Where and how runs go to Ray.

    Args:
        address: A running cluster (``auto`` or ``host:port``/``ray://host:port``); None starts a
            local one for the duration of the command.
        cpus_per_run: CPUs Ray reserves per run (also the run's torch threads).
        gpus_per_run: GPUs per run; a fraction such as 0.25 lets four tiny models share a GPU.
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def check(self) -> None:
        if not self.cpus_per_run > 0:
            raise ValueError(f"--ray.cpus_per_run must be positive, got {self.cpus_per_run}")
        if self.gpus_per_run < 0 or (self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run)):
            raise ValueError(f"--ray.gpus_per_run must be 0, a fraction in (0, 1] or a whole number, got {self.gpus_per_run}")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'stiffml[ray]'") from None
    return ray


def _reachable(address: str, timeout: float = 3.0) -> None:
    """Fail within ``timeout`` seconds, naming the address, if nothing listens there (ray.init
    itself keeps retrying an unreachable cluster for a long time)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--ray.address {address!r}: expected 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"--ray.address {address}: cannot reach a Ray cluster there ({err.strerror or err})") from None


def connect(options: RayOptions) -> Any:
    """Connect to (or start) Ray and check that some node can run a task; returns the ``ray``
    module (call ``ray.shutdown()`` when done: it stops a local cluster, or only disconnects)."""
    options.check()
    ray = import_ray()
    if options.address and options.address != "auto":
        _reachable(options.address)
    try:
        if options.address:
            ray.init(address=options.address, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, log_to_driver=False, include_dashboard=False,
                     object_store_memory=256 * 1024**2)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = options.address or "a local cluster"
        raise ValueError(f"--ray.address {where}: {' '.join(str(err).split())[:200]}") from None
    try:
        _check_resources(ray, options)
    except BaseException:
        ray.shutdown()
        raise
    return ray


def _check_resources(ray: Any, options: RayOptions) -> None:
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    if options.gpus_per_run > 0 and gpus == 0:
        raise ValueError(f"--ray.gpus_per_run {options.gpus_per_run}: the Ray cluster has no GPUs")
    if options.gpus_per_run > gpus:
        raise ValueError(f"--ray.gpus_per_run {options.gpus_per_run}: no node has more than {gpus:g} GPUs")
    if options.cpus_per_run > cpus:
        raise ValueError(f"--ray.cpus_per_run {options.cpus_per_run:g}: no node has more than {cpus:g} CPUs")


def _task(job: Callable[..., dict[str, Any]], suite: str, run: Any, config_text: str, seed: int, extra: list[str],
          threads: int) -> dict[str, Any]:
    """On a worker: train one run in a temporary folder with ``job`` (the benchmark's job
    function); return its record and report files.

    The config travels as text (the driver's path may not exist on the worker's node)."""
    tmp = Path(tempfile.mkdtemp(prefix="stiffml-ray-"))
    try:
        config = tmp / "config.yaml"
        config.write_text(config_text, encoding="utf-8")
        record = job(suite, dataclasses.replace(run, path=str(config)), seed, tmp / "run", extra, threads)
        files: dict[str, bytes] = {}
        for name in RETURNED:
            path = tmp / "run" / name
            for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
                files[str(file.relative_to(tmp / "run"))] = file.read_bytes()
        record["node"] = socket.gethostname()
        return {"record": record, "files": files}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _store(result: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """On the driver: write a task's files under ``run_dir``; the record now points there."""
    clear_partial(run_dir)  # what an earlier, unfinished attempt left there
    for rel, data in result["files"].items():
        if rel != "result.json":
            atomic_write(run_dir / rel, data)
    record = dict(result["record"], run_dir=str(run_dir))
    atomic_write(run_dir / "result.json", json.dumps(record, default=str))
    return record


def run_on_ray(
    suite: str, pending: list[tuple[Any, int]], folder: Callable[[Any, int], Path], extra: list[str],
    options: RayOptions, done: Callable[[tuple[str, int], dict[str, Any]], None],
    job: Callable[..., dict[str, Any]],
) -> None:
    """Run ``pending`` (run, seed) pairs as Ray tasks of ``job`` (``job(suite, run, seed, run_dir,
    extra, threads) -> record``, the benchmark's, passed in so this module does not import the
    benchmark); ``done(key, record)`` as each finishes.

    The caller must have connected (:func:`connect`). A task whose worker died twice (the first
    death is retried by Ray) is recorded as failed with Ray's error.
    """
    import ray

    remote = ray.remote(_task).options(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                                       max_retries=1, retry_exceptions=False)
    threads = max(1, int(options.cpus_per_run))
    texts = {run.key: Path(run.path or run.config).read_text(encoding="utf-8") for run, _ in pending}
    refs = {remote.remote(job, suite, run, texts[run.key], seed, extra, threads): (run, seed) for run, seed in pending}
    waiting = list(refs)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        run, seed = refs[ready[0]]
        run_dir = folder(run, seed)
        try:
            record = _store(ray.get(ready[0]), run_dir)
        except ray.exceptions.RayError as err:  # the worker died (twice), or the node went away
            record = lost_run(suite, run, seed, run_dir, f"Ray task lost: {type(err).__name__}: {err}")
        done((run.key, seed), record)
