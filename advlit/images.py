"""Images for loggers: one helper sends images to every logger that takes them (W&B's
``log_image``; W&B stores a float tensor's values as bytes without scaling, so [0, 1] images
are converted to uint8 arrays here first), and the adversary-critic's confidence grid."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advlit.attacks.confidence import HighConfidenceAttack


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) for one channel, (H, W, C) otherwise, uint8."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()


def log_images(loggers, key: str, images: list[torch.Tensor], captions: list[str]) -> None:
    """Log (C, H, W) [0, 1] ``images`` under ``key`` to each logger with ``log_image``."""
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[to_uint8(image) for image in images], caption=captions)


def confidence_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int,
                    confidence: float = 0.95, steps: int = 50) -> torch.Tensor | None:
    """A (C, k*H, k*W) image: row i is the first image of class i attacked to every target j
    at ``confidence`` (the diagonal is the original), thesis Figure 4.2; None if a class is
    missing from the batch."""
    first = [(y == c).nonzero() for c in range(k)]
    if any(len(f) == 0 for f in first):
        return None
    sources = x[torch.cat([f[0] for f in first])]
    attack = HighConfidenceAttack(steps=steps, confidence=confidence, targeted=True, step_clip=0.5)
    rows = []
    for i in range(k):
        images = sources[i].expand(k, *sources.shape[1:]).clone()
        adv = attack(model, images, torch.arange(k, device=x.device))
        adv[i] = sources[i]
        rows.append(torch.cat(list(adv), dim=2))
    return torch.cat(rows, dim=1)
