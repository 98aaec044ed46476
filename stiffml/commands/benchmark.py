"""``stiffml benchmark``: run suites of configs for N seeds, aggregate, report and plot.

Every run goes through the same path as ``stiffml fit`` (StiffCLI), so a plugin model appears in
a benchmark just by naming its config; nothing here knows model names. A finished run leaves a
``result.json`` in its folder and is skipped when the benchmark is run again; a run that fails
is recorded with its error and the benchmark goes on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stiffml.errors import OneLineArgumentParser
from stiffml.io import atomic_write
from stiffml.commands.jobs import clear_partial, lost_run
from stiffml.evaluation.plots import SKIPPED_FIGURES, write_figures

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped in the package; ./configs links here
SUITES_DIR = CONFIGS_DIR / "suites"
FIELDS = [
    "suite", "config", "label", "system", "model", "seed", "status", "error", "n_params", "lr",
    "train_loss", "val_loss", "val_nmae", "val_rel_l2", "val_rollout_nmae", "val_rollout_nmae_worst", "val_rollout_rel_l2",
    "val_rollout_mse", "val_rollout_mse_long",
    "val_energy_drift", "learned_damping", "fit_seconds", "steps", "system_class", "system_params",
    "steps_per_second", "stop_step", "epochs", "device", "precision", "versions", "run_dir",
]


@dataclass
class SuiteRun:
    """One config of a suite, with the paper's figures to print beside ours."""

    config: str
    args: list[str] = field(default_factory=list)
    label: str | None = None
    paper: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the resolved config file (``config`` is kept as written)

    @property
    def key(self) -> str:
        """Table key: the label, else the config's file name."""
        return self.label or Path(self.config).stem

    @property
    def folder(self) -> str:
        """The key as a single folder name (no path separators or spaces)."""
        return re.sub(r"[^\w.+=-]+", "_", self.key).strip("_") or "run"


@dataclass
class Suite:
    name: str
    runs: list[SuiteRun]
    repeats: int = 5
    description: str = ""


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def resolve_config(name: str, base: Path | None = None) -> str:
    """The file a config name in a suite (or ``--configs``) means, wherever stiffml runs from.

    Tried in order: an absolute path; relative to ``base`` (the folder of the suite file that
    names it); relative to the shipped configs (``bz_fcnn.yaml``, ``tiny/bz_fcnn_tiny.yaml``; a
    leading ``configs/`` is accepted); relative to the working folder.
    """
    given = Path(name)
    candidates = [given] if given.is_absolute() else []
    if not given.is_absolute():
        if base is not None:
            candidates.append(base / given)
        candidates.append(CONFIGS_DIR / given)
        if given.parts[:1] == ("configs",):
            candidates.append(CONFIGS_DIR.joinpath(*given.parts[1:]))
        candidates.append(given)
    for path in candidates:
        if path.is_file():
            return str(path)
    raise ValueError(f"config {name!r} not found (looked in the working folder"
                     f"{', ' + str(base) if base is not None else ''} and {CONFIGS_DIR})")


def _number(value: Any) -> Any:
    """PyYAML reads ``1.29e4`` (no exponent sign) as a string; the paper's figures are numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def distinct_keys(runs: list[SuiteRun], where: str) -> None:
    """Give unlabelled runs of configs that share a file name (in different folders) their paths
    as labels, then refuse two runs with one label or one run folder, which would overwrite each
    other's results."""
    paths_by_stem: dict[str, set[str]] = {}
    for run in runs:
        if run.label is None:
            paths_by_stem.setdefault(Path(run.config).stem, set()).add(str(Path(run.path or run.config).resolve()))
    for run in runs:
        if run.label is None and len(paths_by_stem[Path(run.config).stem]) > 1:
            run.label = str(Path(run.config).with_suffix(""))
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        for name in {run.key, f"folder:{run.folder}"}:
            if name in seen:
                raise ValueError(f"{where}: runs {seen[name] + 1} and {i + 1} both have the label "
                                 f"{runs[seen[name]].key!r}/{run.key!r} (folder runs/{run.folder}), so one would "
                                 "overwrite the other; give them distinct labels")
            seen[name] = i


def load_suite(name: str) -> Suite:
    """Load a shipped suite by name (``smoke``, ``paper-table1``, ...) or a suite file, with
    every config it names resolved to a file (:func:`resolve_config`)."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown suite {name!r}; valid: {suite_names()} or a suite .yaml file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"suite file {path} is not valid YAML: {' '.join(str(err).split())[:200]}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"suite file {path} must be a mapping with 'runs', got {type(raw).__name__}")
    try:
        runs = [SuiteRun(**r) for r in raw.get("runs") or []]
    except TypeError as err:
        raise ValueError(f"suite file {path}: bad run entry ({err}); keys: config, args, label, paper") from None
    if not runs:
        raise ValueError(f"suite {name!r} has no runs")
    for run in runs:
        run.paper = {k: _number(v) for k, v in (run.paper or {}).items()}
        try:
            run.path = resolve_config(run.config, path.parent)
        except ValueError as err:
            raise ValueError(f"suite {raw.get('name', path.stem)!r} names a missing config: {err}") from None
    distinct_keys(runs, f"suite file {path}")
    return Suite(raw.get("name", path.stem), runs, int(raw.get("repeats", 5)), raw.get("description", ""))


def _versions() -> str:
    import lightning
    import torch

    import stiffml

    return f"stiffml {stiffml.__version__}, torch {torch.__version__}, lightning {lightning.__version__}, python {platform.python_version()}"


def _raising_parser() -> type:
    from stiffml.commands.cli import StiffArgumentParser
    from stiffml.errors import condense

    class Raising(StiffArgumentParser):
        """Raises the parse error as an exception (the CLI's parser prints it and exits), so one
        run's bad config or option becomes that run's failed record."""

        def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
            raise ValueError(condense(message))

    return Raising


def run_one(suite: str, run: SuiteRun, seed: int, run_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Train one config with one seed through StiffCLI; return its record (never raises)."""
    from stiffml.commands.cli import StiffCLI
    from stiffml.evaluation.free_run import PredictionWriter
    from stiffml.training.experiment import run_experiment

    from stiffml.commands.argv import check_argv

    RaisingArgumentParser = _raising_parser()

    record: dict[str, Any] = {"suite": suite, "config": run.config, "label": run.label, "seed": seed,
                              "run_dir": str(run_dir), "versions": _versions(), "status": "failed"}
    clear_partial(run_dir)
    try:
        args = ["--config", run.path or run.config, *run.args, *extra, f"--seed_everything={seed}",
                f"--trainer.default_root_dir={run_dir}", f"--prediction.output_dir={run_dir / 'predictions'}",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_model_summary=false"]
        check_argv(args)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
            cli = StiffCLI(args=args, run=False, parser_class=RaisingArgumentParser)
        model, dm, trainer = cli.model, cli.datamodule, cli.trainer
        record.update(model=type(model).__name__, system=dm.system.name, n_params=model.n_params,
                      system_class=f"{type(dm.system).__module__}.{type(dm.system).__qualname__}",
                      system_params=json.dumps(dm.system.init_kwargs()),
                      lr=float(model.hparams.lr), device=str(trainer.strategy.root_device),
                      ref_rtol=dm.hparams.get("ref_rtol"), ref_atol=dm.hparams.get("ref_atol"),
                      precision=str(trainer.precision))
        writer = any(isinstance(cb, PredictionWriter) for cb in trainer.callbacks)
        exp = run_experiment(trainer, model, dm, validate=True, predict=writer)
        metrics = exp.metrics
        long_key = next((k for k in metrics if k.startswith("val_rollout_mse_")), None)  # physics: 10x horizon
        record.update(
            {k: metrics.get(k) for k in ("train_loss", "val_loss", "val_nmae", "val_rel_l2", "val_rollout_nmae",
                                         "val_rollout_nmae_worst", "val_rollout_rel_l2", "val_rollout_mse", "val_energy_drift",
                                         "learned_damping")},
            val_rollout_mse_long=metrics.get(long_key) if long_key else None,
            fit_seconds=exp.fit_seconds, steps=exp.steps, steps_per_second=exp.steps / exp.fit_seconds,
            stop_step=exp.stop_step, epochs=exp.epochs, status="ok",
        )
        curve = _loss_curve(Path(trainer.log_dir or run_dir))
        atomic_write(run_dir / "curve.json", json.dumps(curve))
    except (Exception, SystemExit) as err:  # a failing config is recorded and the benchmark goes on
        record["error"] = f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]
        atomic_write(run_dir / "traceback.txt", traceback.format_exc())
    return record


def _loss_curve(log_dir: Path) -> dict[str, list[float]]:
    """Epoch-mean training loss from a run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    if "train_loss" not in acc.Tags().get("scalars", []):
        return {"epoch": [], "train_loss": []}
    points = acc.Scalars("train_loss")
    return {"epoch": list(range(1, len(points) + 1)), "train_loss": [p.value for p in points]}


def mean_std(values: list[float | None]) -> tuple[float, float, int]:
    """Mean and sample standard deviation of the finite values (nan if none; std 0 for one)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan"), 0
    arr = np.asarray(vals, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, len(arr)


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config: mean ± std of every metric over its successful seeds."""
    rows = []
    for key in dict.fromkeys(_key(r) for r in records):
        runs = [r for r in records if _key(r) == key]
        ok = [r for r in runs if r.get("status") == "ok"]
        first = (ok or runs)[0]
        row = {"key": key, "config": first["config"], "label": first.get("label") or first.get("model") or key,
               "system": first.get("system"), "model": first.get("model"), "n_params": first.get("n_params"),
               "lr": first.get("lr"), "runs": len(runs), "failed": len(runs) - len(ok)}
        for key in ("train_loss", "val_loss", "val_nmae", "val_rel_l2", "val_rollout_nmae", "val_rollout_nmae_worst",
                    "val_rollout_rel_l2", "val_rollout_mse",
                    "val_rollout_mse_long", "val_energy_drift", "learned_damping", "fit_seconds", "steps_per_second",
                    "epochs"):
            row[key] = mean_std([r.get(key) for r in ok])
        rows.append(row)
    return rows


def _key(record: dict[str, Any]) -> str:
    return record.get("label") or Path(record["config"]).stem


def _fmt(ms: tuple[float, float, int]) -> str:
    mean, std, n = ms
    if n == 0 or not math.isfinite(mean):
        return "–"
    return f"{mean:.3g} ± {std:.2g}" if n > 1 else f"{mean:.3g}"


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3g}"


def write_report(out: Path, suite: Suite | None, records: list[dict[str, Any]]) -> str:
    """Write results.csv, results.json and report.md into ``out``; returns the report text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write(out / "results.csv", buf.getvalue())
    atomic_write(out / "results.json", json.dumps(records, indent=1, default=str))
    paper = {r.key: r.paper for r in suite.runs} if suite else {}
    rows = aggregate(records)
    lines = [f"# Benchmark: {suite.name if suite else 'configs'}", ""]
    if suite and suite.description:
        lines += [suite.description, ""]
    ok = [r for r in records if r.get("status") == "ok"]
    if ok:
        lines += [f"Device: {ok[0].get('device')}, precision {ok[0].get('precision')}; {ok[0].get('versions')}.", ""]
    physics = any(r.get("val_rollout_mse") is not None for r in ok)
    lines += _table(PHYSICS_TABLE if physics else PAPER_TABLE, rows, paper)
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{r['config']}` seed {r['seed']}: {r.get('error')}" for r in failed]
    figures = sorted(p.name for p in out.glob("*.png"))
    if figures:
        lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in figures]
    try:
        skipped = json.loads((out / SKIPPED_FIGURES).read_text())
    except (OSError, ValueError):
        skipped = {}
    if skipped:
        lines += ["", "Figures not drawn:", ""] + [f"- `{name}`: {why}" for name, why in skipped.items()]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "report.md", text)
    return text


Column = tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]]


def _ours(key: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda row, paper: _fmt(row[key])


def _paper(key: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda row, paper: _num(paper.get(key))


def _free_run_nmae(row: dict[str, Any], paper: dict[str, Any]) -> str:
    """The free run's NMAE; a pointwise model's prediction is its free run, so its one-step NMAE."""
    ms = row["val_rollout_nmae"]
    return _fmt(ms if ms[2] else row["val_nmae"])


_HEAD: list[Column] = [("system", lambda r, p: r["system"] or "–"), ("model", lambda r, p: r["label"]),
                       ("params", lambda r, p: str(r["n_params"] or "–"))]
_TAIL: list[Column] = [("fit time (s)", _ours("fit_seconds"))]
_RUNS: Column = ("runs (failed)", lambda r, p: f"{r['runs']} ({r['failed']})")

PAPER_TABLE = (
    "Mean ± standard deviation over seeds. *loss* is the final epoch's mean training loss (the paper's\n"
    "figure); *val rel. L2* is the held-out relative L2 error in physical units. *free-run NMAE* (the\n"
    "headline) is the model's rollout from the first true state(s) (temporal and neural-ODE models;\n"
    "pointwise models are scored on their one-step predictions, which are already free-running): each\n"
    "state's mean absolute error over its own range, averaged over states, so a flat line cannot pass\n"
    "on small states; *worst state* is the largest of those per-state errors (the species followed\n"
    "worst, which a mean over many species can hide); *free-run rel. L2* is the same rollout's\n"
    "relative L2. Paper columns are\n"
    "Zhang et al. (2024), Tables 1 and 2.",
    [*_HEAD, ("paper params", _paper("params")), ("lr", lambda r, p: _num(r["lr"])), ("epochs", _ours("epochs")),
     ("loss", _ours("train_loss")), ("paper loss", _paper("loss")), ("val rel. L2", _ours("val_rel_l2")),
     ("free-run NMAE", _free_run_nmae),
     ("worst state", _ours("val_rollout_nmae_worst")), ("free-run rel. L2", _ours("val_rollout_rel_l2")), *_TAIL, ("paper time (s)", lambda r, p: str(p.get("time", "–"))),
     _RUNS],
)
PHYSICS_TABLE = (
    "Mean ± standard deviation over seeds. *test MSE* is the derivative MSE on held-out trajectories\n"
    "(the seed's metric; q̈ only for Lagrangian models); *rollout NMAE* (each state's mean absolute error\n"
    "over its range, averaged) and *rollout MSE* are the free run of the learned\n"
    "field from the held-out initial states over 1× and 10× the training horizon; *energy drift* is the\n"
    "mean over held-out trajectories of the largest relative change of the true energy (γ = 0 only);\n"
    "*damping* is a dissipative HNN's learned γ. Seed columns: Yaguchi (2025).",
    [*_HEAD, ("train MSE", _ours("train_loss")), ("seed train", _paper("train")), ("test MSE", _ours("val_loss")),
     ("seed test", _paper("test")), ("rollout NMAE 1×", _ours("val_rollout_nmae")), ("rollout MSE 1×", _ours("val_rollout_mse")),
     ("rollout MSE 10×", _ours("val_rollout_mse_long")), ("energy drift", _ours("val_energy_drift")),
     ("damping", _ours("learned_damping")), *_TAIL, _RUNS],
)


def _table(spec: tuple[str, list[Column]], rows: list[dict[str, Any]], paper: dict[str, dict]) -> list[str]:
    """A markdown table: the intro text, a header, one line per aggregated row."""
    intro, columns = spec
    lines = [*intro.splitlines(), "", "| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        p = paper.get(row["key"], {})
        lines.append("| " + " | ".join(cell(row, p) for _, cell in columns) + " |")
    return lines


def _run_job(suite: str, run: SuiteRun, seed: int, run_dir: Path, extra: list[str], threads: int | None) -> dict[str, Any]:
    """One job, also in a worker process: train, then write its ``result.json`` (resume marker)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    record = run_one(suite, run, seed, run_dir, extra)
    atomic_write(run_dir / "result.json", json.dumps(record, default=str))
    return record


def run_benchmark(
    suite: Suite, out: Path, repeats: int | None, extra: list[str], jobs: int = 1, ray: Any = None
) -> list[dict[str, Any]]:
    """Run (or resume) every config × seed of a suite, then write results, report and figures.

    With ``jobs > 1`` the runs go to that many worker processes (spawned), each with
    ``cpu_count // jobs`` torch threads: the physics family's models are tiny and CPU-bound, so
    several runs side by side use a many-core machine far better than one. With ``ray`` (a
    :class:`~stiffml.commands.ray_executor.RayOptions`, Ray already connected) they go to Ray tasks.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    n = suite.repeats if repeats is None else repeats
    todo = [(run, seed) for run in suite.runs for seed in range(n)]
    records: dict[tuple[str, int], dict[str, Any]] = {}
    pending = []
    for run, seed in todo:
        previous = _finished(out / "runs" / run.folder / f"seed{seed}" / "result.json")
        if previous is not None:
            records[(run.key, seed)] = previous
        else:  # never run, failed, or its record is unreadable: run it (again)
            pending.append((run, seed))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn()) as progress:
        task = progress.add_task(f"benchmark {suite.name}", total=len(todo), completed=len(records))

        def done(key: tuple[str, int], record: dict[str, Any]) -> None:
            records[key] = record
            progress.advance(task)

        if ray is not None and pending:
            from stiffml.commands.ray_executor import run_on_ray

            run_on_ray(suite.name, pending, lambda run, seed: out / "runs" / run.folder / f"seed{seed}", extra, ray, done,
                       job=_run_job)
        elif jobs <= 1:
            for run, seed in pending:
                progress.update(task, description=f"{run.key} seed {seed}")
                records[(run.key, seed)] = _run_job(suite.name, run, seed, out / "runs" / run.folder / f"seed{seed}", extra, None)
                progress.advance(task)
        elif pending:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures = {
                    pool.submit(_run_job, suite.name, run, seed, out / "runs" / run.folder / f"seed{seed}", extra, threads): (run.key, seed)
                    for run, seed in pending
                }
                runs = {(run.key, seed): (run, seed) for run, seed in pending}
                for future in as_completed(futures):
                    key = futures[future]
                    try:
                        records[key] = future.result()
                    except Exception as err:  # the worker died (killed, out of memory)
                        run, seed = runs[key]
                        records[key] = lost_run(suite.name, run, seed, out / "runs" / run.folder / f"seed{seed}",
                                                f"worker died: {type(err).__name__}: {err}")
                    progress.advance(task)
    ordered = [records[(run.key, seed)] for run, seed in todo]
    # The records and report first, so that nothing a figure does can lose them.
    write_report(out, suite, ordered)
    if write_figures(out, ordered):
        write_report(out, suite, ordered)  # again, now listing the figures
    return ordered


def _finished(path: Path) -> dict[str, Any] | None:
    """A run's earlier record if it finished successfully, else None (so it is run again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "ok" else None


def main(argv: list[str]) -> int:
    """``stiffml benchmark (--suite NAME | --configs A.yaml …) --out DIR [--repeats N] [-- CLI args]``."""
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    else:
        extra = []
    p = OneLineArgumentParser(prog="stiffml benchmark", description=__doc__.splitlines()[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--suite", help=f"a shipped suite ({', '.join(suite_names())}) or a suite file")
    group.add_argument("--configs", nargs="+", help="config files instead of a suite (paths, or shipped names such as bz_fcnn.yaml)")
    p.add_argument("--out", required=True, help="output folder (re-running resumes it)")
    p.add_argument("--repeats", type=int, default=None, help="seeds 0..N-1 (default: the suite's, else 5)")
    p.add_argument("--jobs", type=int, default=1, help="local executor: runs side by side in worker processes (default 1)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: this machine (--jobs); ray: one Ray task per run, on a running cluster or a local one")
    p.add_argument("--ray.address", dest="ray_address", default=None,
                   help="Ray cluster to use: 'auto' (the running one) or HOST:PORT; default: start a local one")
    p.add_argument("--ray.cpus_per_run", dest="ray_cpus", type=float, default=1.0, help="CPUs per run (default 1)")
    p.add_argument("--ray.gpus_per_run", dest="ray_gpus", type=float, default=0.0,
                   help="GPUs per run, fractions allowed (0.25: four runs share a GPU); default 0")
    a = p.parse_args(argv)
    if a.jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {a.jobs}")
    if a.repeats is not None and a.repeats < 1:
        raise ValueError(f"--repeats must be a positive integer, got {a.repeats}")
    if a.suite:
        suite = load_suite(a.suite)
    else:
        suite = Suite("configs", [SuiteRun(c, path=resolve_config(c)) for c in a.configs])
        distinct_keys(suite.runs, "--configs")
    ray_options = None
    if a.executor == "ray":
        from stiffml.commands.ray_executor import RayOptions, connect

        ray_options = RayOptions(a.ray_address, a.ray_cpus, a.ray_gpus)
        ray = connect(ray_options)  # before anything is written: a bad address or request writes nothing
    elif a.ray_address is not None:
        raise ValueError("--ray.address needs --executor ray")
    try:
        return _run_and_report(suite, Path(a.out), a.repeats, extra, a.jobs, ray_options)
    finally:
        if ray_options is not None:
            ray.shutdown()


def _run_and_report(suite: Suite, out: Path, repeats: int | None, extra: list[str], jobs: int, ray: Any) -> int:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".stiffml-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OSError(f"output folder {out} is not writable: {err.strerror or err}") from None
    records = run_benchmark(suite, out, repeats, extra, jobs=jobs, ray=ray)
    failed = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records)} runs ({len(failed)} failed); report: {out / 'report.md'}")
    if failed:
        first = failed[0]
        print(f"stiffml: error: benchmark: {len(failed)} of {len(records)} runs failed (first: {first['config']} "
              f"seed {first['seed']}: {first.get('error')}); they run again when the command is repeated",
              file=sys.stderr)
        return 1
    return 0
