"""A datamodule serving the measurements of a PEtab calibration problem."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader


class PEtabDataModule(pl.LightningDataModule):
    """The measurement table of a PEtab problem, for :class:`~stiffml.models.mechanistic.MechanisticModel`.

    The problem is read and checked when the datamodule is built, so a bad problem is one error
    line before any run folder exists. Every step sees the whole table as one batch: the
    likelihood of a calibration problem needs every measurement of every experiment, and the
    simulations that produce them are shared between rows.

    Args:
        problem: The problem's YAML file (PEtab version 1), or a shipped example's name
            (``tyson1991``).
        rtol: Relative tolerance of every solve.
        atol: Absolute tolerance of every solve.
        joint_solves: Integrate all starts as one joint system per experiment (faster where the
            per-step overhead dominates, e.g. Boehm; slower where the starts' transients differ,
            e.g. Fujita: docs/petab.md), else one solve per start.

    Attributes:
        problem: The loaded :class:`stiffml.petab.Problem`.
        n_parameters: Number of estimated parameters (linked into the model by the CLI).
    """

    system_label: ClassVar[str] = "a PEtab problem (--data.problem)"

    def __init__(self, problem: str, rtol: float = 1e-8, atol: float = 1e-16, joint_solves: bool = True) -> None:
        super().__init__()
        from stiffml.petab import Problem

        if not rtol > 0 or not atol > 0:
            raise ValueError(f"data.rtol and data.atol must be positive, got {rtol}, {atol}")
        self.save_hyperparameters()
        self.problem = Problem(problem, rtol=rtol, atol=atol, joint_solves=joint_solves)
        self.n_parameters = len(self.problem.parameter_ids)
        # a SciML problem (networks inside the model: SciMLModel) may estimate network weights only
        if self.n_parameters == 0 and isinstance(self.problem, Problem):
            raise ValueError(f"PEtab problem '{problem}' estimates no parameters (no row with estimate = 1)")

    def _batch(self) -> dict[str, Any]:
        p = self.problem
        return {"row": torch.arange(len(p.measurements)),
                "measurement": torch.as_tensor(np.array(p.measurements["measurement"], dtype=np.float64))}

    def _loader(self) -> DataLoader:
        # one batch per epoch: the whole table (batch_size=None serves the item as it is)
        return DataLoader([self._batch()], batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
