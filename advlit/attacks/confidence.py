"""The differentiable high-confidence targeted attack of the adversary-critic defense
(Matyasko & Chau, NeurIPS 2018; thesis ch. 4, Algorithm 1 and eq. 4.8)."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlit.attacks.base import OPEN_UNIT, POSITIVE, MinNormAttack, Range
from advlit.attacks.geometry import TINY, batch_view, clamp_to_box
from advlit.attacks.randomness import SampleRNG


class HighConfidenceAttack(MinNormAttack):
    """N Newton steps on log p_t(x) towards log C (eq. 4.8):

        r = (log C - log p_t(x)) / ||g||_2^2 * g,  g = grad_x log p_t(x),
        x <- clip_[0,1](x + s * r),  s = 1[p_t(x) < C]

    so each sample stops once the target confidence C is reached. With ``differentiable``
    the gradients g are built with ``create_graph`` (second order) and the stopping
    indicator s is a sigmoid-adjusted straight-through estimator: 1[.] in the forward pass,
    the derivative of sigmoid(``slope`` * (log C - log p_t)) in the backward pass, so a loss
    on x_adv back-propagates into the classifier's parameters. ``step_clip`` bounds each
    step's L2 norm (the thesis evaluates with it). ``confidence`` is a float or, through
    :meth:`toward`, one value per sample.

    As an evaluation (min-norm) attack it is untargeted by default: the target is the most
    likely other class, and it returns x_adv where the prediction changed, else x.

    Parameters
    ----------
    steps : int, default 5
        Newton steps N.
    confidence : float, default 0.95
        The target confidence C, in (0, 1).
    step_clip : float, optional
        Bound on each step's L2 norm (None: no bound).
    slope : float, default 1.0
        Slope of the sigmoid in the straight-through estimator (``differentiable``).
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("l2",)
    counts = ("steps",)
    ranges = {"confidence": OPEN_UNIT, "step_clip": Range(0, optional=True), "slope": POSITIVE}

    def __init__(self, *, steps: int = 5, confidence: float = 0.95, step_clip: float | None = None,
                 slope: float = 1.0, **kwargs) -> None:
        super().__init__(norm="l2", **kwargs)
        self.steps, self.confidence, self.step_clip, self.slope = steps, confidence, step_clip, slope

    def toward(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
               confidence: torch.Tensor | float | None = None) -> torch.Tensor:
        """The walk from x towards ``target`` (every point, reached or not), under the same
        guard as a call; keeps the graph to the model's parameters when ``differentiable``
        (the adversary-critic defense trains through it). ``confidence``: per sample, or the
        attack's own."""
        walk = lambda model, x, target, rng: self._iterate(model, x, target, confidence)  # noqa: E731
        x_adv = self.guarded(walk, model, x, target)
        return x_adv if self.differentiable else x_adv.detach()

    def _iterate(self, model, x, target, confidence=None) -> torch.Tensor:
        c = self.confidence if confidence is None else confidence
        log_c = torch.as_tensor(c, dtype=x.dtype, device=x.device).log().expand(x.shape[0])
        x_adv = x if (self.differentiable and x.requires_grad) else x.detach().clone()
        for _ in range(self.steps):
            if not x_adv.requires_grad:
                x_adv = x_adv.requires_grad_(True)
            log_p = model(x_adv).log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)
            (g,) = torch.autograd.grad(log_p.sum(), x_adv, create_graph=self.differentiable)
            gap = log_c - log_p
            norm_sq = g.flatten(1).pow(2).sum(1).clamp_min(TINY)
            r = g * batch_view(gap / norm_sq, g)
            if self.step_clip is not None:
                r_norm = r.flatten(1).norm(dim=1).clamp_min(TINY)
                r = r * batch_view(torch.clamp(self.step_clip / r_norm, max=1.0), r)
            hard = (gap > 0).to(x.dtype)
            soft = torch.sigmoid(self.slope * gap)
            stop = hard + (soft - soft.detach()) if self.differentiable else hard
            x_adv = clamp_to_box(x_adv + batch_view(stop, r) * r)
            if not self.differentiable:
                x_adv = x_adv.detach()
        return x_adv

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        if self.targeted:
            target = y
        else:
            with torch.no_grad():
                logits = model(x)
            target = logits.scatter(1, y[:, None], -math.inf).argmax(dim=1)
        x_adv = self._iterate(model, x, target)
        with torch.no_grad():
            fooled = self.is_adversarial(model(x_adv), y)
        return torch.where(batch_view(fooled, x), x_adv, x)
