"""Expectation over transformation (Athalye et al. 2018) for randomized models."""

from __future__ import annotations

import torch
from torch import nn


class ExpectationOverTransformation(nn.Module):
    """Wraps a randomized classifier: returns the log of the mean softmax over ``samples``
    forward passes (one batched pass of ``samples`` copies). Attacks on the wrapper follow
    the gradient of the expected prediction; its argmax is the averaged prediction."""

    def __init__(self, model: nn.Module, samples: int) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"EOT needs samples >= 1, got {samples}")
        self.model = model
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 1:
            return self.model(x)
        logits = self.model(x.repeat(self.samples, *([1] * (x.dim() - 1))))
        probs = logits.softmax(dim=1).view(self.samples, x.shape[0], -1).mean(dim=0)
        return probs.clamp_min(1e-12).log()
