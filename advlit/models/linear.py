"""Binary logistic regression as a two-logit classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class BinaryLinear(nn.Module):
    """z = theta^T x + theta_0, returned as logits (0, z): cross-entropy on them is the
    logistic loss log(1 + exp(-y~ z)) with y~ = +1 for class 1 and -1 for class 0. No input
    normalization, so theta is in pixel space. ``num_classes`` must be 2.

    Parameters
    ----------
    num_classes : int, default 2
        Output classes (the CLI links it from the data).
    input_shape : sequence of int, default (1, 28, 28)
        Shape (C, H, W) of one input image.
    """

    def __init__(self, num_classes: int = 2, input_shape: Sequence[int] = (1, 28, 28)) -> None:
        super().__init__()
        if num_classes != 2:
            raise ValueError(f"BinaryLinear is a two-class model, got num_classes={num_classes}; "
                             "select two classes in the datamodule (classes: [0, 1])")
        self.linear = nn.Linear(math.prod(input_shape), 1)
        self.input_shape = tuple(input_shape)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.score(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)
