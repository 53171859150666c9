"""Expectation over transformation (Athalye et al. 2018) for randomized models."""

from __future__ import annotations

import torch
from torch import nn

from advlit.attacks.base import model_state_guard


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

    def passes(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of every single pass, (samples, N, classes)."""
        copies_per_pass = max(1, (self.max_batch or self.samples * x.shape[0]) // x.shape[0])
        copies = x.repeat(self.samples, *([1] * (x.dim() - 1)))
        logits = torch.cat([self.model(part) for part in copies.split(copies_per_pass * x.shape[0])])
        return logits.view(self.samples, x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 1:
            return self.model(x)
        probs = self.passes(x).softmax(dim=2).mean(dim=0)
        return probs.clamp_min(1e-12).log()


def deployed_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int,
                      max_batch: int | None = None) -> torch.Tensor:
    """Per sample, the fraction of ``passes`` single eval-mode forward passes of a randomized
    ``model`` that classify it as ``y`` (a non-finite logit is never correct): the deployed
    model's expected accuracy, image by image."""
    with torch.no_grad(), model_state_guard(model, "eval", freeze=False):
        logits = ExpectationOverTransformation(model, passes, max_batch).passes(x)
    hits = (logits.argmax(dim=2) == y) & logits.isfinite().all(dim=2)
    return hits.to(x.dtype).mean(dim=0)
