"""Robust training of a linear classifier with the inner maximization solved exactly
(adversarial-training lecture): for ||delta|| <= eps, min over delta of y~ (theta^T (x + delta)
+ theta_0) is y~ (theta^T x + theta_0) - eps ||theta||_*, with ||.||_* the dual norm (Linf
-> L1, L2 -> L2); the optimal attack is delta* = -y~ eps sign(theta) for Linf."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from advlit.defenses.base import RobustClassifier
from advlit.images import log_images
from advlit.models.linear import BinaryLinear

DUAL = {"linf": 1, "l2": 2}


class RobustLinearClassifier(RobustClassifier):
    """Minimizes the exact robust logistic loss log(1 + exp(-(y~ z - eps ||theta||_*))).
    With eps = 0 it is plain logistic regression. At the end of training the optimal Linf
    perturbation direction sign(theta) is logged as an image (W&B).

    Parameters
    ----------
    model : BinaryLinear
        The linear model.
    eps : float, default 0.1
        The training budget, in [0, 1] pixel scale (0: logistic regression).
    norm : {"linf", "l2"}, default "linf"
        The threat model's norm (its dual norm of theta enters the loss).
    **kwargs
        The optimizer, scheduler and speed options of :class:`RobustClassifier`.
    """

    def __init__(self, model: BinaryLinear, eps: float = 0.1, norm: Literal["linf", "l2"] = "linf", **kwargs) -> None:
        super().__init__(model, **kwargs)
        if not isinstance(model, BinaryLinear):
            raise ValueError(f"RobustLinearClassifier needs a BinaryLinear model, got {type(model).__name__}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        if norm not in DUAL:
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        self.eps, self.norm = eps, norm

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        signed = y.float() * 2 - 1
        z = self.model.score(x)
        dual = self.model.linear.weight.norm(p=DUAL[self.norm])
        loss = F.softplus(-(signed * z - self.eps * dual)).mean()
        return loss, self.model(x)

    def on_train_end(self) -> None:
        direction = self.model.linear.weight.detach().sign().view(self.model.input_shape)
        log_images(self.loggers, "optimal_perturbation_sign_theta", [(direction + 1) / 2],
                   ["sign(theta): +1 white, -1 black"])
