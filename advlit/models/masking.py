"""Gradient-masking probes: wrappers that keep a model's predictions but break its input
gradients, to check that an evaluation is not fooled (Athalye et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn


class InputQuantization(nn.Module):
    """Rounds the input to ``levels`` grey levels before ``model``: zero input gradients.

    Parameters
    ----------
    model : nn.Module
        The wrapped classifier.
    levels : int, default 4
        Grey levels, >= 2.
    """

    def __init__(self, model: nn.Module, levels: int = 4) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.model, self.levels = model, levels

    def forward(self, x):
        return self.model(torch.round(x * (self.levels - 1)) / (self.levels - 1))


class _Scramble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class ScrambledGradient(nn.Module):
    """The forward of ``model``; input gradients multiplied by a fixed random sign mask of
    one image's ``shape`` (drawn from ``seed``), so gradient attacks walk the wrong way.

    Parameters
    ----------
    model : nn.Module
        The wrapped classifier.
    shape : tuple[int, ...]
        Shape (C, H, W) of one input image.
    seed : int, default 0
        Seeds the fixed sign mask.
    """

    def __init__(self, model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        self.model = model
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("mask", torch.randint(0, 2, tuple(shape), generator=generator).float() * 2 - 1)

    def forward(self, x):
        return self.model(_Scramble.apply(x, self.mask))
