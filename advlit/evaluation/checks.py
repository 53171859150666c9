"""Honesty checks on an evaluation, reported as named flags: gradient masking (Athalye et al.
2018; Carlini et al. 2019), the AutoAttack sanity checks (Croce & Hein 2020) and indicators
of attack failure (Pintor et al. 2022).

Every check is one :class:`Check` in :data:`CHECKS`, the only list the engine
(:class:`~advlit.evaluation.result.SuiteResult`), the callback and the flags guide
(``docs/flags.md``, tested against it) read. A check runs at one of three moments:

- ``probe``: once, on the model and the first 32 images of the first batch
  (``run(ProbeContext) -> detail or None``);
- ``sample``: per sample, on every image (``run(SuiteResult) -> bool tensor``), firing when the
  share of flagged points exceeds ``threshold``;
- ``result``: on the whole result (``run(SuiteResult) -> detail or None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from advlit.attacks.base import FixedBudgetAttack, model_state_guard
from advlit.attacks.norms import get_norm

if TYPE_CHECKING:
    from advlit.evaluation.result import SuiteResult

FLAGS_GUIDE = "docs/flags.md"  # what each flag measures, its threshold, its paper and what to do next
PROBE_IMAGES = 32


@dataclass(frozen=True)
class Check:
    """One honesty check. ``accuses``: ``model`` (its gradients or outputs make gradient attacks
    unreliable; must never fire on a plain or adversarially trained network) or ``attack`` (the
    attack or budget was too weak). ``explained_by_randomness``: on a randomized model the flag
    is reported as a consequence of the randomness, not as a finding of its own."""

    name: str
    when: Literal["probe", "sample", "result"]
    accuses: Literal["model", "attack"]
    message: str
    paper: str
    run: Callable
    threshold: float = 0.0
    explained_by_randomness: bool = False

    def flag(self, detail: str) -> str:
        return f"{self.message} ({detail})" if detail else self.message


@dataclass
class Probe:
    """Points a gradient ``attack`` (already at its eps) left standing: clean ``x``, the
    attack's goal labels and its final points ``x_adv``."""

    attack: FixedBudgetAttack
    x: torch.Tensor
    goal: torch.Tensor
    x_adv: torch.Tensor


@dataclass
class ProbeContext:
    """What a model probe sees: ``model`` as attacked (an EOT wrapper on a randomized model),
    ``raw`` the user's model, the first images ``x`` with their attack goals, the ``probe``
    of the last gradient attack (or None) and whether the evaluation is ``targeted``."""

    model: nn.Module
    raw: nn.Module
    x: torch.Tensor
    goal: torch.Tensor
    probe: Probe | None
    targeted: bool

    @property
    def eot(self) -> bool:
        return self.raw is not self.model


# -- model probes -------------------------------------------------------------------------
def same_outputs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal where finite, with NaN in the same positions (NaN never equals itself)."""
    nan_a, nan_b = a.isnan(), b.isnan()
    return torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b])


def randomness(ctx: ProbeContext) -> str | None:
    with torch.no_grad(), model_state_guard(ctx.raw, freeze=False):
        differs = not same_outputs(ctx.raw(ctx.x), ctx.raw(ctx.x))
    if not differs:
        return None
    return "this suite attacks it through EOT and reports the deployed model" if ctx.eot else ""


def probability_outputs(ctx: ProbeContext, tolerance: float = 1e-5) -> str | None:
    """AutoAttack's output-range check: every finite row non-negative and summing to 1."""
    with torch.no_grad(), model_state_guard(ctx.raw, freeze=False):
        out = ctx.raw(ctx.x)
    out = out[out.isfinite().all(dim=1)]
    if out.numel() and (out >= -tolerance).all() and ((out.sum(dim=1) - 1).abs() <= tolerance).all():
        return ""
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


def optimization_in_forward(ctx: ProbeContext) -> str | None:
    """Does one eval-mode forward pass start a backward pass or change a parameter or buffer?"""
    model = ctx.raw
    with model_state_guard(model, freeze=False):
        before = [t.detach().clone() for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
        with torch.no_grad(), _BackwardSpy() as spy:
            model(ctx.x)
        after = [t for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
        changed = len(before) != len(after) or any(not same_outputs(a, b) for a, b in zip(before, after))
    if spy.calls or changed:
        return f"{spy.calls} backward call(s) in one forward pass" if spy.calls else \
            "a parameter or buffer changed in one forward pass"
    return None


def bad_gradient_share(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images whose input gradient of the cross-entropy is all zero or not finite."""
    with torch.inference_mode(False), torch.enable_grad(), model_state_guard(model):
        x, y = x.detach().clone().requires_grad_(True), y.clone()
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    flat = grad.flatten(1)
    return ((~flat.isfinite().all(dim=1)) | (flat.abs().sum(dim=1) == 0)).float().mean().item()


def zero_or_nonfinite_gradients(ctx: ProbeContext) -> str | None:
    if ctx.targeted:
        return None
    points = [(ctx.x, ctx.goal)] + ([(ctx.probe.x_adv, ctx.probe.goal)] if ctx.probe is not None else [])
    shares = [bad_gradient_share(ctx.model, px, py) for px, py in points]
    worst = max(shares)
    return f"{worst:.1%} of a batch" if worst > 0 else None


def incomplete_optimization(ctx: ProbeContext) -> str | None:
    if ctx.targeted or ctx.probe is None:
        return None
    attack, probe = ctx.probe.attack, ctx.probe
    if not _extra_steps_break(ctx.model, probe.x, probe.goal, probe.x_adv, attack.norm, attack.eps):
        return None
    return f"{type(attack).__name__}, {attack.norm} eps={attack.eps:g}"


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


def unconstrained_attack_failure(ctx: ProbeContext) -> str | None:
    """The last gradient attack, rerun with a budget of the whole [0, 1] box in its norm (a
    fixed step size scaled by the same factor), on the points it left standing."""
    if ctx.targeted or ctx.probe is None:
        return None
    attack, probe = ctx.probe.attack, ctx.probe
    diameter = get_norm(attack.norm).diameter(ctx.x)
    scaled = {"step_size": attack.step_size * diameter / attack.eps} \
        if getattr(attack, "step_size", None) is not None else {}  # its schedule, scaled to the ball
    unbounded = attack.replace(eps=diameter, **scaled)
    index = torch.arange(probe.x.shape[0], device=probe.x.device)
    x_far = unbounded(ctx.model, probe.x, probe.goal, index=index)
    with torch.no_grad(), model_state_guard(ctx.model, freeze=False):
        standing = ctx.model(x_far).argmax(dim=1) == probe.goal
    if not standing.any():
        return None
    return (f"{int(standing.sum())} of {standing.numel()} points, {type(unbounded).__name__} in "
            f"{attack.norm} at eps={unbounded.eps:g}")


# -- per-sample indicators ----------------------------------------------------------------
def nonfinite_logits(result: SuiteResult) -> torch.Tensor:
    return result.nonfinite


def silent_success(result: SuiteResult) -> torch.Tensor:
    found = torch.zeros_like(result.correct)
    for per_eps in result.silent.values():
        for flags in per_eps.values():
            found = found | flags
    return found


def black_box_beats_white_box(result: SuiteResult) -> torch.Tensor:
    """Points a gradient-free attack broke at some eps that every gradient attack of its norm
    left standing there."""
    wins = torch.zeros_like(result.correct)
    for name in result.gradient_free:
        for eps, broken in result.broken.get(name, {}).items():
            standing = result.correct.clone()
            for other in result.order:
                if other not in result.gradient_free and result.norms[other] == result.norms[name]:
                    standing &= ~result.broken.get(other, {}).get(eps, torch.zeros_like(standing))
            wins |= broken & standing
    return wins


# -- checks on the whole result -------------------------------------------------------------
def _curves(result: SuiteResult) -> dict[str, dict[float, float]]:
    """Robust accuracy per attack and eps, where it is the attack's own (in a cascade only a
    min-norm attack's is: the others are cumulative)."""
    return {name: {eps: result.robust_to(name, eps).float().mean().item() for eps in result.grids[name]}
            for name in result.order if not result.cascade or name in result.radius}


def robust_acc_increases_with_eps(result: SuiteResult) -> str | None:
    for name, curve in _curves(result).items():
        values = [curve[e] for e in sorted(curve)]
        if any(b > a + 1e-9 for a, b in zip(values, values[1:])):
            return name
    return None


def unbounded_attack_not_zero(result: SuiteResult) -> str | None:
    for name, radius in result.radius.items():
        share = radius.isinf().float().mean().item()
        if share > 0.01:
            return f"{name}: {share:.1%}"
    return None


def single_step_stronger(result: SuiteResult) -> str | None:
    if result.cascade:
        return None
    curves = _curves(result)
    single = [n for n in curves if n in result.single_step]
    for weak in single:
        for strong, curve in curves.items():
            if strong in single or strong in result.radius or result.norms[strong] != result.norms[weak]:
                continue
            for eps, acc in curves[weak].items():
                if eps in curve and acc < curve[eps] - 1e-9:
                    return f"{weak} < {strong} at eps={eps:g}"
    return None


CHECKS: list[Check] = [
    Check("randomized_model", "probe", "model",
          "the model gives different logits for the same input in eval mode, so these numbers "
          "(without EOT) are unreliable: randomness can fake robustness; evaluate with "
          "standard_suite(version='rand') or eot_samples >= 8",
          "Athalye et al. 2018, Sec. 4.2; AutoAttack's check_randomized", randomness),
    Check("probability_outputs", "probe", "model",
          "the model's outputs are probabilities (every row non-negative and summing to 1), not "
          "logits: the cross-entropy of the attacks saturates; return the logits",
          "Croce & Hein 2020, AutoAttack's check_range_output", probability_outputs),
    Check("optimization_in_forward", "probe", "model",
          "the model runs backward passes or changes its own parameters or buffers inside its "
          "forward pass (a dynamic defense): fixed-model attacks may be insufficient; attack the "
          "defense adaptively", "Croce et al. 2022; AutoAttack's check_dynamic", optimization_in_forward),
    Check("zero_or_nonfinite_gradients", "probe", "model",
          "some input gradients are zero or non-finite (shattered or saturated gradients)",
          "Athalye et al. 2018; Carlini et al. 2019, Sec. 5", zero_or_nonfinite_gradients),
    Check("incomplete_optimization", "probe", "attack",
          "a few more gradient steps from an attack's final points break some of them: the attack "
          "stopped before converging; for a deliberately short attack (e.g. PGD-10) this is a true "
          "statement about the attack, not about the model",
          "Pintor et al. 2022", incomplete_optimization, explained_by_randomness=True),
    Check("unconstrained_attack_failure", "probe", "model",
          "a gradient attack with an unbounded budget leaves points unbroken, which only masked "
          "gradients explain", "Pintor et al. 2022", unconstrained_attack_failure,
          explained_by_randomness=True),
    Check("nonfinite_logits", "sample", "model",
          "the model returned non-finite logits; those points count as not robust", "advlit",
          nonfinite_logits),
    Check("silent_success", "sample", "attack",
          "an attack passed through an adversarial point but returned a point that is not "
          "adversarial (the attack lost a success)", "Pintor et al. 2022", silent_success,
          explained_by_randomness=True),
    Check("black_box_beats_white_box", "sample", "model",
          "a gradient-free attack broke points that every gradient attack left standing: the "
          "gradients are likely masked, so gradient-only numbers would overstate robustness",
          "Carlini et al. 2019, Sec. 4.3; AutoAttack's check_square_sr", black_box_beats_white_box,
          threshold=0.002),  # a few stragglers are normal for any suite
    Check("robust_acc_increases_with_eps", "result", "attack",
          "robust accuracy rises with eps for an attack: the attack fails at larger budgets "
          "(masked gradients or too few steps)", "Carlini et al. 2019, Sec. 5.1",
          robust_acc_increases_with_eps),
    Check("single_step_stronger", "result", "attack",
          "a single-step attack beats an iterative one of the same norm and eps",
          "Athalye et al. 2018; Carlini et al. 2019", single_step_stronger),
    Check("unbounded_attack_not_zero", "result", "attack",
          "an unbounded (min-norm) attack leaves points unbroken: robust accuracy at infinite "
          "budget should be ~0%", "Carlini et al. 2019, Sec. 5.1", unbounded_attack_not_zero),
]
BY_NAME = {check.name: check for check in CHECKS}
_CONSEQUENCES = "; consequences of the randomness, not separate findings: "


def probe_model(ctx: ProbeContext) -> dict[str, str]:
    """The ``probe`` checks on one model: name -> message of those that fired."""
    flags = {}
    for check in CHECKS:
        if check.when == "probe" and (detail := check.run(ctx)) is not None:
            flags[check.name] = check.flag(detail)
    return flags


def result_flags(result: SuiteResult, probed: dict[str, str]) -> dict[str, str]:
    """Every flag of ``result``: the model probes' (``probed``), the per-sample indicators and
    the checks on the whole result, in :data:`CHECKS` order; on a randomized model the flags
    randomness explains become part of the ``randomized_model`` message."""
    flags = {}
    for check in CHECKS:
        if check.when == "probe":
            detail = probed.get(check.name)
            if detail is not None:
                flags[check.name] = detail
        elif check.when == "sample":
            share = check.run(result).float().mean().item() if result.correct.numel() else 0.0
            if share > check.threshold:
                flags[check.name] = check.flag(f"{share:.2%} of points")
        elif (detail := check.run(result)) is not None:
            flags[check.name] = check.flag(detail)
    explained = [k for k in flags if BY_NAME[k].explained_by_randomness]
    if "randomized_model" in flags and explained:
        flags = {k: v for k, v in flags.items() if k not in explained}
        flags["randomized_model"] += _CONSEQUENCES + ", ".join(explained)
    return flags
