"""VGG-11 (Simonyan & Zisserman 2015, configuration A) with BatchNorm for 32x32 images:
eight conv3x3 layers 64-128-256-256-512-512-512-512 with five max-pools and a linear
head on the 512 features (9.2M parameters)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize

VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 with BatchNorm and a linear head, for 32x32 colour images.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalize(mean, std)]
        width = in_channels
        for item in VGG11_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(width, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
                width = item
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).flatten(1))
