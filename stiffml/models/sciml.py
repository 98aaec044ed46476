"""A PEtab SciML problem trained in Lightning: its networks' weights and its estimated mechanistic
parameters, with the negative log-likelihood of the measurements as the loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from stiffml.io import atomic_write


class SciMLModel(pl.LightningModule):
    """The trainable part of a PEtab SciML problem (``stiffml.petab.Problem`` of a PEtab v2
    problem with networks): every estimated network weight (frozen layers and fixed networks
    stay as the parameter table sets them) and the estimated mechanistic parameters, started at
    their nominal values and kept inside their bounds after every step. One training step is one
    likelihood and its gradient (autograd through the stiff solver and the networks).

    Logged per epoch: ``train_loss`` (the nllh) and ``val_loss`` (the same figure: a calibration
    problem has no held-out split). At the end of training the run folder gets
    ``simulation.tsv`` (the PEtab simulation table) and ``parameters.tsv`` (the mechanistic
    estimates); the checkpoint holds the networks' weights.

    Args:
        n_parameters: Number of estimated mechanistic parameters (linked from the datamodule).
        lr: The optimiser's learning rate.
        optimizer: ``adam`` or ``adamw``.
        weight_decay: Weight decay (``adamw``) on the network weights.
    """

    family: ClassVar[str] = "hybrid"

    def __init__(self, n_parameters: int = 0, lr: float = 1e-2, optimizer: Literal["adam", "adamw"] = "adam",
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        if not lr > 0 or weight_decay < 0:
            raise ValueError(f"model.lr must be positive and model.weight_decay >= 0, got {lr}, {weight_decay}")
        if optimizer not in ("adam", "adamw"):
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: ['adam', 'adamw']")
        self.save_hyperparameters()
        self.theta = nn.Parameter(torch.zeros(n_parameters, dtype=torch.float64))
        self.networks = nn.ModuleDict()
        self.problem: Any = None

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        problem = dm.problem
        if not hasattr(problem, "networks"):
            raise ValueError(f"SciMLModel trains PEtab SciML problems (with networks); {problem.path} has none: "
                             "use model: MechanisticModel (configs/petab.yaml)")
        if len(problem.parameter_ids) != self.theta.numel():
            raise ValueError(f"SciMLModel was built for {self.theta.numel()} mechanistic parameters, the problem "
                             f"estimates {len(problem.parameter_ids)}")
        self.problem = problem
        if self.problem is not None and not len(self.networks):
            for net_id, module in problem.networks.items():  # shared: training moves the problem's networks
                self.networks[net_id] = module
            with torch.no_grad():
                self.theta.copy_(torch.as_tensor(problem.nominal, dtype=torch.float64))
        lower, upper = problem.bounds()
        self.register_buffer("lower", torch.as_tensor(lower, dtype=torch.float64), persistent=False)
        self.register_buffer("upper", torch.as_tensor(upper, dtype=torch.float64), persistent=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the PEtab SciML problem estimates nothing (no estimated parameter or network weight)")
        cls = torch.optim.AdamW if self.hparams.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self.problem._objective(self.theta)
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=False, on_epoch=True, batch_size=1)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():  # projected: the mechanistic parameters stay inside their bounds
            self.theta.copy_(torch.maximum(torch.minimum(self.theta, self.upper), self.lower))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self.problem._objective(self.theta.detach()), prog_bar=True, batch_size=1)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self.problem._objective(self.theta.detach()), batch_size=1)

    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        return self.problem.simulate(self.theta.detach().numpy())

    @rank_zero_only
    def on_train_end(self) -> None:
        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        theta = self.theta.detach().cpu().numpy()
        sim = self.problem.simulate(theta)
        atomic_write(folder / "simulation.tsv", sim.to_csv(sep="\t", index=False))
        rows = ["parameterId\testimate"] + [f"{i}\t{v!r}" for i, v in zip(self.problem.parameter_ids, map(float, theta))]
        atomic_write(folder / "parameters.tsv", "\n".join(rows) + "\n")

    @property
    def estimate(self) -> dict[str, float]:
        """The mechanistic estimates by parameter id."""
        return dict(zip(self.problem.parameter_ids, np.asarray(self.theta.detach(), dtype=float)))
