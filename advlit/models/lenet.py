"""LeNet-5 (LeCun et al. 1998) for 28x28 grey images, with ReLU and max pooling."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class LeNet5(nn.Module):
    """conv6(5x5, pad 2) - pool - conv16(5x5) - pool - fc120 - fc84 - fc(num_classes)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 mean: Sequence[float] = (0.1307,), std: Sequence[float] = (0.3081,)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.net(x)
