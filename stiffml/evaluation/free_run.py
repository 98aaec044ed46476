"""Free-running evaluation and prediction files, shared by every family with ``free_run``.

A model family opts in by implementing ``free_run(datamodule, settings) -> {t, pred,
reference}`` (physical units; ``settings`` a :class:`~stiffml.evaluation.rollout.RolloutSettings`, the
``--rollout.*`` group). The temporal family feeds its own predictions back; the neural-ODE
family integrates its learned field.
"""

from __future__ import annotations

import contextlib

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from stiffml.io import atomic_write
from stiffml.evaluation.metrics import nmae, nmae_breakdown, nmae_worst, rel_l2, state_range
from stiffml.evaluation.plots import log_time_axis as _log_time
from stiffml.evaluation.rollout import RolloutSettings
from stiffml.solvers.base import Solver
from stiffml.solvers.rosenbrock import StepBudgetExceeded
from stiffml.systems import SolveError

# The scores of a free run that diverged (it never ends up between 0 and 1, so no table mixes it up)
DIVERGED_SCORES = {"val_rollout_nmae": float("inf"), "val_rollout_nmae_worst": float("inf"),
                   "val_rollout_rel_l2": float("inf")}

# What a free run of a diverging model raises (a solver giving up, overflow, a singular matrix).
DIVERGED = (SolveError, StepBudgetExceeded, FloatingPointError, OverflowError, ZeroDivisionError,
            np.linalg.LinAlgError, torch.linalg.LinAlgError)


def rollout_errors(dm: Any, run: dict[str, np.ndarray]) -> dict[str, float]:
    """Errors of a free run: over the held-out span for a time split, else the whole run.

    Returns ``val_rollout_nmae`` (the headline: each state's mean absolute error over its own
    range, averaged over states, see :func:`stiffml.evaluation.metrics.nmae`; for an ensemble of
    held-out members the mean over them, with ``val_rollout_nmae_median`` and
    ``val_rollout_nmae_max`` over the members' own scores), ``val_rollout_nmae_worst``
    (the largest of those per-state terms: the state followed worst) and ``val_rollout_rel_l2``,
    and for a time split the same over the span trained on (``train_rollout_*``). A run that
    diverged to non-finite values scores ``inf``.
    """
    t, pred, ref = run["t"], run["pred"], run["reference"]
    if not np.all(np.isfinite(pred)):
        return dict(DIVERGED_SCORES)
    span = reference_range(dm, ref)

    def scores(prefix: str, mask: Any) -> dict[str, float]:
        out = {f"{prefix}_rollout_nmae": nmae(pred[mask], ref[mask], span),
               f"{prefix}_rollout_nmae_worst": nmae_worst(pred[mask], ref[mask], span),
               f"{prefix}_rollout_rel_l2": rel_l2(pred[mask], ref[mask])}
        if pred.ndim == 3:  # an ensemble: every held-out member's own free run, scored alike
            members = member_errors(pred, ref, span)
            out[f"{prefix}_rollout_nmae_median"] = float(np.median(members))
            out[f"{prefix}_rollout_nmae_max"] = float(np.max(members))
        return out

    data = _free_run_data(dm)
    cut = data.cut if data is not None else None  # the data's own split, not recomputed here
    if cut is not None:
        held = t > cut
        out = {}
        if held.any():
            out.update(scores("val", held))
        if (~held).any():
            out.update(scores("train", ~held))
        return out
    return scores("val", slice(None))


def member_errors(pred: np.ndarray, ref: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Free-run NMAE of each member of an ensemble run (``(m, T, n)``), every member in units of
    the same per-state ranges ``span`` (so their mean is the ensemble's ``val_rollout_nmae``)."""
    return np.array([nmae(p, r, span) for p, r in zip(pred, ref)])


@contextlib.contextmanager
def one_thread():
    """Run the block with one intra-op thread, then restore the count.

    A free run is a sequence of tiny dependent steps: a second thread only adds synchronisation
    (bench/free_run_threads.py prints the ratio; issue #31 measured the VdP RNN's free run at
    180 s with 2 threads and 57 s with one), and other processes on the machine make it far worse.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _free_run_data(dm: Any) -> Any:
    """The datamodule's :class:`~stiffml.evaluation.rollout.FreeRunData`; ``None`` for a datamodule that is not
    a :class:`~stiffml.data.base.SystemDataModule` (the evaluation takes any Lightning datamodule)."""
    return dm.free_run_data() if hasattr(dm, "free_run_data") else None


def reference_range(dm: Any, ref: np.ndarray) -> np.ndarray:
    """Each state's range over the datamodule's whole free-run reference (every time, every
    held-out trajectory), the divisor of the free-run NMAE: a run cut short by
    ``--rollout.length``, or the held-out part of an extrapolation split, is scored in units of the
    state's full range, not of the part it covers (where a species can be flat). Falls back to
    ``ref``'s own range where the datamodule has no reference of that width."""
    data = _free_run_data(dm)
    for full in ((data.reference, data.series) if data is not None else ()):
        if np.ndim(full) >= 2 and np.shape(full)[-1] == np.shape(ref)[-1]:
            return state_range(full)
    return state_range(ref)


def scored_free_run(pl_module: Any, dm: Any, settings: RolloutSettings | None = None) -> tuple[dict | None, dict[str, float]]:
    """The model's free run and its scores; a run that blows up is scored as diverged (inf).

    Returns ``(run, metrics)``; ``run`` is None when the free run raised on its way to infinity.
    """
    try:
        with np.errstate(over="ignore", invalid="ignore"), one_thread():
            run = pl_module.free_run(dm, settings or RolloutSettings())
    except DIVERGED as err:
        rank_zero_warn(f"free run diverged: {type(err).__name__}: {err}; scored as inf")
        return None, dict(DIVERGED_SCORES)
    if getattr(pl_module, "rollout_metrics", None) is not None:  # e.g. the physics family's ensemble scores
        return run, pl_module.rollout_metrics(dm, run)
    return run, rollout_errors(dm, run)


class RolloutEvaluation(pl.Callback):
    """Log ``val_rollout_nmae`` and ``val_rollout_rel_l2``: the model's free run from the first
    true state(s).

    Runs at the end of training (also when a stop rule ends it mid-epoch), in ``validate``, and
    every ``every_n_epochs`` validation epochs if that is positive. Models without ``free_run``
    (the pointwise family, whose prediction is already free-running) are skipped.

    The free-run settings (``--rollout.solver`` …) are the same names with one meaning for every
    family: see :mod:`stiffml.evaluation.rollout`.

    Args:
        every_n_epochs: Also evaluate at every n-th validation epoch (0: only at the end).
        length: Output intervals to run (None: the whole reference).
        solver: ``auto`` (the family's: ODE-Net Radau, physics dopri5), ``Radau`` | ``BDF`` |
            ``LSODA`` (scipy, implicit, the field's Jacobian by autograd), ``rosenbrock23`` or a
            torchdiffeq solver (``dopri5``, ``rk4``, ...); or a solver object with its options,
            e.g. ``--rollout.solver.class_path stiffml.solvers.scipy_solvers.Radau
            --rollout.solver.init_args.max_step 10``.
        rtol: Relative tolerance of free runs.
        atol: Absolute tolerance of free runs in normalised units (None: the family's, ODE-Net
            1e-9, physics 1e-8).
        steps_per_interval: Step budget of adaptive torch solvers per output interval; a free
            run that needs more scores ``inf`` with a warning.
    """

    def __init__(
        self,
        every_n_epochs: int = 0,
        length: int | None = None,
        solver: str | Solver = "auto",
        rtol: float = 1e-6,
        atol: float | None = None,
        steps_per_interval: int = 200,
    ) -> None:
        super().__init__()
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.settings = RolloutSettings(solver=solver, rtol=rtol, atol=atol,
                                        steps_per_interval=steps_per_interval, length=length)
        self._done_at_step: int | None = None

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float] | None:
        dm = trainer.datamodule
        if getattr(pl_module, "free_run", None) is None or dm is None or getattr(dm, "samples", None) is None:
            return None
        start = time.perf_counter()
        _, metrics = scored_free_run(pl_module, dm, self.settings)
        metrics["rollout_seconds"] = time.perf_counter() - start
        self._done_at_step = trainer.global_step
        return metrics

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        fitting = trainer.state.fn == "fit"
        if fitting and not (self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0):
            return
        metrics = self._evaluate(trainer, pl_module)
        for key, value in (metrics or {}).items():
            pl_module.log(key, value, prog_bar=key == "val_rollout_nmae")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._done_at_step == trainer.global_step:
            return
        metrics = self._evaluate(trainer, pl_module)
        if not metrics:
            return
        for key, value in metrics.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
        rank_zero_info("final free run: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


def rollout_settings(trainer: pl.Trainer) -> RolloutSettings:
    """The ``--rollout.*`` settings of a trainer's run (defaults if it has no RolloutEvaluation)."""
    found = [cb.settings for cb in trainer.callbacks if isinstance(cb, RolloutEvaluation)]
    return found[0] if found else RolloutSettings()


def run_folder(ckpt_path: str | os.PathLike) -> Path:
    """The run (version) folder a checkpoint belongs to: the parent of ``checkpoints/``."""
    ckpt = Path(ckpt_path)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


class PredictionWriter(pl.Callback):
    """On ``stiffml predict``: write predictions and the reference (npz, CSV) and a PNG plot.

    Files go to ``<run folder>/predictions/`` where the run folder is the checkpoint's version
    folder (``--ckpt_path``), else the trainer's log folder; or to ``output_dir`` if set.

    Args:
        output_dir: Folder for the files (default: see above).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self._batches: list[dict[str, torch.Tensor]] = []

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(outputs, dict):
            self._batches.append({k: v.detach().cpu() for k, v in outputs.items()})

    def _folder(self, trainer: pl.Trainer) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        if trainer.ckpt_path:
            return run_folder(trainer.ckpt_path) / "predictions"
        return Path(trainer.log_dir or trainer.default_root_dir) / "predictions"

    @rank_zero_only
    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._batches and getattr(pl_module, "free_run", None) is None:
            return  # nothing of a trajectory to write (MechanisticModel writes its own table)
        dm = trainer.datamodule
        names = list(getattr(dm, "outputs", []))
        arrays: dict[str, np.ndarray] = {}
        if self._batches:
            pred = torch.cat([b["pred"] for b in self._batches]).double().numpy()
            arrays["t"] = dm.target_times
            arrays["reference"] = torch.cat([b["target"] for b in self._batches]).double().numpy()
            arrays["prediction"] = pred  # one step ahead from true inputs for window/pair models
        if getattr(pl_module, "free_run", None) is not None:
            run, metrics = scored_free_run(pl_module, dm, rollout_settings(trainer))
            if run is not None:
                arrays.update(t_rollout=run["t"], rollout=run["pred"], reference_rollout=run["reference"])
                if np.all(np.isfinite(run["pred"])):
                    parts = nmae_breakdown(run["t"], run["pred"], run["reference"],
                                           reference_range(dm, run["reference"]))
                    arrays.update(rollout_nmae_per_state=parts["per_state"], rollout_decades=parts["decades"],
                                  rollout_nmae_per_decade=parts["per_decade"])
            arrays.update(metrics)
        folder = self._folder(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, state_names=np.array(names), **arrays)
        atomic_write(folder / "predictions.npz", buf.getvalue())
        atomic_write(folder / "predictions.csv", _csv(arrays, names).encode())
        if "rollout_nmae_per_state" in arrays:
            atomic_write(folder / "free_run_nmae.csv", _breakdown_csv(arrays, names).encode())
        title = type(pl_module).__name__
        if arrays.get("rollout", np.zeros(0)).ndim == 3:  # an ensemble: phase portraits
            atomic_write(folder / "predictions.png", _plot_phase(arrays, names, title))
        else:
            atomic_write(folder / "predictions.png", _plot(arrays, names, title))
        rank_zero_info(f"predictions written to {folder}")


def _csv(arrays: dict[str, Any], names: list[str]) -> str:
    """One row per time; the free run (if any) on its own grid, aligned by time."""
    out = io.StringIO()
    w = csv.writer(out)
    if "rollout" in arrays and arrays["rollout"].ndim == 3:  # ensemble: one block per trajectory
        t, ref, pred = arrays["t_rollout"], arrays["reference_rollout"], arrays["rollout"]
        w.writerow(["trajectory", "t"] + [f"reference_{n}" for n in names] + [f"rollout_{n}" for n in names])
        for j in range(ref.shape[0]):
            for i, ti in enumerate(t):
                w.writerow([j, f"{ti:.10g}"] + [f"{v:.10g}" for v in ref[j, i]] + [f"{v:.10g}" for v in pred[j, i]])
        return out.getvalue()
    if "rollout" in arrays:
        t, ref, pred = arrays["t_rollout"], arrays["reference_rollout"], arrays["rollout"]
        cols = ["t"] + [f"reference_{n}" for n in names] + [f"rollout_{n}" for n in names]
    else:
        t, ref, pred = arrays["t"], arrays["reference"], arrays["prediction"]
        cols = ["t"] + [f"reference_{n}" for n in names] + [f"prediction_{n}" for n in names]
    w.writerow(cols)
    for row in zip(t, ref, pred):
        w.writerow([f"{row[0]:.10g}"] + [f"{v:.10g}" for v in row[1]] + [f"{v:.10g}" for v in row[2]])
    return out.getvalue()


def _breakdown_csv(arrays: dict[str, Any], names: list[str]) -> str:
    """The free run's NMAE per state (row ``all``) and per decade of time (``1e-5``, …)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["span", *names, "mean"])
    per_state = arrays["rollout_nmae_per_state"]
    w.writerow(["all", *(f"{v:.6g}" for v in per_state), f"{np.nanmean(per_state):.6g}"])
    for d, row in zip(arrays["rollout_decades"], arrays["rollout_nmae_per_decade"]):
        w.writerow([f"1e{int(d)}", *(f"{v:.6g}" for v in row), f"{np.nanmean(row):.6g}"])
    return out.getvalue()


def _plot(arrays: dict[str, Any], names: list[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * len(names)), sharex=True, squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[:, 0], names)):
        if "rollout" in arrays:
            ax.plot(arrays["t_rollout"], arrays["reference_rollout"][:, i], "k-", lw=1.2, label="reference")
            ax.plot(arrays["t_rollout"], arrays["rollout"][:, i], "C1--", lw=1.0, label="free run")
        else:
            ax.plot(arrays["t"], arrays["reference"][:, i], "k-", lw=1.2, label="reference")
            ax.plot(arrays["t"], arrays["prediction"][:, i], "C0--", lw=1.0, label="prediction")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        per_state = arrays.get("rollout_nmae_per_state")
        if per_state is not None:
            ax.set_title(f"{name}: free-run NMAE {per_state[i]:.3g}", fontsize=9, loc="left")
    axes[0, 0].legend(loc="upper right")
    shown = arrays["t_rollout"] if "rollout" in arrays else arrays["t"]
    if _log_time(shown):  # e.g. ROBER over ten decades, as Kim et al. plot it
        axes[-1, 0].set_xscale("log")
    axes[-1, 0].set_xlabel("t")
    err = arrays.get("val_rollout_nmae")
    fig.suptitle(title + (f" — free-run NMAE {float(err):.3g}" if err is not None else ""))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _plot_phase(arrays: dict[str, Any], names: list[str], title: str, n_show: int = 6) -> bytes:
    """Phase portraits (first two states) of held-out trajectories: true vs learned free runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, pred, t = arrays["reference_rollout"], arrays["rollout"], arrays["t_rollout"]
    n_show = min(n_show, ref.shape[0])
    fig, axes = plt.subplots(2, n_show, figsize=(max(3.0 * n_show, 5.0), 6.0), squeeze=False)
    for j in range(n_show):
        ax = axes[0, j]
        ax.plot(ref[j, :, 0], ref[j, :, 1], "k-", lw=1.0, label="true")
        ax.plot(pred[j, :, 0], pred[j, :, 1], "C1--", lw=0.9, label="learned")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(f"held-out #{j}", fontsize=9)
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        ax.plot(t, ref[j, :, 0], "k-", lw=1.0)
        ax.plot(t, pred[j, :, 0], "C1--", lw=0.9)
        if _log_time(t):  # e.g. ROBER ensembles over ten decades
            ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel(names[0])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    keys = [k for k in arrays if k.startswith(("val_rollout_mse", "val_rollout_nmae")) or k == "val_energy_drift"]
    fig.suptitle(title + "\n" + ", ".join(f"{k} {float(arrays[k]):.3g}" for k in keys), fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
