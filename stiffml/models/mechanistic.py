"""Calibration of a mechanistic model to data: the estimated parameters of a PEtab problem as a
Lightning module, fitted from many starts at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import Tensor, nn

from stiffml.io import atomic_write


class MechanisticModel(pl.LightningModule):
    """The estimated parameters of a PEtab problem (on their scales, within their bounds) with
    the negative log-likelihood as the loss (plus the negative log-prior where the parameter table
    has priors: the negative log-posterior), fitted from ``starts`` points at once.

    Multistart is a batch dimension: the starts are a seeded Latin hypercube inside the bounds,
    each start has its own optimiser state (:mod:`stiffml.petab.batched`), every step evaluates
    all running starts with one joint solve per experiment, and a start that has converged is
    frozen while the others go on. Training stops when every start is frozen (or at the
    trainer's limits). One training step is one evaluation of the likelihood and its gradient.

    Logged per epoch: ``best_nllh`` (also ``train_loss``; ``val_loss`` is the same figure, since a
    calibration problem has no held-out split) and ``starts_running``. At the end of training the
    run folder gets the report of ``stiffml petab-fit``: ``best_parameters.tsv``, ``starts.tsv``,
    ``waterfall.png``, ``fit.png`` and ``summary.json``. ``stiffml predict`` writes the PEtab
    simulation table of the best start to ``predictions/simulation.tsv``.

    Args:
        n_parameters: Number of estimated parameters (linked from the datamodule by the CLI).
        starts: Number of starts.
        seed: Seed of the Latin hypercube of starts.
        optimizer: ``fides`` (fides' interior trust-region reflective method with a BFGS Hessian,
            one per start, run in lockstep), ``lbfgs`` (projected L-BFGS with a backtracking line
            search per start) or ``adam`` (Adam per start, projected into the bounds).
        lr: Adam's learning rate on the parameters' scales (unused by ``lbfgs``).
        history: L-BFGS memory per start.
        max_iterations: Accepted steps per start before it is frozen.
        gtol: A start has converged when its projected gradient is below this (largest entry;
            fides: the gradient's norm).
        ftol: Relative decrease of the nllh below which a step counts as a stall (fides: its
            relative function tolerance, which stops the start at once).
        patience: Stalled steps in a row after which a start is frozen (not used by fides).
    """

    family: ClassVar[str] = "mechanistic"

    def __init__(self, n_parameters: int = 0, starts: int = 20, seed: int = 0,
                 optimizer: Literal["fides", "lbfgs", "adam"] = "fides", lr: float = 0.05, history: int = 10,
                 max_iterations: int = 1000, gtol: float = 1e-6, ftol: float = 1e-10, patience: int = 10) -> None:
        super().__init__()
        if not isinstance(starts, int) or starts < 1:
            raise ValueError(f"model.starts must be a positive integer, got {starts}")
        if n_parameters < 0:
            raise ValueError(f"model.n_parameters must be the problem's number of estimated parameters, got {n_parameters}")
        for name, value in (("lr", lr), ("gtol", gtol)):
            if not value > 0:
                raise ValueError(f"model.{name} must be positive, got {value}")
        for name, value in (("history", history), ("max_iterations", max_iterations), ("patience", patience)):
            if value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value}")
        if ftol < 0:
            raise ValueError(f"model.ftol must be non-negative, got {ftol}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # the batched optimisers step themselves
        self.theta = nn.Parameter(torch.zeros(starts, n_parameters, dtype=torch.float64), requires_grad=False)
        self.register_buffer("start_points", torch.zeros(starts, n_parameters, dtype=torch.float64))
        self.register_buffer("nllh", torch.full((starts,), float("inf"), dtype=torch.float64))
        self.problem: Any = None
        self.optimizer: Any = None
        self._seconds = 0.0
        self._began: float | None = None

    # --------------------------------------------------------------------------------- wiring
    def setup(self, stage: str) -> None:
        from stiffml.data.petab import PEtabDataModule
        from stiffml.petab.batched import OPTIMIZERS
        from stiffml.petab.optimize import latin_hypercube

        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if not isinstance(dm, PEtabDataModule):
            raise ValueError(f"MechanisticModel calibrates PEtab problems; use data: PEtabDataModule, got "
                             f"{type(dm).__name__}")
        if trainer is not None and not str(trainer.precision).startswith("64"):
            raise ValueError(f"MechanisticModel computes in float64 (scipy's BDF and forward sensitivities); set "
                             f"trainer.precision to 64-true, got {trainer.precision}")
        self.double()
        self.problem = dm.problem
        p = self.problem
        if self.hparams.n_parameters != len(p.parameter_ids):
            raise ValueError(f"MechanisticModel was built for {self.hparams.n_parameters} parameters but the problem "
                             f"estimates {len(p.parameter_ids)}")
        x0 = latin_hypercube(p, self.hparams.starts, self.hparams.seed)
        self.start_points.copy_(torch.as_tensor(x0))
        self.theta.data.copy_(torch.as_tensor(x0))
        cls = OPTIMIZERS[self.hparams.optimizer]
        common = dict(max_iterations=self.hparams.max_iterations, gtol=self.hparams.gtol, ftol=self.hparams.ftol,
                      patience=self.hparams.patience)
        extra = {"adam": {"lr": self.hparams.lr}, "lbfgs": {"history": self.hparams.history}}.get(cls.name, {})
        self.optimizer = cls(x0, p.lower, p.upper, **common, **extra)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The batched optimiser (stiffml.petab.batched) is not a torch.optim optimiser. Lightning
        # counts global steps (which checkpoints, logging and max_steps follow) by optimiser
        # steps, so each training step also steps this one, which never moves anything: theta
        # has no gradient.
        return torch.optim.SGD([self.theta], lr=0.0)

    def on_fit_start(self) -> None:
        rank_zero_info(f"MechanisticModel: {self.hparams.starts} starts × {self.hparams.n_parameters} parameters, "
                       f"{self.hparams.optimizer}")

    # ---------------------------------------------------------------------------------- steps
    def forward(self, rows: Tensor | None = None) -> Tensor:
        """The nllh of every start's current parameters over ``rows`` of the measurement table
        (all rows when omitted)."""
        values, _ = self.problem.values_and_gradients(self.theta.detach().cpu().numpy(),
                                                      rows=None if rows is None else rows.cpu().numpy())
        return torch.as_tensor(values)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        opt = self.optimizer
        idx, points = opt.ask()
        if idx.size:
            values, grads = self.problem.values_and_gradients(points, rows=batch["row"].cpu().numpy(), prior=True)
            opt.tell(idx, values, grads)
        self.theta.data.copy_(torch.as_tensor(opt.best_x))
        self.nllh.copy_(torch.as_tensor(opt.best_f))
        if opt.done and self._trainer is not None:
            self._trainer.should_stop = True
        self.optimizers().step()  # counts the step (see configure_optimizers)
        return self.nllh.min()

    def on_train_start(self) -> None:
        self._began = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        best = self.nllh.min()
        self.log("best_nllh", best, prog_bar=True)
        self.log("train_loss", best)
        self.log("starts_running", float((~self.optimizer.finished).sum()))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.log("val_loss", self.nllh.min(), prog_bar=False)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        values = self(batch["row"])
        self.log("test_nllh", values.min())

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        return None

    @rank_zero_only
    def on_predict_end(self) -> None:
        from stiffml.evaluation.free_run import run_folder

        trainer = self._trainer
        folder = (run_folder(trainer.ckpt_path) if trainer.ckpt_path
                  else Path(trainer.log_dir or trainer.default_root_dir)) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        best = int(torch.argmin(self.nllh)) if torch.isfinite(self.nllh).any() else 0
        table = self.problem.simulate(self.theta[best].detach().cpu().numpy())
        atomic_write(folder / "simulation.tsv", table.to_csv(sep="\t", index=False).encode())
        rank_zero_info(f"PEtab simulation table of the best start written to {folder / 'simulation.tsv'}")

    @rank_zero_only
    def on_train_end(self) -> None:
        from stiffml.petab.optimize import StartResult
        from stiffml.petab.report import write_report

        trainer = self._trainer
        if self._began is not None:
            self._seconds += time.perf_counter() - self._began
            self._began = None
        opt = self.optimizer
        if not np.isfinite(opt.best_f).any():
            return
        results = sorted((StartResult(start=self.start_points[k].cpu().numpy(), theta=opt.best_x[k].copy(),
                                      nllh=float(opt.best_f[k]), evaluations=int(opt.evaluations[k]),
                                      seconds=self._seconds, message=opt.reason[k] or "running when training stopped")
                          for k in range(opt.x.shape[0])), key=lambda r: r.nllh)
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        summary = write_report(self.problem, results, folder, self._seconds)
        rank_zero_info(f"best nllh {summary['best_nllh']:.6f} ({summary['starts_at_best']} of {len(results)} starts "
                       f"within 0.01); report in {folder}")

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        state = self.optimizer.state_dict() if self.optimizer is not None else {}
        checkpoint["stiffml"] = {
            "model": f"{type(self).__module__}.{type(self).__qualname__}",
            "datamodule": f"{type(dm).__module__}.{type(dm).__qualname__}" if dm is not None else None,
            "seconds": self._seconds + (time.perf_counter() - self._began if self._began is not None else 0.0),
            # tensors and plain values only, so checkpoints load with weights_only=True
            "optimizer": {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in state.items()},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("stiffml") or {}
        self._seconds = float(info.get("seconds") or 0.0)
        state = info.get("optimizer")
        if state and self.optimizer is not None:
            self.optimizer.load_state_dict({k: v.numpy() if isinstance(v, Tensor) else v for k, v in state.items()})
