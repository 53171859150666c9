"""ResNets for 32x32 images (He et al. 2016): ResNet-20 (3 stages of 3 basic blocks, widths
16-32-64, parameter-free "option A" shortcuts, 0.27M parameters) and ResNet-18 (4 stages of
2 blocks, widths 64-512, 1x1-conv shortcuts, 11.2M; the BIPARO report's "wide ResNet-18").
``pni=True`` gives the NoiseNet variants with parametric noise on every weight (Rakin et al.)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advlit.models.noise import conv_layer, linear_layer
from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU. Shortcut on a shape change:
    ``"pad"`` subsamples and zero-pads channels (no parameters), ``"conv"`` is 1x1 conv + BN."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str, pni: bool) -> None:
        super().__init__()
        conv = conv_layer(pni)
        self.conv1 = conv(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        self.pad = 0
        if stride != 1 or in_planes != planes:
            if shortcut == "pad":
                self.shortcut = nn.Identity() if stride == 1 else nn.AvgPool2d(1, stride)
                self.pad = planes - in_planes
            else:
                self.shortcut = nn.Sequential(conv(in_planes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        skip = self.shortcut(x)
        if self.pad:
            skip = F.pad(skip, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + skip)


class ResNet(nn.Module):
    """Stem conv3x3, stages of :class:`BasicBlock` (stride 2 from the second stage on),
    global average pooling and a linear head.

    Parameters
    ----------
    blocks : sequence of int
        Blocks per stage.
    widths : sequence of int
        Channels per stage.
    shortcut : str, default 'conv'
        Shortcut on a shape change: "conv" (1x1 conv + BN) or "pad" (subsample and zero-pad).
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    pni : bool, default False
        Parametric noise injection on every weight (He et al. 2019).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, blocks: Sequence[int], widths: Sequence[int], shortcut: str = "conv",
                 num_classes: int = 10, in_channels: int = 3, pni: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        if shortcut not in ("pad", "conv"):
            raise ValueError(f"shortcut must be 'pad' or 'conv', got {shortcut!r}")
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(conv_layer(pni)(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, in_planes = [], widths[0]
        for stage, (count, planes) in enumerate(zip(blocks, widths)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride, shortcut, pni))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = linear_layer(pni)(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(self.normalize(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class ResNet20(ResNet):
    """ResNet-20 (0.27M parameters); ``pni=True`` is PNI's NoiseNet-20.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    pni : bool, default False
        Parametric noise injection on every weight (He et al. 2019).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, pni: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__([3, 3, 3], [16, 32, 64], "pad", num_classes, in_channels, pni, mean, std)


class ResNet18(ResNet):
    """ResNet-18 for 32x32 inputs (11.2M parameters).

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    pni : bool, default False
        Parametric noise injection on every weight (He et al. 2019).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, pni: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__([2, 2, 2, 2], [64, 128, 256, 512], "conv", num_classes, in_channels, pni,
                         mean, std)
