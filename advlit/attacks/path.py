"""Adversarial paths: unbounded gradient ascent with a fixed step and no projection, recording
the step at which the prediction flips. The flip step measures how far a point lies from the
decision boundary along the gradient path; Crafting Label Noise (section 4) picks label-noise
poisons by it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import POSITIVE, NormAttack
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.randomness import SampleRNG
from advlit.checkpoints import load_network


@dataclass
class AdversarialPath:
    """``flip_step[i]``: the first step after which sample i is adversarial (0 if it already
    was, -1 if never within ``steps``); ``points``: (steps + 1, *x.shape) when recorded."""

    flip_step: torch.Tensor
    points: torch.Tensor | None = None


class PathAttack(NormAttack):
    """x_{k+1} = x_k + step_size * d_k, d_k the steepest-ascent direction (``norm``) of the
    cross-entropy (untargeted) or of minus the cross-entropy to the target (targeted).
    There is no budget and no projection (``clamp`` keeps points in [0, 1] if asked). As an
    attack it returns the first adversarial point of each path (the last point if none).

    Parameters
    ----------
    steps : int, default 100
        Steps of the path.
    step_size : float, default 0.05
        Length of each step in ``norm``.
    norm : str, default "l2"
        The norm whose steepest-ascent direction is followed.
    clamp : bool, default False
        Keep the path in the [0, 1] box.
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    hooks = ("steepest_ascent",)
    counts = ("steps",)
    ranges = {"step_size": POSITIVE}

    def __init__(self, *, steps: int = 100, step_size: float = 0.05, norm: str = "l2",
                 clamp: bool = False, **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.steps, self.step_size, self.clamp = steps, step_size, clamp

    @property
    def boxed(self) -> bool:
        """Inputs must be images in [0, 1] only when the path is clamped to that box."""
        return self.clamp

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
            newly = self.is_adversarial(logits, y) & (flip < 0)
            flip = torch.where(newly, k, flip)
            first = torch.where(batch_view(newly, x), current.detach(), first)
            if k == self.steps:
                break
            (grad,) = torch.autograd.grad(sign * F.cross_entropy(logits, y, reduction="sum"), current)
            current = current.detach() + self.step_size * self.geometry.steepest_ascent(grad)
            if self.clamp:
                current = clamp_to_box(current)
            if record:
                points.append(current.detach().clone())
        never = batch_view(flip < 0, x)
        first = torch.where(never, current.detach(), first)
        return first, AdversarialPath(flip, torch.stack(points) if record else None)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        return self.walk(model, x, y)[0]

    def path(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             record: bool = False) -> AdversarialPath:
        """The flip steps (and, with ``record``, the points) of a batch, under the same guard
        as a call (model left untouched)."""
        return self.guarded(lambda model, x, y, rng: self.walk(model, x, y, record)[1], model, x, y)


class FlipSteps:
    """Adversarial-path length as a score of training points (a ``PointScore``), for
    :class:`~advlit.data.ScoreSelection` (Crafting Label Noise, section 4): the number of
    unbounded gradient-ascent steps (a clamped :class:`PathAttack`) the clean ``model`` needs
    to flip each point, to its flip label with ``targeted``, else to any other class; points
    that never flip score ``steps + 1``. The model's weights come from ``checkpoint`` (a file
    or a run folder, loaded safely when first scored) unless it is already trained.

    Parameters
    ----------
    model : nn.Module
        The clean classifier.
    checkpoint : str, optional
        Its weights (a file or a run folder).
    targeted : bool, default True
        Walk towards each point's flip label (else to any other class).
    steps, step_size, norm
        The path's, as in :class:`PathAttack`.
    batch_size : int, default 1000
        Points walked at a time.
    """

    def __init__(self, model: nn.Module, checkpoint: str | None = None, targeted: bool = True,
                 steps: int = 100, step_size: float = 0.05, norm: str = "l2", batch_size: int = 1000) -> None:
        self.model, self.checkpoint, self.batch_size = model, checkpoint, batch_size
        self.attack = PathAttack(steps=steps, step_size=step_size, norm=norm, targeted=targeted, clamp=True)

    def scores(self, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The flip step of every point (``steps + 1`` where it never flips)."""
        model = load_network(self.model, self.checkpoint)
        labels = targets if self.attack.targeted else y
        with torch.no_grad():
            known = model(x[:1]).shape[1]
        if int(labels.max()) >= known:
            raise ValueError(f"a targeted path needs flip labels the clean model knows (< {known}); "
                             "use targeted: false with target: new_class")
        steps = torch.cat([self.attack.path(model, a, b).flip_step
                           for a, b in zip(x.split(self.batch_size), labels.split(self.batch_size))])
        return torch.where(steps < 0, self.attack.steps + 1, steps)
