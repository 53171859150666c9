"""Expectation over transformation (Athalye et al. 2018) for randomized models."""

from __future__ import annotations

import torch
from torch import nn


class ExpectationOverTransformation(nn.Module):
    """Wraps a randomized classifier: returns the log of the mean softmax over ``samples``
    forward passes (batched passes over the ``samples`` copies, at most ``max_batch`` images
    each: on CPU a pass over 20 x 256 images costs more per image than 20 passes over 256).
    Attacks on the wrapper follow the gradient of the expected prediction; its argmax is the
    averaged prediction."""

    def __init__(self, model: nn.Module, samples: int, max_batch: int | None = None) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"EOT needs samples >= 1, got {samples}")
        self.model = model
        self.samples, self.max_batch = samples, max_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 1:
            return self.model(x)
        copies = x.repeat(self.samples, *([1] * (x.dim() - 1)))
        size = max(x.shape[0], self.max_batch or copies.shape[0])  # whole copies per pass
        logits = torch.cat([self.model(part) for part in copies.split(size - size % x.shape[0])])
        probs = logits.softmax(dim=1).view(self.samples, x.shape[0], -1).mean(dim=0)
        return probs.clamp_min(1e-12).log()
