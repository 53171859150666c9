"""Pre-activation ResNet-18 (He et al. 2016, "Identity mappings") for 32x32 images,
the standard CIFAR-10 adversarial-training backbone (Rice et al. 2020, Wong et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import nn

from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity (or 1x1 conv) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """[2, 2, 2, 2] pre-activation blocks of widths 64-128-256-512.

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
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        layers, in_planes = [], 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(self.normalize(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)
