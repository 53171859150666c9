"""Fast Adaptive Boundary attack, targeted (Croce & Hein 2020, "Minimally distorted adversarial
examples with a fast adaptive boundary attack", Sec. 3; FAB-T as in AutoAttack), in Linf, L2
and L1."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlit.attacks.base import OPEN_UNIT, MinNormAttack, Range
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.losses import other_classes_by_logit
from advlit.attacks.randomness import SampleRNG


def project_onto_hyperplane(point: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str,
                            bisections: int = 30) -> torch.Tensor:
    """The smallest ``norm`` step d with w . d = c (per sample) that keeps point + d in the
    [0, 1] box; where the box makes that impossible, the step that gets closest. Each
    coordinate moves by m_i >= 0 in the direction sign(c w_i), up to the box's room cap_i:
    L1 fills the coordinates in order of |w_i| (exact), L2 takes m_i = min(lam |w_i|, cap_i)
    and Linf m_i = min(t, cap_i) with lam or t found by bisection (the KKT solutions)."""
    flat_w, flat_p = w.flatten(1), point.flatten(1)
    direction = torch.sign(flat_w) * torch.sign(c)[:, None]
    cap = torch.where(direction > 0, 1 - flat_p, flat_p) * (direction != 0)
    rate, need = flat_w.abs(), c.abs()[:, None]
    if norm == "l1":
        rate_sorted, order = rate.sort(dim=1, descending=True)
        cap_sorted = cap.gather(1, order)
        reached = (rate_sorted * cap_sorted).cumsum(1)
        before = reached - rate_sorted * cap_sorted
        partial = ((need - before) / rate_sorted.clamp_min(1e-12)).clamp(min=0)
        move_sorted = torch.where(reached <= need, cap_sorted, torch.minimum(partial, cap_sorted))
        move = torch.zeros_like(cap).scatter(1, order, move_sorted)
    else:
        scale = rate if norm == "l2" else (rate > 0).to(rate.dtype)
        low = torch.zeros_like(need)
        high = (cap / scale.clamp_min(1e-12)).amax(1, keepdim=True)
        for _ in range(bisections):
            mid = (low + high) / 2
            short = (rate * torch.minimum(mid * scale, cap)).sum(1, keepdim=True) < need
            low, high = torch.where(short, mid, low), torch.where(short, high, mid)
        move = torch.minimum(high * scale, cap)
    return (direction * move).view_as(point)


class FABT(MinNormAttack):
    """FAB-T: for each of the ``target_classes`` classes t with the highest clean logits after
    the true one, ``steps`` iterations that linearize g = z_y - z_t at the current point x_k,
    project both x_k and the original x onto the hyperplane g = 0 inside the box (smallest
    ``norm`` step, :func:`project_onto_hyperplane`), and move to the convex combination
    (1 - a)(x_k + eta d_k) + a (x + eta d_0), a = min(|d_k| / (|d_k| + |d_0|), alpha_max)
    (eq. 9-10 of the paper): extrapolate past the boundary, biased towards x. When x_k is
    misclassified it is recorded (smallest per sample over all targets) and pulled back
    to x + beta (x_k - x) before the step, with the step taken from g's linearization at x_k,
    so each iteration costs one forward+backward pass. The first run starts at x, as
    AutoAttack's FAB-T (one restart). ``refine_steps`` forward passes of bisection towards x
    then shrink the result. Cost: at most ``target_classes * steps`` forward+backward passes.

    Parameters
    ----------
    norm : {"linf", "l2", "l1"}, default "linf"
        The norm whose smallest perturbation is sought.
    steps : int, default 100
        Iterations per target class.
    target_classes : int, default 9
        How many of the most likely other classes to target, in order.
    eta : float, default 1.05
        Extrapolation past the boundary, >= 1.
    beta : float, default 0.9
        Pull-back towards x of a misclassified iterate, in (0, 1).
    alpha_max : float, default 0.1
        Largest bias towards x in the step's convex combination, in (0, 1).
    refine_steps : int, default 10
        Forward passes of the final bisection towards x (0: none).
    **kwargs
        ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("linf", "l2", "l1")
    supports_targeted = False  # its targets are internal; y is always the true label
    counts = ("steps", "target_classes")
    ranges = {"eta": Range(1, bounds="[)"), "beta": OPEN_UNIT, "alpha_max": OPEN_UNIT}

    def __init__(self, *, norm: str = "linf", steps: int = 100, target_classes: int = 9, eta: float = 1.05,
                 beta: float = 0.9, alpha_max: float = 0.1, refine_steps: int = 10, **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.steps, self.target_classes, self.refine_steps = steps, target_classes, refine_steps
        self.eta, self.beta, self.alpha_max = eta, beta, alpha_max

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        best = x.clone()
        best_norm = torch.full((x.shape[0],), math.inf, device=x.device, dtype=x.dtype)
        ranked = other_classes_by_logit(logits, y)
        for j in range(min(self.target_classes, ranked.shape[1])):
            self._towards(model, x, y, ranked[:, j], best, best_norm)
        found = best_norm.isfinite() & (best_norm > 0)
        return self.boundary_search(model, x, y, best, found, self.refine_steps)

    def _towards(self, model, x, y, target, best, best_norm) -> None:
        """``steps`` iterations towards ``target``, updating ``best``/``best_norm`` in place."""
        measure, x_k = self.geometry.measure, x.clone()
        for k in range(self.steps):
            leaf = x_k.detach().requires_grad_(True)
            logits = model(leaf)
            g = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
            (grad,) = torch.autograd.grad(g.sum(), leaf)
            with torch.no_grad():
                adversarial = self.is_adversarial(logits, y)
                norm = measure(x_k - x)
                better = adversarial & (norm < best_norm)
                best_norm.copy_(torch.where(better, norm, best_norm))
                best.copy_(torch.where(batch_view(better, x), x_k, best))
                if k == self.steps - 1:  # a step from here would never be evaluated
                    break
                start = torch.where(batch_view(adversarial, x), x + self.beta * (x_k - x), x_k)
                # the hyperplane g(x_k) + grad . (z - x_k) = 0, reached from start and from x
                level = g + (grad * (start - x_k)).flatten(1).sum(1)
                d_k = project_onto_hyperplane(start, grad, -level, self.norm)
                to_x = (grad * (x - start)).flatten(1).sum(1)
                d_0 = project_onto_hyperplane(x, grad, -level - to_x, self.norm)
                n_k, n_0 = measure(d_k), measure(d_0)
                a = (n_k / (n_k + n_0).clamp_min(1e-12)).clamp(max=self.alpha_max)
                a = batch_view(a, x)
                x_k = clamp_to_box((1 - a) * (start + self.eta * d_k) + a * (x + self.eta * d_0))
