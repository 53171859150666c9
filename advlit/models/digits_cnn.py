"""A small CNN for scikit-learn's 8x8 digits (the offline quickstart model)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class DigitsCNN(nn.Module):
    """conv16(3x3) - conv32(3x3) - pool - fc64 - fc(num_classes), for 1x8x8 inputs.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 1
        Input channels (1 grey, 3 colour).
    width : int, default 32
        Channels of the second convolution (the first has half).
    mean : sequence of float, default (0.3,)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.4,)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 mean: Sequence[float] = (0.3,), std: Sequence[float] = (0.4,)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(in_channels, width // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(width * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x):
        return self.net(x)
