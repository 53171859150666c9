"""Projected gradient descent (Madry et al. 2018) and the fast gradient sign method
(Goodfellow et al. 2015) in Linf, L2 and L1 (sparse L1 descent, Tramer & Boneh 2019), with
random starts and restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from advlit.attacks.base import FRACTION, FixedBudgetAttack, Range
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.losses import attack_objective
from advlit.attacks.randomness import SampleRNG

Objective = Callable[[torch.Tensor], torch.Tensor]  # points -> per-sample loss to maximize


class PGD(FixedBudgetAttack):
    """``steps`` iterations of x <- Proj_{B(x0, eps) ∩ [0,1]}(x + step_size * d), where d is
    the norm's steepest-ascent direction of the loss (sign for Linf, normalized gradient for
    L2, sign on the top ``l1_sparsity`` fraction of coordinates for L1, skipping pixels already
    at the box boundary; :mod:`advlit.attacks.norms`); in L1 the projection onto ball ∩ box is
    exact (Croce & Hein 2021). A K-step attack costs exactly K forward+backward passes; with
    ``restarts`` > 1 each restart adds one forward pass to pick, per sample, the worst case
    (misclassified first, then the higher loss).

    Parameters
    ----------
    norm : {"linf", "l2", "l1"} or another registered norm, default "linf"
        The threat model's norm (:mod:`advlit.attacks.norms`).
    eps : float
        The budget, in [0, 1] pixel scale (e.g. 0.3 or 8/255 in Linf).
    steps : int, default 10
        Gradient steps per restart.
    step_size : float, optional
        Length of each step in the norm (default 2.5 * eps / steps).
    random_start : bool, default True
        Start from a uniform point of the ball (else from x).
    restarts : int, default 1
        Independent runs; the worst case per sample is kept.
    loss : {"ce", "margin", "dlr"}, default "ce"
        The objective: cross-entropy, the logit margin or the DLR loss (Croce & Hein 2020).
    l1_sparsity : float, default 0.01
        In L1, the fraction of coordinates each step moves.
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    hooks = ("project", "steepest_ascent", "random_start")
    counts = ("steps", "restarts")
    ranges = {"step_size": Range(0, optional=True), "l1_sparsity": FRACTION}  # step_size None: 2.5 eps/steps

    def __init__(self, *, norm: str = "linf", eps: float, steps: int = 10,
                 step_size: float | None = None, random_start: bool = True, restarts: int = 1,
                 loss: Literal["ce", "margin", "dlr"] = "ce", l1_sparsity: float = 0.01, **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, **kwargs)
        self.l1_sparsity = l1_sparsity
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.restarts = restarts
        self.loss = loss

    @property
    def alpha(self) -> float:
        """The step size actually used: ``step_size`` or 2.5 * eps / steps."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Objective:
        """The per-sample loss to maximize at a candidate point (``loss`` of the label)."""
        return lambda points: attack_objective(model(points), y, self.loss, self.targeted)

    def _start(self, x: torch.Tensor, rng: SampleRNG, restart: int) -> torch.Tensor:
        """Starting point: random in the ball (``random_start``; see the norm's random start) or x."""
        if self.random_start:
            return clamp_to_box(x + self.geometry.random_start(rng, 4 * restart, x, self.eps))
        return x

    def _single_run(self, objective: Objective, x: torch.Tensor, rng: SampleRNG,
                    restart: int = 0) -> torch.Tensor:
        geometry = self.geometry
        x_adv = self._start(x, rng, restart)
        for _ in range(self.steps):
            if not self.differentiable:
                x_adv = x_adv.detach().requires_grad_(True)
            elif not x_adv.requires_grad:
                x_adv = x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(x_adv).sum(), x_adv, create_graph=self.differentiable)
            x_adv = x_adv + self.alpha * geometry.steepest_ascent(grad, x_adv, self.l1_sparsity)
            x_adv = geometry.project_point(x, x_adv, self.eps)
        return x_adv

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        objective = self.objective(model, x, y)
        best = self._single_run(objective, x, rng)
        if self.restarts == 1:
            return best
        with torch.no_grad():
            best_score = self._score(model, best, y)
        for restart in range(1, self.restarts):
            candidate = self._single_run(objective, x, rng, restart)
            with torch.no_grad():
                score = self._score(model, candidate, y)
            better = score > best_score
            best = torch.where(batch_view(better, x), candidate, best)
            best_score = torch.maximum(score, best_score)
        return best

    def _score(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample worst-case score: success dominates, then the attack objective."""
        logits = model(x_adv)
        objective = attack_objective(logits, y, self.loss, self.targeted)
        success = self.is_adversarial(logits, y)
        return torch.where(success, torch.full_like(objective, float("inf")), objective)


class FGSM(PGD):
    """Fast gradient (sign) method: one step of size ``eps`` (Goodfellow et al. 2015).

    With ``random_start=True`` it is the "fast adversarial training" attack of Wong et al.
    (2020): a uniform start in the ball, one step of ``step_size`` (default 1.25 * eps),
    then projection back onto the ball.

    Parameters
    ----------
    eps : float
        The budget, in [0, 1] pixel scale.
    random_start : bool, default False
        FGSM-RS: start from a uniform point of the ball.
    step_size : float, optional
        The step (default eps, or 1.25 * eps from a random start).
    **kwargs
        ``norm``, ``loss`` and ``l1_sparsity`` of :class:`PGD`; ``targeted``, ``model_mode``,
        ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    single_step = True

    def __init__(self, *, eps: float, random_start: bool = False, step_size: float | None = None,
                 **kwargs) -> None:
        super().__init__(eps=eps, steps=1, step_size=step_size, random_start=random_start, restarts=1,
                         **kwargs)

    @property
    def alpha(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return 1.25 * self.eps if self.random_start else self.eps
