"""Per-state normalisation of series: none, z-score, min-max, log then z-score."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Normalization = Literal["none", "zscore", "minmax", "maxabs", "log-zscore"]
NORMALIZATIONS = ("none", "zscore", "minmax", "maxabs", "log-zscore")


def _check(kind: str) -> None:
    if kind not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {kind!r}; valid: {list(NORMALIZATIONS)}")


class Scaler:
    """An invertible per-state map ``z = (g(y) − shift) / scale`` with ``g`` identity or log.

    Fitted on training data only. ``transform``/``inverse`` accept numpy arrays or tensors whose
    last axis is the state axis.
    """

    def __init__(self, kind: str, shift: np.ndarray, scale: np.ndarray) -> None:
        _check(kind)
        self.kind = kind
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self._torch: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, kind: str, y: np.ndarray) -> Scaler:
        """Fit on samples ``y`` of shape ``(N, n)``."""
        _check(kind)
        n = y.shape[-1]
        if kind == "none":
            return cls(kind, np.zeros(n), np.ones(n))
        if kind == "log-zscore":
            if np.any(y <= 0):
                raise ValueError("normalization 'log-zscore' needs strictly positive states")
            y = np.log(y)
        if kind == "maxabs":  # Kim et al. 2021: y / max|y|; zero stays zero, signs stay
            top = np.abs(y).max(axis=0)
            return cls(kind, np.zeros(n), np.where(top > 0, top, 1.0))
        if kind == "minmax":
            lo, hi = y.min(axis=0), y.max(axis=0)
            return cls(kind, lo, np.where(hi > lo, hi - lo, 1.0))
        std = y.std(axis=0)
        return cls(kind, y.mean(axis=0), np.where(std > 0, std, 1.0))

    def derivative(self, y, dy):
        """Time derivative in normalised units, ``dz/dt``, from states ``y`` and ``dy/dt``."""
        return dy / (self.scale * y) if self.kind == "log-zscore" else dy / self.scale

    def inverse_derivative(self, z, dz):
        """``dy/dt`` in physical units from normalised states ``z`` and ``dz/dt``."""
        scale = self._params(z)[1] if isinstance(z, torch.Tensor) else self.scale
        return dz * scale * self.inverse(z) if self.kind == "log-zscore" else dz * scale

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._torch:
            self._torch[key] = (
                torch.as_tensor(self.shift, device=like.device, dtype=like.dtype),
                torch.as_tensor(self.scale, device=like.device, dtype=like.dtype),
            )
        return self._torch[key]

    def transform(self, y):
        """Physical units → normalised."""
        if isinstance(y, torch.Tensor):
            shift, scale = self._params(y)
            g = torch.log(y) if self.kind == "log-zscore" else y
            return (g - shift) / scale
        g = np.log(y) if self.kind == "log-zscore" else y
        return (g - self.shift) / self.scale

    def inverse(self, z):
        """Normalised → physical units."""
        if isinstance(z, torch.Tensor):
            shift, scale = self._params(z)
            g = z * scale + shift
            return torch.exp(g) if self.kind == "log-zscore" else g
        g = z * self.scale + self.shift
        return np.exp(g) if self.kind == "log-zscore" else g
