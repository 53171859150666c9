"""Deep margin maximization (Matyasko & Chau 2017; thesis ch. 3, eq. 3.18)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from advlit.attacks.losses import margin
from advlit.defenses.base import RobustClassifier


class MarginMaximization(RobustClassifier):
    """loss(f(x), y) + C * max_{j in top-k, j != y} ||grad_x f_y(x) - grad_x f_j(x)||_q.

    ``loss`` is the multiclass hinge max_{j != y} (1 + f_j - f_y)_+ or cross-entropy. The
    margin-sensitivity term uses the dual norm q of the margin's norm: q = 2 for an L2
    margin (``margin_norm: l2``), q = 1 to maximize the Linf margin (``margin_norm: linf``).
    The max runs over the ``competitors`` most competitive classes (highest logits besides y;
    all classes when it equals k - 1); leaving the others out is the only approximation of
    the value. Cost: one forward and k plain backward passes (the input gradient of each
    competitor's gap, to find the max's argmax j*), then the parameter gradient of
    ||g||_q, g = grad_x (f_y - f_j*)(x), in one of two ways (``second_order``):

    - ``double_backprop``: exact, back-propagating through the backward pass that made g
      (about 2-3 ERM steps more for conv nets on CPU).
    - ``finite_difference`` (Finlay & Oberman 2021, "Scaleable input gradient
      regularization"): ||g||_q = u.g with u = g/||g||_2 (q = 2) or sign(g) (q = 1) held
      fixed (Danskin), and u.g is replaced by the difference quotient of the gap along u over
      an L2 step of ``fd_step``; its parameter gradient costs one more forward+backward.
      The penalty's value stays exact, its gradient is O(fd_step) off.

    Per-sample gradients come from one backward of the batch sum, exact when samples do not
    interact (no train-mode BatchNorm).
    """

    def __init__(self, model: nn.Module, C: float = 0.1, margin_norm: Literal["l2", "linf"] = "l2",
                 loss: Literal["hinge", "ce"] = "hinge", competitors: int = 3,
                 second_order: Literal["double_backprop", "finite_difference"] = "double_backprop",
                 fd_step: float = 0.01, optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_interval: Literal["epoch", "step"] = "epoch") -> None:
        super().__init__(model, optimizer, scheduler, scheduler_interval)
        if C < 0:
            raise ValueError(f"C must be >= 0, got {C!r}")
        if margin_norm not in ("l2", "linf"):
            raise ValueError(f"margin_norm must be 'l2' or 'linf', got {margin_norm!r}")
        if loss not in ("hinge", "ce"):
            raise ValueError(f"loss must be 'hinge' or 'ce', got {loss!r}")
        if competitors < 1:
            raise ValueError(f"competitors must be >= 1, got {competitors!r}")
        if second_order not in ("double_backprop", "finite_difference"):
            raise ValueError(f"second_order must be 'double_backprop' or 'finite_difference', "
                             f"got {second_order!r}")
        if not fd_step > 0:
            raise ValueError(f"fd_step must be > 0 (an L2 distance in input space), got {fd_step!r}")
        self.C, self.margin_norm, self.loss, self.competitors = C, margin_norm, loss, competitors
        self.second_order, self.fd_step = second_order, fd_step

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        logits = self(x)
        if self.loss == "hinge":
            data_loss = (1 - margin(logits, y)).clamp_min(0).mean()
        else:
            data_loss = F.cross_entropy(logits, y)
        if self.C == 0:
            return data_loss, logits
        k = min(self.competitors, logits.shape[1] - 1)
        rivals = logits.detach().scatter(1, y[:, None], float("-inf")).topk(k, dim=1).indices
        z_y = logits.gather(1, y[:, None]).squeeze(1)
        q = 2 if self.margin_norm == "l2" else 1
        exact = self.second_order == "double_backprop"
        # 1) the input gradient of each competitor's gap (plain backward passes); the max's
        #    argmax needs them all, a single competitor needs none unless differenced
        worst, grads = rivals, None
        if k > 1 or not exact:
            grads = []
            for j in range(k):
                gap = z_y - logits.gather(1, rivals[:, j:j + 1]).squeeze(1)
                grads.append(torch.autograd.grad(gap.sum(), x, retain_graph=True)[0])
            norms = torch.stack([g.flatten(1).norm(p=q, dim=1) for g in grads], dim=1)
            pick = norms.argmax(dim=1)
            worst = rivals.gather(1, pick[:, None])
        gap = z_y - logits.gather(1, worst).squeeze(1)
        if exact:  # 2) the max itself, differentiable: one double-backprop-able backward
            (grad,) = torch.autograd.grad(gap.sum(), x, create_graph=True)
            sensitivity = grad.flatten(1).norm(p=q, dim=1)
        else:  # 2') the difference quotient of the gap along the maximizing direction u
            grad = torch.stack(grads, dim=1)[torch.arange(len(y)), pick]
            view = (-1,) + (1,) * (x.dim() - 1)
            u = grad.sign() if q == 1 else grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            step = self.fd_step / u.flatten(1).norm(dim=1).clamp_min(1e-12)
            shifted = self(x.detach() + step.view(view) * u)
            gap_shifted = shifted.gather(1, y[:, None]).squeeze(1) - shifted.gather(1, worst).squeeze(1)
            quotient = (gap_shifted - gap) / step
            sensitivity = grad.flatten(1).norm(p=q, dim=1) + quotient - quotient.detach()
        return data_loss + self.C * sensitivity.mean(), logits
