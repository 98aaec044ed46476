"""SIREN (Sitzmann et al. 2020): a pointwise MLP with sine activations."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from stiffml import StiffModel


class SineLayer(nn.Module):
    """``sin(ω0 · (W x + b))`` with SIREN's initialisation."""

    def __init__(self, n_in: int, n_out: int, omega0: float, first: bool) -> None:
        super().__init__()
        self.omega0 = omega0
        self.linear = nn.Linear(n_in, n_out)
        bound = 1 / n_in if first else math.sqrt(6 / n_in) / omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega0 * self.linear(x))


class Siren(StiffModel):
    """SIREN: t → state through sine layers; a smooth, high-frequency-capable fit of a trajectory.

    Args:
        n_inputs: Linked from the datamodule.
        n_outputs: Linked from the datamodule.
        lr: Adam learning rate.
        hidden: Width of every sine layer.
        depth: Number of sine layers.
        omega0: Frequency factor ω0 (30 in the paper).
    """

    family = "non-temporal"
    representation = "pointwise"

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        lr: float = 1e-4,
        hidden: int = 64,
        depth: int = 3,
        omega0: float = 30.0,
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        if hidden < 1 or depth < 1 or not omega0 > 0:
            raise ValueError(f"hidden, depth and omega0 must be positive, got {hidden}, {depth}, {omega0}")
        layers = [SineLayer(n_inputs if i == 0 else hidden, hidden, omega0, first=i == 0) for i in range(depth)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, n_outputs)
        with torch.no_grad():
            bound = math.sqrt(6 / hidden) / omega0
            self.head.weight.uniform_(-bound, bound)

    def forward(self, t: Tensor) -> Tensor:
        return self.head(self.body(t))
