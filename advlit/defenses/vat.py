"""Virtual adversarial training (Miyato et al. 2018), the thesis's smoothness baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import model_state_guard
from advlit.attacks.geometry import normalize_l2
from advlit.defenses.base import RobustClassifier


class VirtualAdversarialTraining(RobustClassifier):
    """CE(f(x), y) + alpha * KL(p(x) || p(x + r_vadv)), with r_vadv = eps * d and d the
    dominant direction of the KL's Hessian found by ``power_iterations`` rounds of
    d <- normalize(grad_d KL(p(x) || p(x + xi d))) from a random d (eq. 13 of the paper).
    p(x) is treated as a constant; each power iteration costs one forward+backward."""

    def __init__(self, model: nn.Module, eps: float = 2.0, xi: float = 1e-6, alpha: float = 1.0,
                 power_iterations: int = 1, **kwargs) -> None:
        super().__init__(model, **kwargs)
        if eps < 0 or xi <= 0 or alpha < 0 or power_iterations < 1:
            raise ValueError(f"need eps >= 0, xi > 0, alpha >= 0, power_iterations >= 1; got "
                             f"eps={eps}, xi={xi}, alpha={alpha}, power_iterations={power_iterations}")
        self.eps, self.xi, self.alpha, self.power_iterations = eps, xi, alpha, power_iterations

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(x)
        clean = F.log_softmax(logits.detach(), dim=1)
        d = normalize_l2(torch.randn_like(x))
        with model_state_guard(self, "train"):  # the same mode as training; BN stats restored
            for _ in range(self.power_iterations):
                d = d.requires_grad_(True)
                kl = F.kl_div(F.log_softmax(self(x + self.xi * d), dim=1), clean, log_target=True,
                              reduction="batchmean")
                (grad,) = torch.autograd.grad(kl, d)
                d = normalize_l2(grad).detach()
        adv = F.log_softmax(self(x + self.eps * d), dim=1)
        vat = F.kl_div(adv, clean, log_target=True, reduction="batchmean")
        return F.cross_entropy(logits, y) + self.alpha * vat, logits
