"""DeepFool (Moosavi-Dezfooli et al. 2016), batched, in L2 and Linf, box-constrained."""

from __future__ import annotations

import torch
from torch import nn

from advlit.attacks.base import NON_NEGATIVE, MinNormAttack, Range
from advlit.attacks.geometry import TINY, batch_view, clamp_to_box
from advlit.attacks.norms import get_norm
from advlit.attacks.randomness import SampleRNG


class DeepFool(MinNormAttack):
    """Iteratively step to the closest linearized decision boundary among the
    ``candidates`` most likely other classes: r_k = (|f_k| + 1e-4) / ||w_k||_* * d(w_k), where
    f_k = z_k - z_y, w_k its input gradient, ||.||_* the dual norm and d the norm's
    steepest-ascent direction (L2: w / ||w||_2; Linf: sign(w), dual L1). ``step_clip`` bounds
    the norm of each iteration's step (the thesis uses 0.5 or 0.1); the total is scaled by
    (1 + overshoot) and clipped to [0, 1]. Each iteration costs one forward and ``candidates``
    backward passes over the samples not yet adversarial: every ``check_every`` steps (one host
    sync) finished samples leave the working batch, and the loop ends when none is left.

    Parameters
    ----------
    norm : {"l2", "linf"}, default "l2"
        The norm whose smallest perturbation is sought.
    steps : int, default 50
        Iterations at most.
    overshoot : float, default 0.02
        The final perturbation is scaled by 1 + overshoot.
    step_clip : float, optional
        Bound on each iteration's step norm (None: no bound).
    candidates : int, default 10
        How many of the most likely other classes are linearized per step.
    check_every : int, default 5
        Steps between the removals of finished samples (one host sync each).
    **kwargs
        ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("l2", "linf")
    hooks = ("project", "steepest_ascent")
    supports_targeted = False
    counts = ("steps", "candidates", "check_every")
    ranges = {"overshoot": NON_NEGATIVE, "step_clip": Range(0, optional=True)}

    def __init__(self, *, norm: str = "l2", steps: int = 50, overshoot: float = 0.02,
                 step_clip: float | None = None, candidates: int = 10, check_every: int = 5,
                 **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.steps, self.overshoot, self.step_clip = steps, overshoot, step_clip
        self.candidates, self.check_every = candidates, check_every

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        best = x.clone()
        # working set: the samples not yet adversarial, compacted every ``check_every`` steps
        idx = torch.arange(x.shape[0], device=x.device)
        x0, y0, r_total = x, y, torch.zeros_like(x)
        x_adv, others = x, None
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for step in range(self.steps + 1):
            if step and step % self.check_every == 0:  # one host sync: drop finished samples
                keep = (~found).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                if keep.numel() < idx.numel():
                    idx, x0, y0, r_total = idx[keep], x0[keep], y0[keep], r_total[keep]
                    found, others, x_adv = found[keep], others[keep], x_adv[keep]
            x_in = x_adv.detach().requires_grad_(True)
            logits = model(x_in)
            adversarial = logits.argmax(dim=1) != y0
            new = adversarial & ~found
            best[idx] = torch.where(batch_view(new, x0), x_in.detach(), best[idx])
            found |= adversarial
            if step == self.steps:
                break
            if others is None:  # the most competitive other classes at the clean point
                k = min(self.candidates, logits.shape[1] - 1)
                others = logits.detach().scatter(1, y0[:, None], float("-inf")).topk(k, dim=1).indices
            step_r = self._step(logits, x_in, y0, others)
            if self.step_clip is not None:
                step_r = self.geometry.project(step_r, self.step_clip)
            r_total = r_total + step_r * batch_view(~found, x0)
            x_adv = clamp_to_box(x0 + (1 + self.overshoot) * r_total)
        return best

    def _step(self, logits, x_in, y, others) -> torch.Tensor:
        """The step to the closest linearized boundary among ``others``."""
        z_y = logits.gather(1, y[:, None]).squeeze(1)
        grad_y = torch.autograd.grad(z_y.sum(), x_in, retain_graph=True)[0]
        geometry, dual = self.geometry, get_norm(self.geometry.dual)
        best_dist = torch.full_like(z_y, float("inf"))
        step_r = torch.zeros_like(x_in)
        for j in range(others.shape[1]):
            z_k = logits.gather(1, others[:, j:j + 1]).squeeze(1)
            last = j == others.shape[1] - 1
            w = torch.autograd.grad(z_k.sum(), x_in, retain_graph=not last)[0] - grad_y
            f = (z_k - z_y).detach().abs() + 1e-4
            dist = f / dual.measure(w).clamp_min(TINY)
            r = geometry.steepest_ascent(w) * batch_view(dist, w)
            closer = dist < best_dist
            best_dist = torch.where(closer, dist, best_dist)
            step_r = torch.where(batch_view(closer, w), r, step_r)
        return step_r
