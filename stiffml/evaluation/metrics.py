"""Accuracy measures, in physical units."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative L2 error ``‖pred − ref‖ / ‖ref‖`` over all samples and states."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


def state_range(ref: np.ndarray) -> np.ndarray:
    """Each state's ``max − min`` over all leading axes of ``ref`` (the last axis is the state)."""
    flat = np.asarray(ref, dtype=np.float64).reshape(-1, np.shape(ref)[-1])
    return flat.max(axis=0) - flat.min(axis=0)


def _reduce_state_nmae(pred: np.ndarray, ref: np.ndarray, reduce, span: np.ndarray | None = None) -> float:
    """``reduce`` over the states whose reference moves of ``MAE_s / range_s``; if none moves, the
    plain mean absolute error."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    n = ref.shape[-1]
    err = np.abs(pred - ref).reshape(-1, n).mean(axis=0)
    span = state_range(ref) if span is None else np.asarray(span, dtype=np.float64)
    moving = span > 0
    if not moving.any():
        return float(err.mean())
    return float(reduce(err[moving] / span[moving]))


def nmae(pred: np.ndarray, ref: np.ndarray, span: np.ndarray | None = None) -> float:
    """Range-normalised mean absolute error: the mean over states of ``MAE_s / range_s``.

    ``range_s`` is ``max − min`` of the reference state over the evaluated span (Kim et al. 2021's
    scaling), so every state counts alike however small it is: a flat line scores about the mean
    distance of each state from its start, in units of its own range, where the relative L2 over
    all states is dominated by the largest ones. The last axis is the state; any leading axes
    (time, trajectories) are averaged. States whose reference is constant are left out (their
    range is zero); if all are, the plain mean absolute error is returned. ``span`` gives the
    ranges instead (the free-run scores pass the whole reference's, so a part of it where a
    state happens to be flat does not divide by almost zero).
    """
    return _reduce_state_nmae(pred, ref, np.mean, span)


def nmae_worst(pred: np.ndarray, ref: np.ndarray, span: np.ndarray | None = None) -> float:
    """The largest per-state term of :func:`nmae`: the state the prediction follows worst.

    On a many-species system the mean hides one lost species (a flat line on one of POLLU's 20
    species adds a twentieth of its error); this figure does not. States whose reference is
    constant are left out; if all are, the plain mean absolute error is returned.
    """
    return _reduce_state_nmae(pred, ref, np.max, span)


def nmae_breakdown(t: np.ndarray, pred: np.ndarray, ref: np.ndarray,
                   span: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Where a free run's :func:`nmae` comes from: per state, and per state and decade of time.

    Every entry is a state's mean absolute error divided by its range over the whole evaluated
    span (as in :func:`nmae`), so the per-state figures average to the headline and the
    per-decade figures say when a state is lost. Decades are ``floor(log10 t)`` of positive
    times (times <= 0 are left out of the decade table).

    Args:
        t: Times (T,).
        pred: Predicted states (T, n) or (m, T, n).
        ref: Reference states, the same shape.
        span: Each state's range to divide by (default: over ``ref``).

    Returns:
        ``per_state`` (n,), ``decades`` (D,) the decade exponents and ``per_decade`` (D, n);
        states whose reference is constant score NaN.
    """
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if ref.ndim == 2:
        pred, ref = pred[None], ref[None]
    n = ref.shape[-1]
    span = state_range(ref) if span is None else np.asarray(span, dtype=np.float64)
    span = np.where(span > 0, span, np.nan)
    err = np.abs(pred - ref)  # (m, T, n)
    per_state = err.reshape(-1, n).mean(axis=0) / span
    positive = t > 0
    exps = np.floor(np.log10(t[positive])).astype(int)
    decades = np.unique(exps)
    per_decade = np.stack([err[:, positive][:, exps == d].reshape(-1, n).mean(axis=0) / span for d in decades]) \
        if decades.size else np.zeros((0, n))
    return {"per_state": per_state, "decades": decades, "per_decade": per_decade}


class NormalizedMAE(Metric):
    """Epoch-level :func:`nmae` of one-step predictions: per-state absolute-error sums and the
    reference's running minimum and maximum (reduced exactly under DDP)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("abs_err", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("lo", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="min")
        self.add_state("hi", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="max")

    def update(self, pred: torch.Tensor, ref: torch.Tensor) -> None:
        n = ref.shape[-1]
        pred, ref = pred.to(torch.float64).reshape(-1, n), ref.to(torch.float64).reshape(-1, n)
        if self.abs_err.numel() == 0:  # the state width is known at the first batch
            self.abs_err = torch.zeros(n, dtype=torch.float64, device=ref.device)
            self.lo = torch.full((n,), torch.inf, dtype=torch.float64, device=ref.device)
            self.hi = torch.full((n,), -torch.inf, dtype=torch.float64, device=ref.device)
        self.abs_err += (pred - ref).abs().sum(0)
        self.count += ref.shape[0]
        self.lo = torch.minimum(self.lo, ref.min(0).values)
        self.hi = torch.maximum(self.hi, ref.max(0).values)

    def compute(self) -> torch.Tensor:
        mae = self.abs_err / self.count
        span = self.hi - self.lo
        moving = span > 0
        if not bool(moving.any()):
            return mae.mean()
        return (mae[moving] / span[moving]).mean()


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
