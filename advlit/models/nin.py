"""Network in Network (Lin, Chen & Yan 2014) for CIFAR-10, the thesis's CIFAR-10 model:
three mlpconv blocks (conv5x5 192-160-96, conv5x5 192-192-192, conv3x3 192-192-classes) with
pooling and dropout in between and global average pooling as the head (0.97M parameters)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize


def _mlpconv(in_channels: int, widths: Sequence[int], kernel: int) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], kernel, padding=kernel // 2), nn.ReLU()]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Conv2d(a, b, 1), nn.ReLU()]
    return layers


class NiN(nn.Module):
    """Network in Network (Lin et al. 2014) for 32x32 colour images.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    dropout : float, default 0.5
        Dropout probability.
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std),
            *_mlpconv(in_channels, (192, 160, 96), 5), nn.MaxPool2d(3, 2, 1), nn.Dropout(dropout),
            *_mlpconv(96, (192, 192, 192), 5), nn.AvgPool2d(3, 2, 1), nn.Dropout(dropout),
            *_mlpconv(192, (192, 192), 3), nn.Conv2d(192, num_classes, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
