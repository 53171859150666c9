"""The MNIST CNN of Carlini & Wagner (2017, Table 1), also TRADES' "SmallCNN"."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class CWCNN(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc(num_classes), 3x3 convs, ReLU,
    dropout before the fully connected layers as in the paper's training setup.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 1
        Input channels (1 grey, 3 colour).
    image_size : int, default 28
        Height and width of the square input images.
    dropout : float, default 0.5
        Dropout probability.
    mean : sequence of float, default (0.1307,)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.3081,)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 dropout: float = 0.5, mean: Sequence[float] = (0.1307,),
                 std: Sequence[float] = (0.3081,)) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for CWCNN (needs >= 14)")
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * side * side, 200), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x):
        return self.net(x)
