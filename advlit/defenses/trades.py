"""TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(f(x) || f(x')), x' = argmax KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.kl_pgd import KLPGD
from advlit.defenses.base import RobustClassifier


class TRADES(RobustClassifier):
    """The TRADES objective (eq. 5 of the paper) with the KL-maximizing PGD ``attack``
    (Linf or L2; generated on the eval-mode model, as the reference code does).

    Parameters
    ----------
    model : nn.Module
        The network.
    attack : KLPGD
        Maximizes KL(f(x) || f(x')) in the ball (e.g. ``KLPGD(eps=0.3, steps=40)``).
    beta : float, default 6.0
        Weight of the KL term (the paper's 1 / lambda), >= 0.
    **kwargs
        The optimizer, scheduler and speed options of :class:`RobustClassifier`.
    """

    def __init__(self, model: nn.Module, attack: KLPGD, beta: float = 6.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.attack = attack
        self.beta = beta

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.attack(self, x, y)
        logits = self(x)
        adv_log_probs = F.log_softmax(self(x_adv), dim=1)
        kl = F.kl_div(adv_log_probs, F.log_softmax(logits, dim=1), log_target=True,
                      reduction="batchmean")
        return F.cross_entropy(logits, y) + self.beta * kl, logits
