"""Honesty checks on an evaluation, reported as named flags: gradient masking (Athalye et al.
2018; Carlini et al. 2019), the AutoAttack sanity checks (Croce & Hein 2020) and indicators
of attack failure (Pintor et al. 2022). Each check returns a message when it fires."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import FixedBudgetAttack, model_state_guard
from advlit.attacks.norms import get_norm

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
    "nonfinite_logits": "the model returned non-finite logits; those points count as not robust",
    "black_box_beats_white_box": "a gradient-free attack broke points that every gradient attack "
                                 "left standing: the gradients are likely masked, so gradient-only "
                                 "numbers would overstate robustness",
    "silent_success": "an attack passed through an adversarial point but returned a point that is "
                      "not adversarial (the attack lost a success; Pintor et al. 2022)",
    "incomplete_optimization": "a few more gradient steps from an attack's final points break some "
                               "of them: the attack stopped before converging (Pintor et al. 2022)",
    "unconstrained_attack_failure": "a gradient attack with an unbounded budget leaves points "
                                    "unbroken, which only masked gradients explain (Pintor et al. 2022)",
}

INDICATORS = ("nonfinite_logits", "silent_success", "black_box_beats_white_box")  # per-sample
BLACK_BOX_TOLERANCE = 0.002  # share of points; a few stragglers are normal for any suite


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


def indicator_flags(metrics: dict[str, float]) -> dict[str, str]:
    """Flags from the per-sample indicators of :meth:`SuiteResult.per_sample`, already
    reduced to means (so they hold for any number of batches and processes)."""
    flags = {}
    for key, value in metrics.items():
        name = key.rpartition("indicator/")[2]
        if "indicator/" not in key or name not in INDICATORS:
            continue
        threshold = BLACK_BOX_TOLERANCE if name == "black_box_beats_white_box" else 0.0
        if value > threshold:
            flags[name] = f"{CHECKS[name]} ({value:.2%} of points)"
    return flags


def _unbounded_eps(norm: str, x: torch.Tensor) -> float:
    """A budget that reaches every image of the box from any other."""
    d = x[0].numel()
    return {"linf": 1.0, "l2": d ** 0.5, "l1": float(d)}.get(norm, 1.0)


def run_checks(model: nn.Module, x: torch.Tensor, goal: torch.Tensor, result, attacks: dict,
               adversarial, targeted: bool, eot: bool) -> dict[str, str]:
    """Checks that need the model: randomness, gradients at clean and adversarial points,
    incomplete optimization and unconstrained failure on points still standing."""
    flags: dict[str, str] = {}
    head = slice(0, 32)
    if not eot and (message := randomness_check(model, x[head])):
        flags["randomized_model"] = message
    probes = [(x[head], goal[head])]
    if adversarial is not None and adversarial[0].shape[0]:
        probes.append((adversarial[2], adversarial[1]))
    for px, py in probes:
        if not targeted and (message := gradient_check(model, px, py)):
            flags["zero_or_nonfinite_gradients"] = message
    if targeted or adversarial is None or not adversarial[0].shape[0]:
        return flags
    clean, labels, x_adv, eps = adversarial
    gradient_attacks = [a for n, a in attacks.items() if n not in result.gradient_free
                        and isinstance(a, FixedBudgetAttack)]
    norm = gradient_attacks[-1].norm if gradient_attacks else "linf"
    if _extra_steps_break(model, clean, labels, x_adv, norm, eps):
        flags["incomplete_optimization"] = CHECKS["incomplete_optimization"]
    if gradient_attacks:
        unbounded = gradient_attacks[0].replace(eps=_unbounded_eps(norm, x))
        x_far = unbounded(model, clean, labels, index=torch.arange(clean.shape[0], device=x.device))
        with torch.no_grad(), model_state_guard(model, freeze=False):
            standing = model(x_far).argmax(dim=1) == labels
        if standing.any():
            flags["unconstrained_attack_failure"] = (
                f"{CHECKS['unconstrained_attack_failure']} ({int(standing.sum())} of "
                f"{standing.numel()} points, {type(unbounded).__name__} at eps={unbounded.eps:g})")
    return flags


def _extra_steps_break(model, x, y, x_adv, norm: str, eps: float, steps: int = 10) -> bool:
    """Do ``steps`` more signed-gradient steps (size eps / 10) on the cross-entropy from the
    attack's final points break any of them?"""
    geometry = get_norm(norm)
    with torch.inference_mode(False), torch.enable_grad(), model_state_guard(model):
        point = x_adv.detach().clone()
        for _ in range(steps):
            point.requires_grad_(True)
            logits = model(point)
            if (logits.argmax(dim=1) != y).any():
                return True
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), point)
            point = point.detach() + eps / 10 * geometry.steepest_ascent(grad)
            point = geometry.project_point(x, point, eps)
        with torch.no_grad():
            return bool((model(point).argmax(dim=1) != y).any())
