"""Adversarial paths: unbounded gradient ascent with a fixed step and no projection, recording
the step at which the prediction flips. The flip step measures how far a point lies from the
decision boundary along the gradient path; Crafting Label Noise (section 4) picks label-noise
poisons by it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import Attack, ModelMode, check_positive_int, model_state_guard
from advlit.attacks.geometry import NORMS, clamp_to_box, steepest_ascent
from advlit.attacks.randomness import SampleRNG


@dataclass
class AdversarialPath:
    """``flip_step[i]``: the first step after which sample i is adversarial (0 if it already
    was, -1 if never within ``steps``); ``points``: (steps + 1, *x.shape) when recorded."""

    flip_step: torch.Tensor
    points: torch.Tensor | None = None


class PathAttack(Attack):
    """x_{k+1} = x_k + step_size * d_k, d_k the steepest-ascent direction (``norm``) of the
    cross-entropy (untargeted) or of minus the cross-entropy to the target (targeted).
    There is no budget and no projection (``clamp`` keeps points in [0, 1] if asked). As an
    attack it returns the first adversarial point of each path (the last point if none)."""

    def __init__(self, *, steps: int = 100, step_size: float = 0.05, norm: str = "l2",
                 clamp: bool = False, targeted: bool = False, model_mode: ModelMode = "eval") -> None:
        super().__init__(targeted=targeted, model_mode=model_mode)
        self.steps, self.step_size, self.norm, self.clamp = steps, step_size, norm, clamp
        self.validate()

    def validate(self) -> None:
        check_positive_int("steps", self.steps)
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size!r}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; use one of {NORMS}")

    def _adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(dim=1)
        return pred == y if self.targeted else pred != y

    def walk(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             record: bool = False) -> tuple[torch.Tensor, AdversarialPath]:
        """(first adversarial point or last point, path) for a batch; see :meth:`path`."""
        flip = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
        first = x.clone()
        points = [x.detach().clone()] if record else []
        current = x.detach()
        sign = -1.0 if self.targeted else 1.0
        for k in range(self.steps + 1):
            current = current.detach().requires_grad_(True)
            logits = model(current)
            newly = self._adversarial(logits, y) & (flip < 0)
            flip = torch.where(newly, k, flip)
            first = torch.where(newly.view(-1, *([1] * (x.dim() - 1))), current.detach(), first)
            if k == self.steps:
                break
            (grad,) = torch.autograd.grad(sign * F.cross_entropy(logits, y, reduction="sum"), current)
            current = current.detach() + self.step_size * steepest_ascent(grad, self.norm)
            if self.clamp:
                current = clamp_to_box(current)
            if record:
                points.append(current.detach().clone())
        never = (flip < 0).view(-1, *([1] * (x.dim() - 1)))
        first = torch.where(never, current.detach(), first)
        return first, AdversarialPath(flip, torch.stack(points) if record else None)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        return self.walk(model, x, y)[0]

    def path(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             record: bool = False) -> AdversarialPath:
        """The flip steps (and, with ``record``, the points) of a batch, model left untouched."""
        with torch.inference_mode(False), torch.enable_grad():
            with model_state_guard(model, self.model_mode):
                return self.walk(model, x.detach().clone(), y.clone(), record)[1]
