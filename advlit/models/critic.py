"""The critic of the adversary-critic defense (Matyasko & Chau 2018; thesis ch. 4): one
real-vs-adversarial score per class, the class label selecting the output."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class Critic(nn.Module):
    """Gaussian input noise (std ``input_noise``, training mode only) - flatten - two hidden
    layers of ``hidden`` leaky-ReLU units - ``num_classes`` scores (thesis MNIST critic:
    1200 units). ``forward(x, labels)`` returns the score of each sample's own class.

    Parameters
    ----------
    num_classes : int, default 10
        Output classes (the CLI links it from the data).
    input_shape : sequence of int, default (1, 28, 28)
        Shape (C, H, W) of one input image.
    hidden : int, default 1200
        Units per hidden layer.
    input_noise : float, default 0.3
        Standard deviation of the Gaussian input noise in training mode.
    slope : float, default 0.2
        Negative slope of the leaky ReLUs.
    """

    def __init__(self, num_classes: int = 10, input_shape: Sequence[int] = (1, 28, 28),
                 hidden: int = 1200, input_noise: float = 0.3, slope: float = 0.2) -> None:
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise!r}")
        self.input_noise = input_noise
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), hidden), nn.LeakyReLU(slope),
            nn.Linear(hidden, hidden), nn.LeakyReLU(slope),
            nn.Linear(hidden, num_classes),
        )
        self.num_classes, self.input_shape = num_classes, tuple(input_shape)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        return self.net(x).gather(1, labels[:, None]).squeeze(1)
