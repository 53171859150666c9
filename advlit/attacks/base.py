"""Attack base classes and the guard that leaves the attacked model exactly as it was.

Contract (DESIGN.md): ``attack(model, x, y) -> x_adv`` with the shape, dtype and device of
``x``; images live in [0, 1]; ``targeted=True`` makes ``y`` the target class. The model's
training flags, parameters, ``.grad`` and BatchNorm running statistics are unchanged
afterwards, and the model runs in eval mode unless ``model_mode="train"``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from advlit.attacks.geometry import NORMS
from advlit.attacks.randomness import SampleRNG

ModelMode = Literal["eval", "train"]


@contextlib.contextmanager
def model_state_guard(model: nn.Module, mode: ModelMode = "eval", freeze: bool = True) -> Iterator[None]:
    """Run ``model`` in ``mode`` and restore every module's own training flag afterwards.

    With ``freeze=True`` parameters stop requiring gradients for the duration, so no graph
    is built over them and their ``.grad`` cannot change. In train mode the BatchNorm
    running statistics that the forward passes update are restored on exit.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"unknown model mode {mode!r}; use 'eval' or 'train'")
    flags = [(m, m.training) for m in model.modules()]
    frozen = [p for p in model.parameters() if p.requires_grad] if freeze else []
    saved_stats = []
    if mode == "train":
        saved_stats = [(b, b.detach().clone()) for m in model.modules()
                       if isinstance(m, nn.modules.batchnorm._NormBase) for b in m.buffers()]
    model.train(mode == "train")
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for buf, value in saved_stats:
                buf.copy_(value)


def check_images(x: torch.Tensor) -> None:
    """Attack inputs must be floating-point images in [0, 1] without NaN (one host sync)."""
    if not x.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got dtype {x.dtype}; convert uint8 "
                         "batches with x.float() / 255")
    if x.numel() == 0:
        return
    nan, low, high = torch.stack([x.isnan().any(), x.min() < 0, x.max() > 1]).tolist()
    if nan:
        raise ValueError("images contain NaN pixels; clean the data before attacking")
    if low or high:
        raise ValueError(f"images must lie in [0, 1], got values in [{x.min().item():g}, "
                         f"{x.max().item():g}]; divide 0-255 images by 255 and keep any "
                         "mean/std normalization inside the model")


class Attack:
    """Base class: validates shared options and wraps :meth:`perturb` in the guard.

    Subclasses implement ``perturb(model, x, y, rng)`` and may assume gradients are enabled,
    inference mode is off and ``x`` is an ordinary (autograd-capable) tensor. ``rng`` is a
    :class:`~advlit.attacks.randomness.SampleRNG`, the only source of an attack's randomness.

    Calling ``attack(model, x, y, index=idx, seed=s)`` with the samples' dataset indices keys
    that randomness per sample, so the result for a sample never depends on its batch or on
    the number of processes, and the attack draws nothing from the global RNG (a randomized
    model still draws its own noise from it; the evaluation engine restores it afterwards).
    Without ``index`` (inside training) the keys are one draw from the global RNG, on first
    use, so every training step gets fresh randomness.
    """

    def __init__(self, *, targeted: bool = False, model_mode: ModelMode = "eval",
                 differentiable: bool = False) -> None:
        if model_mode not in ("eval", "train"):
            raise ValueError(f"model_mode must be 'eval' or 'train', got {model_mode!r}")
        self.targeted = targeted
        self.model_mode = model_mode
        self.differentiable = differentiable

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if index is not None and index.shape[0] != x.shape[0]:
            raise ValueError(f"index has {index.shape[0]} entries for {x.shape[0]} samples")
        check_images(x)
        rng = (SampleRNG(n=x.shape[0], device=x.device) if index is None
               else SampleRNG.from_index(index.to(x.device), seed))
        # Lightning evaluates under inference mode; attacks need autograd, so switch it
        # off here (and clone, since inference tensors cannot be saved for backward).
        with torch.inference_mode(False), torch.enable_grad():
            if not self.differentiable:
                x, y = x.detach().clone(), y.clone()
            with model_state_guard(model, self.model_mode, freeze=not self.differentiable):
                x_adv = self.perturb(model, x, y, rng)
        return x_adv if self.differentiable else x_adv.detach()

    def replace(self, **changes) -> Attack:
        """A copy of this attack with some hyper-parameters changed (validated again)."""
        new = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(self, key):
                raise ValueError(f"{type(self).__name__} has no hyper-parameter {key!r}")
            setattr(new, key, value)
        new.validate()
        return new

    def validate(self) -> None:
        """Check hyper-parameters; raise ValueError naming the bad value."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class FixedBudgetAttack(Attack):
    """An attack that searches inside the ``norm`` ball of radius ``eps`` around x."""

    def __init__(self, *, norm: str = "linf", eps: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm = norm
        self.eps = eps

    def validate(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; use one of {NORMS}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")


class MinNormAttack(Attack):
    """An attack that looks for the smallest ``norm`` perturbation that changes the decision.

    Returns, per sample, the smallest adversarial example it found and ``x`` unchanged where
    it found none. ``norms`` lists the norms a subclass supports.
    """

    norms: tuple[str, ...] = ("l2",)

    def __init__(self, *, norm: str = "l2", **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm = norm

    def validate(self) -> None:
        if self.norm not in self.norms:
            raise ValueError(f"{type(self).__name__} supports norm in {self.norms}, got {self.norm!r}")

    def is_adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(dim=1)
        return pred == y if self.targeted else pred != y


def check_positive_int(name: str, value) -> None:
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
