"""Honesty checks on an evaluation, reported as named flags: gradient masking (Athalye et al.
2018; Carlini et al. 2019), the AutoAttack sanity checks (Croce & Hein 2020) and indicators
of attack failure (Pintor et al. 2022). Each check returns a message when it fires; every flag
is in ``CHECKS`` and explained in ``docs/flags.md``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from advlit.attacks.base import FixedBudgetAttack, model_state_guard
from advlit.attacks.norms import get_norm

FLAGS_GUIDE = "docs/flags.md"  # what each flag measures, its threshold, its paper and what to do next

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
                        "robustness; evaluate with standard_suite(version='rand') or eot_samples >= 8",
    "nonfinite_logits": "the model returned non-finite logits; those points count as not robust",
    "black_box_beats_white_box": "a gradient-free attack broke points that every gradient attack "
                                 "left standing: the gradients are likely masked, so gradient-only "
                                 "numbers would overstate robustness",
    "silent_success": "an attack passed through an adversarial point but returned a point that is "
                      "not adversarial (the attack lost a success; Pintor et al. 2022)",
    "incomplete_optimization": "a few more gradient steps from an attack's final points break some "
                               "of them: the attack stopped before converging (Pintor et al. 2022); "
                               "for a deliberately short attack (e.g. PGD-10) this is a true "
                               "statement about the attack, not about the model",
    "unconstrained_attack_failure": "a gradient attack with an unbounded budget leaves points "
                                    "unbroken, which only masked gradients explain (Pintor et al. 2022)",
    "probability_outputs": "the model's outputs are probabilities (every row non-negative and "
                           "summing to 1), not logits: the cross-entropy of the attacks saturates; "
                           "return the logits (Croce & Hein 2020, AutoAttack's checks)",
    "optimization_in_forward": "the model runs backward passes or changes its own parameters or "
                               "buffers inside its forward pass (a dynamic defense): fixed-model "
                               "attacks may be insufficient; attack the defense adaptively",
}

INDICATORS = ("nonfinite_logits", "silent_success", "black_box_beats_white_box")  # per-sample
EXPLAINED_BY_RANDOMNESS = ("silent_success", "incomplete_optimization", "unconstrained_attack_failure")
_CONSEQUENCES = "; consequences of the randomness, not separate findings: "
BLACK_BOX_TOLERANCE = 0.002  # share of points; a few stragglers are normal for any suite


@dataclass
class Probe:
    """Points a gradient ``attack`` (already at its eps) left standing: clean ``x``, the
    attack's goal labels and its final points ``x_adv``."""

    attack: FixedBudgetAttack
    x: torch.Tensor
    goal: torch.Tensor
    x_adv: torch.Tensor


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    with torch.inference_mode(False), torch.enable_grad(), model_state_guard(model):
        x, y = x.detach().clone().requires_grad_(True), y.clone()
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    flat = grad.flatten(1)
    bad = (~flat.isfinite().all(dim=1)) | (flat.abs().sum(dim=1) == 0)
    if bad.any():
        return f"{CHECKS['zero_or_nonfinite_gradients']} ({bad.float().mean().item():.1%} of a batch)"
    return None


def same_outputs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal where finite, with NaN in the same positions (NaN never equals itself)."""
    nan_a, nan_b = a.isnan(), b.isnan()
    return torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b])


def randomness_check(model: nn.Module, x: torch.Tensor) -> str | None:
    with torch.no_grad(), model_state_guard(model, freeze=False):
        differs = not same_outputs(model(x), model(x))
    return CHECKS["randomized_model"] if differs else None


def probability_check(model: nn.Module, x: torch.Tensor, tolerance: float = 1e-5) -> str | None:
    """AutoAttack's output-range check: every finite row non-negative and summing to 1."""
    with torch.no_grad(), model_state_guard(model, freeze=False):
        out = model(x)
    out = out[out.isfinite().all(dim=1)]
    if out.numel() and (out >= -tolerance).all() and ((out.sum(dim=1) - 1).abs() <= tolerance).all():
        return CHECKS["probability_outputs"]
    return None


class _BackwardSpy(TorchFunctionMode):
    """Counts the backward passes (``Tensor.backward``, ``torch.autograd.grad`` or
    ``torch.autograd.backward``) started while it is active."""

    BACKWARD = (torch.Tensor.backward, torch.autograd.grad, torch.autograd.backward)

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func in self.BACKWARD
        return func(*args, **(kwargs or {}))


def optimization_check(model: nn.Module, x: torch.Tensor) -> str | None:
    """Does one eval-mode forward pass start a backward pass or change a parameter or buffer?"""
    with model_state_guard(model, freeze=False):
        before = [t.detach().clone() for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
        with torch.no_grad(), _BackwardSpy() as spy:
            model(x)
        after = [t for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
        changed = len(before) != len(after) or any(not same_outputs(a, b) for a, b in zip(before, after))
    if spy.calls or changed:
        what = f"{spy.calls} backward call(s)" if spy.calls else "a parameter or buffer changed"
        return f"{CHECKS['optimization_in_forward']} ({what} in one forward pass)"
    return None


def explain_by_randomness(flags: dict[str, str]) -> dict[str, str]:
    """On a randomized model (the randomness check fired) the flags that randomness alone
    explains become part of the ``randomized_model`` flag instead of separate findings."""
    explained = [k for k in EXPLAINED_BY_RANDOMNESS if k in flags]
    if "randomized_model" not in flags or not explained:
        return flags
    out = {k: v for k, v in flags.items() if k not in explained}
    head, _, before = out["randomized_model"].partition(_CONSEQUENCES)
    names = dict.fromkeys([*filter(None, before.split(", ")), *explained])
    out["randomized_model"] = head + _CONSEQUENCES + ", ".join(names)
    return out


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


def run_checks(model: nn.Module, x: torch.Tensor, goal: torch.Tensor, probe: Probe | None,
               targeted: bool, raw: nn.Module | None = None) -> dict[str, str]:
    """Checks that need the model: randomness, output range, optimization in the forward pass
    (on ``raw``, the user's model, when ``model`` is its EOT wrapper), gradients at clean and
    adversarial points, and, on the ``probe`` (points the last gradient attack left standing),
    incomplete optimization and unconstrained failure in that attack's own norm and eps."""
    flags: dict[str, str] = {}
    head = slice(0, 32)
    eot = raw is not None
    for name, check in (("randomized_model", randomness_check), ("probability_outputs", probability_check),
                        ("optimization_in_forward", optimization_check)):
        if message := check(raw if eot else model, x[head]):
            flags[name] = message
    if eot and "randomized_model" in flags:
        flags["randomized_model"] = "the model is randomized, and this suite attacks it through EOT"
    points = [(x[head], goal[head])] + ([(probe.x_adv, probe.goal)] if probe is not None else [])
    for px, py in points:
        if not targeted and (message := gradient_check(model, px, py)):
            flags["zero_or_nonfinite_gradients"] = message
    if targeted or probe is None:
        return flags
    attack = probe.attack
    if _extra_steps_break(model, probe.x, probe.goal, probe.x_adv, attack.norm, attack.eps):
        flags["incomplete_optimization"] = (f"{CHECKS['incomplete_optimization']} "
                                            f"({type(attack).__name__}, {attack.norm} eps={attack.eps:g})")
    diameter = get_norm(attack.norm).diameter(x)
    scaled = {"step_size": attack.step_size * diameter / attack.eps} \
        if getattr(attack, "step_size", None) is not None else {}  # its schedule, scaled to the ball
    unbounded = attack.replace(eps=diameter, **scaled)
    x_far = unbounded(model, probe.x, probe.goal, index=torch.arange(probe.x.shape[0], device=x.device))
    with torch.no_grad(), model_state_guard(model, freeze=False):
        standing = model(x_far).argmax(dim=1) == probe.goal
    if standing.any():
        flags["unconstrained_attack_failure"] = (
            f"{CHECKS['unconstrained_attack_failure']} ({int(standing.sum())} of "
            f"{standing.numel()} points, {type(unbounded).__name__} in {attack.norm} at "
            f"eps={unbounded.eps:g})")
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
