"""Fully connected ReLU network over flattened images, optionally spectrally normalized."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from advlit.models.normalize import Normalize


class MLP(nn.Module):
    """Flatten - [Linear - ReLU] per hidden size - Linear(num_classes). ``spectral_norm``
    divides every weight by its largest singular value (Miyato et al. 2018), bounding each
    layer's Lipschitz constant by 1.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    input_shape : sequence of int, default (1, 28, 28)
        Shape (C, H, W) of one input image.
    hidden_sizes : sequence of int, default (256, 256)
        Units per hidden layer.
    mean : sequence of float, default (0.0,)
        Per-channel mean of the normalization applied to the [0, 1] input.
    std : sequence of float, default (1.0,)
        Per-channel standard deviation of that normalization.
    spectral_norm : bool, default False
        Divide every weight by its largest singular value (Miyato et al. 2018).
    """

    def __init__(self, num_classes: int = 10, input_shape: Sequence[int] = (1, 28, 28),
                 hidden_sizes: Sequence[int] = (256, 256), mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,), spectral_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalize(mean, std), nn.Flatten()]
        width = math.prod(input_shape)
        def linear(a: int, b: int) -> nn.Module:
            layer = nn.Linear(a, b)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        for hidden in hidden_sizes:
            layers += [linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
