"""The MNIST CNN of Madry et al. (2018, Appendix C), with a width multiplier."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class MadryCNN(nn.Module):
    """conv32(5x5) - pool - conv64(5x5) - pool - fc1024 - fc(num_classes), ReLU, "same"
    padding; ``width`` scales every layer (0.5 gives conv16-conv32-fc512, about 4x cheaper).

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    in_channels : int, default 1
        Input channels (1 grey, 3 colour).
    image_size : int, default 28
        Height and width of the square input images.
    width : float, default 1.0
        Scales every layer's width (0.5: conv16-conv32-fc512).
    mean : sequence of float, default (0.1307,)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (0.3081,)
        Per-channel standard deviation of that normalization.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 width: float = 1.0, mean: Sequence[float] = (0.1307,),
                 std: Sequence[float] = (0.3081,)) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        c1, c2, hidden = (max(1, round(n * width)) for n in (32, 64, 1024))
        side = image_size // 4
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.net(x)
