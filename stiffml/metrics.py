"""Accuracy measures, in physical units."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative L2 error ``‖pred − ref‖ / ‖ref‖`` over all samples and states."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


class RelativeL2Error(Metric):
    """Epoch-level relative L2 error, accumulated as float64 sums (exact under DDP)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("sq_err", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq_ref", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, ref: torch.Tensor) -> None:
        pred, ref = pred.to(self.sq_err.dtype), ref.to(self.sq_err.dtype)
        self.sq_err += torch.sum((pred - ref) ** 2)
        self.sq_ref += torch.sum(ref**2)

    def compute(self) -> torch.Tensor:
        return torch.sqrt(self.sq_err / self.sq_ref)
