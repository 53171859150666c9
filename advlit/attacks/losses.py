"""Per-sample attack objectives, written so that the attacker always maximizes them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "margin")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C&W hinge on logits (Carlini & Wagner 2017, f_6 without kappa): z_y - max_{j != y} z_j."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(dim=1)


def attack_objective(logits: torch.Tensor, y: torch.Tensor, loss: str, targeted: bool) -> torch.Tensor:
    """Per-sample objective to maximize.

    Untargeted: cross-entropy of the true class, or minus its margin. Targeted (``y`` is
    the target): minus the cross-entropy of the target, or the target's margin.
    """
    if loss == "ce":
        value = F.cross_entropy(logits, y, reduction="none")
    elif loss == "margin":
        value = -margin(logits, y)
    else:
        raise ValueError(f"unknown loss {loss!r}; use one of {LOSSES}")
    return -value if targeted else value
