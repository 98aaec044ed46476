"""The benchmark's figures, one function each, drawn from its run records.

Each figure is drawn from the runs that can be drawn (finished, with finite values); a figure that
still fails is skipped with a warning, so a figure can never cost the results or the report.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stiffml.io import atomic_write


def _label(record: dict[str, Any]) -> str:
    return record.get("label") or record["model"]


def _finite_curve(path: Path) -> list[float]:
    if not path.exists():
        return []
    curve = json.loads(path.read_text()).get("train_loss") or []
    return curve if all(math.isfinite(v) for v in curve) else []


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


def loss_curves(out: Path, ok: list[dict[str, Any]]) -> list[Path]:
    """Training loss per epoch, mean ± std band over seeds on a log scale, one panel per system."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(map(_label, ok)))
    systems = list(dict.fromkeys(r["system"] for r in ok))
    fig, axes = plt.subplots(1, len(systems), figsize=(6 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems):
        for i, label in enumerate(labels):
            curves = [_finite_curve(Path(r["run_dir"]) / "curve.json") for r in ok
                      if r["system"] == system and _label(r) == label]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(map(len, curves))
            arr = np.log10(np.clip(np.array([c[:n] for c in curves]), 1e-300, None))
            epochs = np.arange(1, n + 1)
            mean, std = arr.mean(0), arr.std(0)
            ax.plot(epochs, 10**mean, color=f"C{i}", label=label)
            ax.fill_between(epochs, 10 ** (mean - std), 10 ** (mean + std), color=f"C{i}", alpha=0.2)
        ax.set_yscale("log")
        ax.set(title=f"{system}: training loss (mean ± std over seeds)", xlabel="epoch", ylabel="MSE (normalised units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return [_save(fig, out / "loss_curves.png")]


def run_times(out: Path, ok: list[dict[str, Any]]) -> list[Path]:
    """Box plot of fit wall time per system and model over seeds."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(map(_label, ok)))
    systems = list(dict.fromkeys(r["system"] for r in ok))
    groups = [(s, label) for s in systems for label in labels
              if any(r["system"] == s and _label(r) == label for r in ok)]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) * len(systems)), 4))
    ax.boxplot([[r["fit_seconds"] for r in ok if r["system"] == s and _label(r) == label] for s, label in groups])
    ax.set_xticks(range(1, len(groups) + 1), [f"{s}\n{label}" for s, label in groups], fontsize=8)
    ax.set(ylabel="fit wall time (s)", title="Run time per model over seeds")
    ax.grid(alpha=0.3, axis="y")
    return [_save(fig, out / "run_times.png")]


def _predictions(run: dict[str, Any]) -> Path:
    return Path(run["run_dir"]) / "predictions" / "predictions.npz"


def predictions(out: Path, ok: list[dict[str, Any]]) -> list[Path]:
    """Per system: the best run of each model (lowest val rel. L2) against the reference; phase
    portraits for ensemble systems."""
    import matplotlib.pyplot as plt

    made = []
    for system in dict.fromkeys(r["system"] for r in ok):
        best: dict[str, dict] = {}
        for r in ok:
            value = r.get("val_rel_l2")
            if r["system"] != system or value is None or not math.isfinite(value):
                continue
            if _label(r) not in best or value < best[_label(r)]["val_rel_l2"]:
                best[_label(r)] = r
        preds = {k: v for k, v in best.items() if _predictions(v).exists()}
        if not preds:
            continue
        first = np.load(_predictions(next(iter(preds.values()))))
        names = [str(n) for n in first["state_names"]]
        if "rollout" in first and first["rollout"].ndim == 3:
            made.append(phase_portraits(out / f"phase_{system}.png", system, preds, names))
            continue
        fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.3 * len(names)), sharex=True, squeeze=False)
        for j, name in enumerate(names):
            ax = axes[j, 0]
            order = np.argsort(first["t"])
            ax.plot(first["t"][order], first["reference"][order, j], "k-", lw=1.5, label="reference")
            for i, (label, r) in enumerate(preds.items()):
                d = np.load(_predictions(r))
                if "rollout" in d:
                    ax.plot(d["t_rollout"], d["rollout"][:, j], "--", color=f"C{i}", lw=1, label=f"{label} (free run)")
                else:
                    o = np.argsort(d["t"])
                    ax.plot(d["t"][o], d["prediction"][o, j], "--", color=f"C{i}", lw=1, label=label)
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7, loc="upper right")
        axes[-1, 0].set_xlabel("t (s)")
        if log_time_axis(first["t"]):  # a log grid: on a linear axis all dynamics sit in the first pixel
            axes[-1, 0].set_xscale("log")
        fig.suptitle(f"{system}: best run of each model vs reference")
        made.append(_save(fig, out / f"predictions_{system}.png"))
    return made


def phase_portraits(path: Path, system: str, preds: dict[str, dict], names: list[str]) -> Path:
    """One panel per model: its first held-out trajectory, true vs free run, in the phase plane.

    (Ensemble configs of one system may differ in parameters, so each panel has its own truth.)"""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(preds), figsize=(3.6 * len(preds), 3.6), squeeze=False)
    for ax, (label, r) in zip(axes[0], preds.items()):
        d = np.load(_predictions(r))
        ax.plot(d["reference_rollout"][0, :, 0], d["reference_rollout"][0, :, 1], "k-", lw=1.2, label="true")
        ax.plot(d["rollout"][0, :, 0], d["rollout"][0, :, 1], "C1--", lw=1.0, label="learned")
        ax.set(title=label, xlabel=names[0], ylabel=names[1])
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{system}: first held-out trajectory over the long horizon, best run of each model")
    return _save(fig, path)


def _system_of(record: dict[str, Any]) -> Any:
    """The run's system, rebuilt from the class and parameters its record holds (plugin systems
    included); older records without them fall back to the built-in zoo by name."""
    path = record.get("system_class")
    if not path:
        from stiffml.systems import get_system

        return get_system(record["system"])
    module, _, name = path.rpartition(".")
    params = json.loads(record.get("system_params") or "{}")
    return getattr(importlib.import_module(module), name)(**params)


def log_time_axis(t: np.ndarray) -> bool:
    """Whether times are best shown on a log axis: a grid whose steps grow (log-spaced), all
    positive, over three decades or more. A uniform grid stays linear however many decades its
    first point is below its last (VdP's 0.02 … 400 s is an oscillation, not a cascade)."""
    t = np.asarray(t, dtype=np.float64)
    if t.size < 3 or not bool(t.min() > 0) or t.max() / t.min() < 1e3:
        return False
    steps = np.diff(t)
    return bool(steps[-1] >= 10 * steps[0])


def stiffness_ratio(out: Path, ok: list[dict[str, Any]]) -> list[Path]:
    """The stiffness ratio (Definition 1 of Zhang et al.) along each system's reference."""
    import matplotlib.pyplot as plt

    firsts = {r["system"]: r for r in reversed(ok)}
    systems = list(dict.fromkeys(r["system"] for r in ok))
    fig, axes = plt.subplots(1, len(systems), figsize=(6 * len(systems), 3.5), squeeze=False)
    for ax, system in zip(axes[0], systems):
        s = _system_of(firsts[system])
        grid = s.default_grid()
        t = grid[:: max(1, len(grid) // 400)]
        first = firsts[system]
        # the run's own reference tolerances: a system whose species stay below 1e-10 fails at
        # looser ones (records without them: the datamodules' defaults)
        traj = s.solve(t, rtol=float(first.get("ref_rtol") or 1e-10), atol=float(first.get("ref_atol") or 1e-12))
        ax.semilogy(traj.t, [s.stiffness_ratio(y) for y in traj.y])
        if log_time_axis(traj.t):
            ax.set_xscale("log")
        ax.set(title=f"{system}: stiffness ratio along the reference", xlabel="t (s)", ylabel="S = max|Re λ| / min|Re λ|")
        ax.grid(alpha=0.3)
    return [_save(fig, out / "stiffness_ratio.png")]


SKIPPED_FIGURES = "figures_skipped.json"

FIGURES: list[Callable[[Path, list[dict[str, Any]]], list[Path]]] = [loss_curves, run_times, predictions, stiffness_ratio]


def write_figures(out: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Every figure of :data:`FIGURES` from the successful runs; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    ok = [r for r in records if r.get("status") == "ok" and r.get("fit_seconds") is not None]
    made: list[Path] = []
    if not ok:
        return made
    skipped: dict[str, str] = {}
    for figure in FIGURES:
        try:
            made += figure(out, ok)
        except Exception as err:  # a figure is never worth the report
            reason = f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
            skipped[figure.__name__] = reason
            warnings.warn(f"stiffml benchmark: figure {figure.__name__} skipped: {reason}", stacklevel=2)
            import matplotlib.pyplot as plt

            plt.close("all")
    # the report lists what is missing and why (a warning scrolls away)
    atomic_write(out / SKIPPED_FIGURES, json.dumps(skipped, indent=1))
    return made
