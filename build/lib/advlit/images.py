"""Images for loggers: one helper sends images to every logger that takes them (W&B's
``log_image``); W&B stores a float tensor's values as bytes without scaling, so [0, 1] images
are converted to uint8 arrays here first."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) for one channel, (H, W, C) otherwise, uint8."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()


def log_images(loggers, key: str, images: list[torch.Tensor], captions: list[str]) -> None:
    """Log (C, H, W) [0, 1] ``images`` under ``key`` to each logger with ``log_image``."""
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[to_uint8(image) for image in images], caption=captions)
