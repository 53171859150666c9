"""Wide residual networks (Zagoruyko & Komodakis 2016): WRN-depth-k with pre-activation
blocks, (depth - 4) / 6 blocks per stage and widths 16k-32k-64k; WRN-28-10 (36.5M
parameters) and WRN-34-10 (46.2M, Madry et al.'s and TRADES' CIFAR-10 model)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 plus identity or 1x1-conv shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.dropout(self.conv1(out)))))
        return out + skip


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``; depth must be 6n + 4.

    Parameters
    ----------
    depth : int, default 34
        Depth, 6n + 4.
    widen_factor : int, default 10
        Width multiplier k.
    dropout : float, default 0.0
        Dropout probability.
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, depth: int = 34, widen_factor: int = 10, dropout: float = 0.0,
                 num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 (e.g. 28, 34), got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        layers, in_planes = [], 16
        for stage, planes in enumerate(widths):
            for i in range(n):
                layers.append(WideBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1, dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(self.normalize(x)))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
