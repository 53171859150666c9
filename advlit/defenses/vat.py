"""Virtual adversarial training (Miyato et al. 2018), the thesis's smoothness baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.virtual import VirtualAdversarial
from advlit.defenses.base import RobustClassifier


class VirtualAdversarialTraining(RobustClassifier):
    """CE(f(x), y) + alpha * KL(p(x) || p(x_vadv)), with x_vadv the virtual adversarial example
    of :class:`~advlit.attacks.VirtualAdversarial` (eps, xi, ``power_iterations``; eq. 13 of
    the paper) found on the training-mode model (BatchNorm statistics restored). p(x) is
    treated as a constant; each power iteration costs one forward+backward.

    Parameters
    ----------
    model : nn.Module
        The network.
    eps : float, default 2.0
        L2 length of the virtual adversarial perturbation, in [0, 1] pixel scale.
    xi : float, default 1e-6
        The finite-difference length of the power iteration.
    alpha : float, default 1.0
        Weight of the KL term, >= 0.
    power_iterations : int, default 1
        Rounds of the power iteration.
    **kwargs
        The optimizer, scheduler and speed options of :class:`RobustClassifier`.
    """

    def __init__(self, model: nn.Module, eps: float = 2.0, xi: float = 1e-6, alpha: float = 1.0,
                 power_iterations: int = 1, **kwargs) -> None:
        super().__init__(model, **kwargs)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.attack = VirtualAdversarial(eps=eps, xi=xi, power_iterations=power_iterations,
                                         model_mode="train")
        self.alpha = alpha

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(x)
        clean = F.log_softmax(logits.detach(), dim=1)
        adv = F.log_softmax(self(self.attack(self, x, y)), dim=1)
        vat = F.kl_div(adv, clean, log_target=True, reduction="batchmean")
        return F.cross_entropy(logits, y) + self.alpha * vat, logits
