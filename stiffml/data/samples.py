"""Sample representations served to the model families.

Each set keeps only the stored series in memory and builds a batch on demand by tensor
indexing, so windows and pairs are never materialised as k-fold copies.

========== ============================================== ====================
name       input                                          target
========== ============================================== ====================
pointwise  t, shape (B, 1)                                state(t), (B, n)
window     k past states, (B, k, n)                       next state, (B, n);
                                                          horizon h > 1: the next
                                                          h states, (B, h, n)
pair       (state_i (B, n), t_i (B,), t_{i+1} (B,))       state_{i+1}, (B, n)
segment    (state_i (B, n), t_i … t_{i+k} (B, k+1))       states i+1 … i+k, (B, k, n)
derivative state, (B, n)                                  d state/dt, (B, n)
trajectory (t (T,), initial states (m, n), traj (B,),     state at those points, (B, n)
           time index (B,)): a whole solve per batch
========== ============================================== ====================

Ensembles whose members have their own rate constants add them, scaled, to the input:
``derivative`` inputs become ``(state (B, n), conditions (B, p))`` and ``trajectory`` inputs
gain a fifth entry, every member's conditions ``(m, p)``.
"""

from __future__ import annotations

import abc

from typing import Any

import torch
from torch import Tensor

REPRESENTATIONS = ("pointwise", "window", "pair", "segment", "derivative", "trajectory")


class SampleSet(abc.ABC):
    """Base class: ``len(s)`` samples, ``s.batch(idx)`` returns ``(inputs, target)``."""

    def __init__(self, **tensors: Tensor) -> None:
        self.tensors = tensors

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abc.abstractmethod
    def batch(self, idx: Tensor) -> tuple[Any, Tensor]:
        """Inputs and targets of the samples ``idx`` (a 1-D index tensor on the same device)."""

    def to(self, device: torch.device | str, dtype: torch.dtype) -> SampleSet:
        """Move floating tensors to ``device``/``dtype`` (in place; returns self)."""
        self.tensors = {
            k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
            for k, v in self.tensors.items()
        }
        return self

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device


class PointwiseSamples(SampleSet):
    """``t → state(t)``: ``t_in`` (T,) the model's time input, ``y`` (T, n)."""

    def __init__(self, t_in: Tensor, y: Tensor) -> None:
        super().__init__(t_in=t_in, y=y)

    def __len__(self) -> int:
        return self.tensors["y"].shape[0]

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.tensors["t_in"][idx].unsqueeze(-1), self.tensors["y"][idx]


class WindowSamples(SampleSet):
    """``k`` past states → the next: sample ``i`` is ``y[i:i+k] → y[i+k]``.

    With ``horizon`` h > 1 the target is the next h states ``y[i+k:i+k+h]`` (B, h, n), for
    window models trained on their own unrolled predictions; the last h − 1 windows of the
    series, whose targets would run past its end, are not samples.
    """

    def __init__(self, y: Tensor, window: int, horizon: int = 1) -> None:
        super().__init__(y=y)
        self.window = window
        self.horizon = horizon

    def __len__(self) -> int:
        return self.tensors["y"].shape[0] - self.window - self.horizon + 1

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        y = self.tensors["y"]
        offsets = torch.arange(self.window, device=idx.device)
        if self.horizon == 1:
            return y[idx.unsqueeze(1) + offsets], y[idx + self.window]
        ahead = torch.arange(self.window, self.window + self.horizon, device=idx.device)
        return y[idx.unsqueeze(1) + offsets], y[idx.unsqueeze(1) + ahead]


class PairSamples(SampleSet):
    """``(state_i, t_i, t_{i+1}) → state_{i+1}``."""

    def __init__(self, t: Tensor, y: Tensor) -> None:
        super().__init__(t=t, y=y)

    def __len__(self) -> int:
        return self.tensors["y"].shape[0] - 1

    def batch(self, idx: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
        t, y = self.tensors["t"], self.tensors["y"]
        return (y[idx], t[idx], t[idx + 1]), y[idx + 1]


class SegmentSamples(SampleSet):
    """Multiple shooting: from the true state at i, the next ``k`` states ``y[i+1:i+k+1]``."""

    def __init__(self, t: Tensor, y: Tensor, k: int) -> None:
        super().__init__(t=t, y=y)
        self.k = k

    def __len__(self) -> int:
        return self.tensors["y"].shape[0] - self.k

    def batch(self, idx: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
        t, y = self.tensors["t"], self.tensors["y"]
        rows = idx.unsqueeze(1) + torch.arange(self.k + 1, device=idx.device)
        return (y[idx], t[rows]), y[rows[:, 1:]]


class DerivativeSamples(SampleSet):
    """``state → d state/dt`` (exact derivatives from the system's right-hand side); with
    ``conditions`` (N, p), each sample's scaled rate constants, the input is ``(state, conditions)``."""

    def __init__(self, y: Tensor, dy: Tensor, conditions: Tensor | None = None) -> None:
        if conditions is not None and (conditions.ndim != 2 or conditions.shape[0] != y.shape[0]):
            raise ValueError(f"conditions must have shape ({y.shape[0]}, p), got {tuple(conditions.shape)}")
        super().__init__(y=y, dy=dy, **({} if conditions is None else {"conditions": conditions}))

    def __len__(self) -> int:
        return self.tensors["y"].shape[0]

    def batch(self, idx: Tensor) -> tuple[Any, Tensor]:
        if "conditions" in self.tensors:
            return (self.tensors["y"][idx], self.tensors["conditions"][idx]), self.tensors["dy"][idx]
        return self.tensors["y"][idx], self.tensors["dy"][idx]


class TrajectorySamples(SampleSet):
    """Whole trajectories: every (trajectory, time) point is a sample, and a batch hands the model
    the full time grid and every initial state, so one solve from the initial states serves all of
    the batch's points (Kim et al. 2021's trajectory training).

    ``t`` (T,) is shared by the ``m`` trajectories ``y`` (m, T, n); sample ``i`` is trajectory
    ``i // T`` at time index ``i % T``. With ``conditions`` (m, p), each trajectory's scaled rate
    constants, the input gains them as a fifth entry.
    """

    def __init__(self, t: Tensor, y: Tensor, conditions: Tensor | None = None) -> None:
        if y.ndim != 3 or y.shape[1] != t.shape[0]:
            raise ValueError(f"trajectories must have shape (m, {t.shape[0]}, n), got {tuple(y.shape)}")
        if conditions is not None and (conditions.ndim != 2 or conditions.shape[0] != y.shape[0]):
            raise ValueError(f"conditions must have shape ({y.shape[0]}, p), got {tuple(conditions.shape)}")
        super().__init__(t=t, y=y, **({} if conditions is None else {"conditions": conditions}))

    def __len__(self) -> int:
        m, T, _ = self.tensors["y"].shape
        return m * T

    def batch(self, idx: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
        t, y = self.tensors["t"], self.tensors["y"]
        T = t.shape[0]
        rows, cols = idx // T, idx % T
        if "conditions" in self.tensors:
            return (t, y[:, 0], rows, cols, self.tensors["conditions"]), y[rows, cols]
        return (t, y[:, 0], rows, cols), y[rows, cols]
