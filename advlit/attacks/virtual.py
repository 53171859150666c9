"""The virtual adversarial perturbation of VAT (Miyato et al. 2018, "Virtual adversarial
training", eq. 13), as an attack: the direction along which the model's prediction changes
fastest, found without labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import POSITIVE, FixedBudgetAttack
from advlit.attacks.geometry import clamp_to_box, normalize_l2
from advlit.attacks.randomness import SampleRNG


class VirtualAdversarial(FixedBudgetAttack):
    """x + eps * d clipped to [0, 1], where d is the dominant direction of the Hessian of
    KL(p(x) || p(x + r)) at r = 0, found by ``power_iterations`` rounds of
    d <- normalize(grad_d KL(p(x) || p(x + xi d))) from a random Gaussian d. p(x) is a
    constant; labels are not used. Each power iteration costs one forward+backward.

    Parameters
    ----------
    eps : float, default 2.0
        The L2 length of the perturbation, in [0, 1] pixel scale.
    xi : float, default 1e-6
        The finite-difference length of the power iteration.
    power_iterations : int, default 1
        Rounds of the power iteration.
    **kwargs
        ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("l2",)
    supports_targeted = False
    counts = ("power_iterations",)
    ranges = {"xi": POSITIVE}

    def __init__(self, *, eps: float = 2.0, xi: float = 1e-6, power_iterations: int = 1, **kwargs) -> None:
        super().__init__(norm="l2", eps=eps, **kwargs)
        self.xi, self.power_iterations = xi, power_iterations

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        with torch.no_grad():
            clean = F.log_softmax(model(x), dim=1)
        d = normalize_l2(rng.normal(0, tuple(x.shape[1:]), x.dtype))
        for _ in range(self.power_iterations):
            d = d.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x + self.xi * d), dim=1), clean, log_target=True,
                          reduction="batchmean")
            (grad,) = torch.autograd.grad(kl, d)
            d = normalize_l2(grad).detach()
        return clamp_to_box(x + self.eps * d)
