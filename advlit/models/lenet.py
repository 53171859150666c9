"""LeNet-5 (LeCun et al. 1998) for 28x28 grey images, with ReLU and max pooling; ``pni=True``
puts parametric weight noise (Rakin et al.) on every layer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.noise import conv_layer, linear_layer
from advlit.models.normalize import Normalize


class LeNet5(nn.Module):
    """conv6(5x5, pad 2) - pool - conv16(5x5) - pool - fc120 - fc84 - fc(num_classes).

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 1
        Input channels (1 grey, 3 colour).
    mean : sequence of float, default (0.1307,)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.3081,)
        Per-channel standard deviation of that normalization.
    pni : bool, default False
        Parametric noise injection on every weight (He et al. 2019).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 mean: Sequence[float] = (0.1307,), std: Sequence[float] = (0.3081,),
                 pni: bool = False) -> None:
        super().__init__()
        conv, linear = conv_layer(pni), linear_layer(pni)
        self.net = nn.Sequential(
            Normalize(mean, std),
            conv(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            conv(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            linear(16 * 5 * 5, 120), nn.ReLU(),
            linear(120, 84), nn.ReLU(),
            linear(84, num_classes),
        )

    def forward(self, x):
        return self.net(x)
