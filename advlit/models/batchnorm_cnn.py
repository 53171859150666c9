"""A small BatchNorm CNN for 28x28 grey images: the benchmark zoo's CNN (docs/benchmarks.md)
and the classic case of catastrophic overfitting under FGSM training (Wong et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class BatchNormCNN(nn.Module):
    """[Conv3x3 - BatchNorm - ReLU - MaxPool] x 2 (16 and 32 channels) - Linear(100) - ReLU -
    Linear(``num_classes``), with normalization inside.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes.
    mean, std : sequence of float, default MNIST's (0.1307,), (0.3081,)
        Per-channel normalization applied to the [0, 1] input.
    """

    def __init__(self, num_classes: int = 10, mean: Sequence[float] = (0.1307,),
                 std: Sequence[float] = (0.3081,)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, num_classes))

    def forward(self, x):
        return self.net(x)
