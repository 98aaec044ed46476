"""The non-temporal family (input t, output the state): FCNN, ResNet, Res2Net, MixNet.

With a scalar input t the convolutional families need a feature map: t is lifted by a linear
layer to ``channels × length``, 1-D convolution blocks act on it, and a linear head reads the
flattened map out. ReLU and BatchNorm throughout, as Zhang et al. (2024).
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor, nn

from stiffml.models.base import StiffModel, check_positive


class FCNN(StiffModel):
    """Fully connected network: ``depth`` × (Linear → BatchNorm → ReLU), then a linear head.

    Args:
        n_inputs: Linked from the datamodule.
        n_outputs: Linked from the datamodule.
        lr: Adam learning rate.
        hidden: Width of every hidden layer.
        depth: Number of hidden layers.
    """

    family = "non-temporal"
    representation = "pointwise"

    def __init__(
        self, n_inputs: int = 1, n_outputs: int = 1, lr: float = 1e-3, hidden: int = 300, depth: int = 6
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        check_positive(hidden=hidden, depth=depth)
        layers: list[nn.Module] = []
        width = n_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor) -> Tensor:
        return self.net(t)


class LiftedConvNet(StiffModel, abc.ABC):
    """Shared trunk of the convolutional families: lift t → (channels, length), blocks, head.

    Subclasses implement :meth:`make_block`; they list their own arguments and pass these on with
    ``**kwargs`` (jsonargparse follows the call, so ``--help`` shows them all).

    Args:
        n_inputs: Linked from the datamodule.
        n_outputs: Linked from the datamodule.
        lr: Adam learning rate.
        channels: Channels of the lifted feature map.
        length: Positions of the lifted feature map.
        blocks: Number of convolution blocks.
    """

    family = "non-temporal"
    representation = "pointwise"

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        lr: float = 1e-3,
        channels: int = 64,
        length: int = 16,
        blocks: int = 2,
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        check_positive(channels=channels, length=length, blocks=blocks)
        self.channels, self.length = channels, length
        self.lift = nn.Sequential(nn.Linear(n_inputs, channels * length), nn.ReLU())
        self.blocks = nn.Sequential(*(self.make_block(channels) for _ in range(blocks)))
        self.head = nn.Linear(channels * length, n_outputs)

    @abc.abstractmethod
    def make_block(self, channels: int) -> nn.Module:
        """One block acting on ``(B, channels, length)`` feature maps."""

    def forward(self, t: Tensor) -> Tensor:
        h = self.lift(t).view(-1, self.channels, self.length)
        return self.head(self.blocks(h).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) in 1-D: two 3-tap convs with BatchNorm and a skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class Res2Block(nn.Module):
    """Res2Net block (Gao et al. 2021) in 1-D: hierarchical split-channel 3-tap convs.

    1×1 conv, split into ``scales`` groups; group i > 1 gets a 3-tap conv of itself plus the
    previous group's output; concatenate, 1×1 conv, skip.
    """

    def __init__(self, channels: int, scales: int) -> None:
        super().__init__()
        if channels % scales:
            raise ValueError(f"channels={channels} must be divisible by scales={scales}")
        w = channels // scales
        self.width = w
        self.reduce = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels), nn.ReLU())
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(w, w, 3, padding=1), nn.BatchNorm1d(w), nn.ReLU())
            for _ in range(scales - 1)
        )
        self.expand = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels))

    def forward(self, x: Tensor) -> Tensor:
        parts = torch.split(self.reduce(x), self.width, dim=1)
        outs = [parts[0]]
        prev = None
        for conv, part in zip(self.convs, parts[1:]):
            prev = conv(part if prev is None else part + prev)
            outs.append(prev)
        return torch.relu(x + self.expand(torch.cat(outs, dim=1)))


class MixBlock(nn.Module):
    """MixConv block (Tan & Le 2019) in 1-D: depthwise convs of several kernel sizes on channel
    groups in one layer, then a pointwise conv, with BatchNorm and a skip."""

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...]) -> None:
        super().__init__()
        g = len(kernel_sizes)
        self.splits = [channels // g + (1 if i < channels % g else 0) for i in range(g)]
        self.depthwise = nn.ModuleList(
            nn.Conv1d(c, c, k, padding=k // 2, groups=c) for c, k in zip(self.splits, kernel_sizes)
        )
        self.post = nn.Sequential(
            nn.BatchNorm1d(channels), nn.ReLU(), nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        mixed = torch.cat([conv(p) for conv, p in zip(self.depthwise, torch.split(x, self.splits, dim=1))], dim=1)
        return torch.relu(x + self.post(mixed))


class ResNet(LiftedConvNet):
    """Residual network of 1-D basic blocks over the lifted time feature map."""

    def make_block(self, channels: int) -> nn.Module:
        return BasicBlock(channels)


class Res2Net(LiftedConvNet):
    """Res2Net: hierarchical split-channel residual blocks (``channels`` divisible by ``scales``).

    Args:
        scales: Channel groups per block.
        **kwargs: The convolutional families' arguments (:class:`LiftedConvNet`).
    """

    def __init__(self, scales: int = 4, **kwargs: Any) -> None:
        self.scales = scales
        super().__init__(**kwargs)

    def make_block(self, channels: int) -> nn.Module:
        return Res2Block(channels, self.scales)


class MixNet(LiftedConvNet):
    """MixNet: mixed-kernel depthwise convolution blocks.

    Args:
        kernel_sizes: Odd kernel sizes, one per channel group.
        **kwargs: The convolutional families' arguments (:class:`LiftedConvNet`).
    """

    def __init__(self, kernel_sizes: tuple[int, ...] = (3, 5, 7, 9), **kwargs: Any) -> None:
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive integers, got {list(kernel_sizes)}")
        self.kernel_sizes = tuple(kernel_sizes)
        super().__init__(**kwargs)

    def make_block(self, channels: int) -> nn.Module:
        return MixBlock(channels, self.kernel_sizes)
