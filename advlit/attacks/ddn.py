"""Decoupled Direction and Norm (Rony, Hafemann, Oliveira, Ben Ayed, Sabourin & Granger 2019,
"Decoupling direction and norm for efficient gradient-based L2 adversarial attacks and
defenses", Algorithm 1), L2."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import FRACTION, OPEN_UNIT, POSITIVE, MinNormAttack
from advlit.attacks.fmn import cosine
from advlit.attacks.geometry import batch_view, box_blocked, clamp_to_box, normalize_l2
from advlit.attacks.randomness import SampleRNG


class DDN(MinNormAttack):
    """Gradient ascent on the cross-entropy (descent towards the target when targeted) with an
    L2-normalized step of size alpha, then the perturbation is put back on the sphere of
    radius eps (not inside the ball): the step chooses the direction, eps the norm. eps starts
    at ``init_eps`` and is multiplied by 1 - gamma while x + delta is adversarial, by 1 + gamma
    while not (Algorithm 1). alpha follows cosine annealing from ``step_size`` to ``step_size
    * final_fraction``. As in :class:`~advlit.attacks.FMN`, coordinates the [0, 1] box blocks
    take no share of the step. The smallest adversarial point is kept per sample and
    ``refine_steps`` forward passes of bisection towards x shrink it. Cost: ``steps``
    forward+backward passes, plus ``refine_steps`` forward passes.

    Parameters
    ----------
    norm : {"l2"}, default "l2"
        The norm (L2 only).
    steps : int, default 100
        Gradient steps.
    init_eps : float, default 1.0
        The sphere's radius at the start, in [0, 1] pixel scale.
    step_size : float, default 1.0
        alpha at the start.
    final_fraction : float, default 0.01
        alpha at the end, as a fraction of the start, in (0, 1].
    gamma : float, default 0.05
        The radius's relative change per step, in (0, 1).
    refine_steps : int, default 10
        Forward passes of the final bisection towards x (0: none).
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("l2",)
    counts = ("steps",)
    ranges = {"init_eps": POSITIVE, "step_size": POSITIVE, "final_fraction": FRACTION, "gamma": OPEN_UNIT}

    def __init__(self, *, norm: str = "l2", steps: int = 100, init_eps: float = 1.0, step_size: float = 1.0,
                 final_fraction: float = 0.01, gamma: float = 0.05, refine_steps: int = 10, **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.steps, self.init_eps, self.step_size = steps, init_eps, step_size
        self.final_fraction, self.gamma, self.refine_steps = final_fraction, gamma, refine_steps

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        n = x.shape[0]
        delta = torch.zeros_like(x)
        best = x.clone()
        best_norm = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
        eps = torch.full_like(best_norm, self.init_eps)
        largest = self.geometry.measure(torch.maximum(x, 1 - x))  # no sphere beyond this helps
        ascent = -1.0 if self.targeted else 1.0
        for step in range(self.steps):
            alpha = cosine(self.step_size, self.step_size * self.final_fraction, step, self.steps)
            leaf = delta.detach().requires_grad_(True)
            logits = model(x + leaf)
            loss = F.cross_entropy(logits, y, reduction="sum") * ascent
            (grad,) = torch.autograd.grad(loss, leaf)
            with torch.no_grad():
                grad = grad * ~box_blocked(grad, x + delta)
                adversarial = self.is_adversarial(logits, y)
                norm = self.geometry.measure(delta)
                better = adversarial & (norm < best_norm)
                best_norm = torch.where(better, norm, best_norm)
                best = torch.where(batch_view(better, x), x + delta, best)
                eps = torch.minimum(eps * torch.where(adversarial, 1 - self.gamma, 1 + self.gamma), largest)
                delta = delta + alpha * normalize_l2(grad)
                delta = delta * batch_view(eps / self.geometry.measure(delta).clamp_min(1e-12), x)
                delta = clamp_to_box(x + delta) - x
        found = best_norm.isfinite() & (best_norm > 0)
        return self.boundary_search(model, x, y, best, found, self.refine_steps)
