"""Fast Minimum-Norm attack (Pintor, Roli, Brendel & Biggio 2021, "Fast minimum-norm
adversarial attacks through adaptive norm constraints", Algorithm 1), in Linf, L2, L1 and L0."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlit.attacks.base import FRACTION, MinNormAttack, Range
from advlit.attacks.geometry import TINY, batch_view, box_blocked, normalize_l2
from advlit.attacks.losses import signed_margin
from advlit.attacks.norms import get_norm
from advlit.attacks.randomness import SampleRNG

# (initial step size alpha, initial gamma) per norm when not given: the paper's in Linf and L2
DEFAULTS = {"linf": (1.0, 0.05), "l2": (1.0, 0.05), "l1": (5.0, 0.4), "l0": (2.0, 0.2)}


def cosine(start: float, end: float, step: int, steps: int) -> float:
    """Cosine annealing from ``start`` (step 0) towards ``end``."""
    return end + (start - end) * (1 + math.cos(math.pi * step / steps)) / 2


class FMN(MinNormAttack):
    """Gradient descent on the signed margin m (z_y - max_{j != y} z_j, or towards the target)
    with an L2-normalized step of size alpha, projected onto a ball of radius eps that adapts
    per sample (eq. 4-5 of the paper): while x + delta is not adversarial, eps grows by a
    factor (1 + gamma) once some adversarial point has been found, and before that jumps to
    ||delta|| + |m| / ||grad m||_* (the linearized distance to the boundary, dual norm); once
    it is adversarial, eps shrinks to min(eps (1 - gamma), best norm).
    In L0 (no dual norm) eps counts changed entries: it starts at 1 and moves by at least
    one, to min(eps - 1, floor(eps (1 - gamma)), best norm) or max(eps + 1, floor(eps (1 + gamma))),
    and the projection keeps the floor(eps) largest entries of delta (Sec. 3.1). alpha and gamma
    follow cosine annealing from ``step_size`` to ``step_size * final_fraction`` and from
    ``gamma`` to 0.001. The smallest adversarial delta is kept per sample; ``refine_steps``
    forward passes of bisection towards x (in L0: on the number of entries kept) then shrink it
    (never worse). Cost: ``steps`` forward+backward passes, plus ``refine_steps`` forward passes.

    Defaults: the paper's alpha 1 and gamma 0.05 in Linf and L2; in L1, whose balls are
    larger and whose radius moves by larger factors, alpha 5 and gamma 0.4, and in L0 alpha 2
    and gamma 0.2 (measured on two MNIST models at 100-1000 steps against alpha 1-30 and
    gamma 0.05-0.5; docs/benchmarks.md, "Min-norm attacks at equal gradient budgets").

    Parameters
    ----------
    norm : {"l2", "linf", "l1", "l0"}, default "l2"
        The norm whose smallest perturbation is sought.
    steps : int, default 100
        Gradient steps.
    step_size : float, optional
        alpha at the start (default per norm, ``DEFAULTS``).
    final_fraction : float, default 0.01
        alpha at the end, as a fraction of the start, in (0, 1].
    gamma : float, optional
        The radius's relative change per step at the start, in (0, 1) (default per norm).
    refine_steps : int, default 10
        Forward passes of the final bisection towards x (0: none).
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("linf", "l2", "l1", "l0")
    hooks = ("project",)
    counts = ("steps",)
    ranges = {"step_size": Range(0, optional=True), "final_fraction": FRACTION,  # None: DEFAULTS[norm]
              "gamma": Range(0, 1, optional=True)}

    def __init__(self, *, norm: str = "l2", steps: int = 100, step_size: float | None = None,
                 final_fraction: float = 0.01, gamma: float | None = None, refine_steps: int = 10,
                 **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.steps, self.step_size, self.final_fraction = steps, step_size, final_fraction
        self.gamma, self.refine_steps = gamma, refine_steps

    @property
    def alpha(self) -> float:
        """The initial step size: ``step_size``, else the norm's default (``DEFAULTS``)."""
        return self.step_size if self.step_size is not None else DEFAULTS[self.norm][0]

    @property
    def initial_gamma(self) -> float:
        """The initial radius factor: ``gamma``, else the norm's default (``DEFAULTS``)."""
        return self.gamma if self.gamma is not None else DEFAULTS[self.norm][1]

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        geometry, l0 = self.geometry, self.norm == "l0"
        dual = None if l0 else get_norm(geometry.dual)
        n = x.shape[0]
        delta = torch.zeros_like(x)
        best = x.clone()
        best_norm = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
        eps = torch.full_like(best_norm, 1.0 if l0 else math.inf)
        largest = geometry.measure(torch.maximum(x, 1 - x))  # no ball beyond this helps
        for step in range(self.steps):
            alpha = cosine(self.alpha, self.alpha * self.final_fraction, step, self.steps)
            gamma = cosine(self.initial_gamma, 0.001, step, self.steps)
            leaf = delta.detach().requires_grad_(True)
            logits = model(x + leaf)
            m = signed_margin(logits, y, self.targeted)
            (grad,) = torch.autograd.grad(m.sum(), leaf)
            with torch.no_grad():
                # coordinates the [0, 1] box blocks (descending m moves along -grad) neither
                # count in the distance to the boundary nor take a share of the step
                grad = grad * ~box_blocked(-grad, x + delta)
                adversarial = self.is_adversarial(logits, y)
                norm = geometry.measure(delta)
                better = adversarial & (norm < best_norm)
                best_norm = torch.where(better, norm, best_norm)
                best = torch.where(batch_view(better, x), x + delta, best)
                if l0:  # an integer radius, moved by at least one entry
                    shrunk = torch.minimum(eps - 1, (eps * (1 - gamma)).floor())
                    grown = torch.maximum(eps + 1, (eps * (1 + gamma)).floor())
                    eps = torch.where(adversarial, torch.minimum(shrunk, best_norm), grown).clamp_min(1)
                else:
                    to_boundary = norm + m.abs() / dual.measure(grad).clamp_min(TINY)
                    eps = torch.where(adversarial, torch.minimum(eps * (1 - gamma), best_norm),
                                      torch.where(best_norm.isfinite(), eps * (1 + gamma), to_boundary))
                eps = torch.minimum(eps, largest)
                delta = geometry.project_point(x, x + delta - alpha * normalize_l2(grad), eps) - x
        found = best_norm.isfinite() & (best_norm > 0)
        return self.boundary_search(model, x, y, best, found, self.refine_steps)
