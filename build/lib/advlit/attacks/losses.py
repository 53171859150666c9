"""Per-sample attack objectives, written so that the attacker always maximizes them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "margin", "dlr")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C&W hinge on logits (Carlini & Wagner 2017, f_6 without kappa): z_y - max_{j != y} z_j."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(dim=1)


def signed_margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """The margin an attack drives below 0: z_y - max_{j != y} z_j (untargeted), or
    max_{j != t} z_j - z_t towards the target t = ``y`` (targeted). Positive while the point is
    not adversarial."""
    m = margin(logits, y)
    return -m if targeted else m


def adversarial(logits: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """Per sample: classified as the target ``y`` (targeted), or not as ``y``; a non-finite
    logit is never a correct prediction, so it counts as adversarial when untargeted."""
    if targeted:
        return logits.argmax(dim=1) == y
    return (logits.argmax(dim=1) != y) | ~logits.isfinite().all(dim=1)


def other_classes_by_logit(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample, the classes other than y from the highest logit down (N, K - 1): the
    targets of APGD-T and FAB-T."""
    return logits.scatter(1, y[:, None], -torch.inf).argsort(dim=1, descending=True)[:, :-1]


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020, eq. 5), to maximize:
    -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3), with z_pi the logits sorted in decreasing
    order; invariant to shifting and rescaling the logits. With fewer than 3 classes it is
    the plain negative margin (the ratio would be constant)."""
    if logits.shape[1] < 3:
        return -margin(logits, y)
    top = logits.sort(dim=1, descending=True).values
    return -margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6), to maximize:
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2); with fewer than 4 classes, -(z_y - z_t)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    if logits.shape[1] < 4:
        return z_t - z_y
    top = logits.sort(dim=1, descending=True).values
    return (z_t - z_y) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def attack_objective(logits: torch.Tensor, y: torch.Tensor, loss: str, targeted: bool) -> torch.Tensor:
    """Per-sample objective to maximize.

    Untargeted: cross-entropy of the true class, or minus its margin. Targeted (``y`` is
    the target): minus the cross-entropy of the target, or the target's margin.
    """
    if loss == "dlr":
        if targeted:
            raise ValueError("the dlr loss is untargeted; use ce or margin for a targeted attack")
        return dlr(logits, y)
    if loss == "ce":
        value = F.cross_entropy(logits, y, reduction="none")
    elif loss == "margin":
        value = -margin(logits, y)
    else:
        raise ValueError(f"unknown loss {loss!r}; use one of {LOSSES}")
    return -value if targeted else value
