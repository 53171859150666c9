"""BasicNet: the small CNN of the BIPARO report's Table 1, read as two conv3x3 blocks of
widths 32 and 64 (two convs each, max-pool) and a 256-unit hidden layer (1.1M parameters
on 32x32 inputs). ``pni=True`` gives its NoiseNet variant (parametric weight noise)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advlit.models.noise import conv_layer, linear_layer
from advlit.models.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize


class BasicNet(nn.Module):
    """The BasicNet CNN of the BIPARO report for 32x32 colour images.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 3
        Input channels (1 grey, 3 colour).
    image_size : int, default 32
        Height and width of the square input images.
    pni : bool, default False
        Parametric noise injection on every weight (He et al. 2019).
    mean : sequence of float, default (0.4914, 0.4822, 0.4465)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.2471, 0.2435, 0.2616)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                 pni: bool = False, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        conv, linear = conv_layer(pni), linear_layer(pni)
        self.net = nn.Sequential(
            Normalize(mean, std),
            conv(in_channels, 32, 3, padding=1), nn.ReLU(), conv(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            conv(32, 64, 3, padding=1), nn.ReLU(), conv(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            linear(64 * (image_size // 4) ** 2, 256), nn.ReLU(), linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
