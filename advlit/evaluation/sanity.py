"""Sanity checks against gradient masking (Athalye et al. 2018; Carlini et al. 2019),
reported as named flags. Each returns a message when the check fires, else None."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import model_state_guard

CHECKS = {
    "robust_acc_increases_with_eps": "robust accuracy rises with eps for an attack: the attack "
                                     "fails at larger budgets (masked gradients or too few steps)",
    "unbounded_attack_not_zero": "an unbounded (min-norm) attack leaves points unbroken: "
                                 "robust accuracy at infinite budget should be ~0%",
    "single_step_stronger": "a single-step attack beats an iterative one of the same norm and eps",
    "zero_or_nonfinite_gradients": "some input gradients are zero or non-finite (shattered or "
                                   "saturated gradients)",
    "randomized_model": "the model gives different logits for the same input in eval mode, so "
                        "these numbers (without EOT) are unreliable: randomness can fake "
                        "robustness; evaluate with EOT (eot_samples: 8 or more)",
}


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    with torch.inference_mode(False), torch.enable_grad(), model_state_guard(model):
        x, y = x.detach().clone().requires_grad_(True), y.clone()
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    flat = grad.flatten(1)
    bad = (~flat.isfinite().all(dim=1)) | (flat.abs().sum(dim=1) == 0)
    if bad.any():
        return f"{CHECKS['zero_or_nonfinite_gradients']} ({bad.float().mean().item():.1%} of a batch)"
    return None


def randomness_check(model: nn.Module, x: torch.Tensor) -> str | None:
    with torch.no_grad(), model_state_guard(model, freeze=False):
        differs = not torch.equal(model(x), model(x))
    return CHECKS["randomized_model"] if differs else None


def curve_checks(results: dict[str, dict[float, float]], single_step: set[str],
                 norms: dict[str, str], unbounded: dict[str, float]) -> dict[str, str]:
    """``results[name][eps]`` = robust accuracy; ``single_step`` names single-step attacks;
    ``norms[name]`` = norm; ``unbounded[name]`` = robust accuracy at infinite budget."""
    flags: dict[str, str] = {}
    for name, curve in results.items():
        values = [curve[e] for e in sorted(curve)]
        if any(b > a + 1e-9 for a, b in zip(values, values[1:])):
            flags["robust_acc_increases_with_eps"] = f"{CHECKS['robust_acc_increases_with_eps']} ({name})"
    for name, acc in unbounded.items():
        if acc > 0.01:
            flags["unbounded_attack_not_zero"] = f"{CHECKS['unbounded_attack_not_zero']} ({name}: {acc:.1%})"
    for weak in single_step:
        for strong, curve in results.items():
            if strong in single_step or strong in unbounded or norms[strong] != norms[weak]:
                continue
            for eps, acc in results[weak].items():
                if eps in curve and acc < curve[eps] - 1e-9:
                    flags["single_step_stronger"] = (f"{CHECKS['single_step_stronger']} "
                                                     f"({weak} < {strong} at eps={eps:g})")
    return flags
