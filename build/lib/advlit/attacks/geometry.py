"""Batch helpers shared by all attacks: per-sample broadcasting, zero-safe L2 normalization
and the [0, 1] image box. Everything norm-specific lives in :mod:`advlit.attacks.norms`."""

from __future__ import annotations

import torch

TINY = 1e-12


def batch_view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (N,) so it broadcasts against ``like`` (N, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


def normalize_l2(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||_2`` per sample; samples with a zero vector stay zero (no NaN)."""
    n = x.flatten(1).norm(p=2, dim=1).clamp_min(TINY)
    return x / batch_view(n, x)


def box_blocked(direction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Where a step from ``x`` along ``direction`` would leave the [0, 1] box at once: a pixel
    at 0 asked to decrease or at 1 asked to increase."""
    return ((x <= 0) & (direction < 0)) | ((x >= 1) & (direction > 0))


def clamp_to_box(x: torch.Tensor) -> torch.Tensor:
    """Clip images to the valid pixel domain [0, 1]."""
    return x.clamp(0.0, 1.0)
