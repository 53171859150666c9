"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks"): PGD with momentum and a step size that halves
when progress stalls, in Linf and L2, with the CE, DLR and targeted DLR losses (APGD-T); and
L1-APGD (Croce & Hein 2021, "Mind the box"): sparse box-aware steps whose sparsity follows
that of the best point, projected exactly onto the L1 ball inside the box."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import nn

from advlit.attacks.base import FRACTION, OPEN_UNIT, FixedBudgetAttack, check_positive_int
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.losses import adversarial, attack_objective, other_classes_by_logit, targeted_dlr
from advlit.attacks.randomness import SampleRNG


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size (Croce & Hein 2020, Sec. 3.2):
    w_j = ceil(p_j * steps), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if q < 1} - {0})


class APGD(FixedBudgetAttack):
    """APGD (Algorithm 1 of the paper): from a random start, ``steps`` iterations of
    z = P(x_k + eta * s(grad)), x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))
    with momentum alpha = ``momentum`` (0.75; 1 on the first step), s the steepest-ascent
    direction of the norm, P the projection onto the eps ball and the [0, 1] box, and eta
    starting at 2 eps. At each checkpoint (:func:`checkpoints`) eta halves and the iterate
    returns to the best point so far if fewer than ``rho`` of the steps since the last
    checkpoint increased the loss, or if neither eta nor the best loss changed since then.

    In L1 (Croce & Hein 2021, Sec. 3): eta starts at eps, each step is the sign of the
    gradient on the top k fraction of coordinates that the box does not block, scaled to L1
    length eta, without momentum, then projected exactly onto the L1 ball ∩ box. k starts at
    0.2 and every 4% of the steps it becomes ||x_best - x||_0 / (1.5 d); there eta returns to
    eps (and the iterate to the best point) if that support shrank by over 5%, else eta
    divides by 1.5, down to eps / 10. Since k follows the best point's support, the start is
    sparse too: a Gaussian projected onto ball ∩ box. With ``large_eps`` (AutoAttack's L1
    recipe; off by default, as there) each run spends 30% of its steps in the 3 eps ball, 30%
    in the 2 eps ball and the rest in the eps ball, each stage starting from the previous
    stage's best point projected onto the smaller ball; a point counts as broken only when it is
    adversarial within eps.

    ``retry_above``: restarts after the first run only on the points whose best loss so far is
    above it (None: on every point still standing). For the scale-free DLR losses, -0.1 retries
    the points that came close to the boundary: on a plain BatchNorm CNN (Linf 0.1) every point
    a later restart broke had reached a targeted DLR above -0.04 in its first run, while the
    median point that no restart broke stayed below -0.19.

    Losses: ``ce``, ``dlr`` (untargeted); with ``targeted=True`` (``y`` is the target):
    ``ce`` (minus the target's cross-entropy) or ``margin``. A sample leaves the working
    batch as soon as it is adversarial (per-sample early stopping), so the cost follows the
    number of points still standing: at most ``steps`` forward+backward passes per sample
    and restart. Returns the first adversarial iterate found, else the highest-loss point.

    Parameters
    ----------
    norm : {"linf", "l2", "l1"}, default "linf"
        The threat model's norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    steps : int, default 100
        Gradient evaluations per run (the first at the start).
    restarts : int, default 1
        Runs from new random starts on the points still standing.
    loss : {"ce", "dlr", "margin"}, default "ce"
        The objective (``margin`` only targeted, ``dlr`` only untargeted).
    rho : float, default 0.75
        Share of improving steps below which the step size halves at a checkpoint.
    momentum : float, default 0.75
        Weight of the new step in the momentum update (1: none).
    large_eps : bool, default False
        AutoAttack's L1 schedule over the 3 eps, 2 eps and eps balls.
    retry_above : float, optional
        Restarts after the first only where the best loss so far is above it.
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("linf", "l2", "l1")
    hooks = ("project", "steepest_ascent", "random_start")
    counts = ("steps", "restarts")
    ranges = {"rho": OPEN_UNIT, "momentum": FRACTION}

    def __init__(self, *, norm: str = "linf", eps: float, steps: int = 100, restarts: int = 1,
                 loss: Literal["ce", "dlr", "margin"] = "ce", rho: float = 0.75, momentum: float = 0.75,
                 large_eps: bool = False, retry_above: float | None = None, **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, **kwargs)
        self.steps, self.restarts, self.loss, self.retry_above = steps, restarts, loss, retry_above
        self.rho, self.momentum, self.large_eps = rho, momentum, large_eps

    @property
    def stays_in_ball(self) -> bool:
        """With ``large_eps`` its path leaves the eps ball (the suite's silent-success check)."""
        return not self.large_eps

    @property
    def stages(self) -> list[tuple[float, int]]:
        """(ball radius, steps) of each stage of a run: 3 eps, 2 eps, eps with ``large_eps``
        (runs of fewer than 3 steps keep one stage), else one stage."""
        if self.steps < 3 or not self.large_eps:
            return [(self.eps, self.steps)]
        first = max(1, int(0.3 * self.steps))
        return [(3 * self.eps, first), (2 * self.eps, first), (self.eps, self.steps - 2 * first)]

    def validate(self) -> None:
        super().validate()
        losses = ("ce", "margin") if self.targeted else ("ce", "dlr")
        if self.loss not in losses:
            raise ValueError(f"{type(self).__name__} loss must be one of {losses} "
                             f"(targeted={self.targeted}), got {self.loss!r}")

    # -- objective and success ----------------------------------------------------------
    def objective(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Per-sample loss to maximize."""
        return attack_objective(logits, y, self.loss, self.targeted)

    # -- the attack ---------------------------------------------------------------------
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        return self.run(model, x, y, rng, target=None)[0]

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG,
            target: torch.Tensor | None, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """All restarts; ``target`` is APGD-T's target class per sample (or None).
        Returns (points, adversarial?, best loss) per sample."""
        result = x.clone()
        best_loss = torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            todo = ~found
            if restart and self.retry_above is not None:  # only the points that came close
                todo &= best_loss > self.retry_above
            todo = todo.nonzero().squeeze(1)
            if not todo.numel():
                break
            sub_target = None if target is None else target[todo]
            x_adv, loss, success = self._staged_run(model, x[todo], y[todo], rng[todo], sub_target,
                                                    stream + 16 * restart)
            better = success | (loss > best_loss[todo])
            result[todo] = torch.where(batch_view(better, x_adv), x_adv, result[todo])
            best_loss[todo] = torch.where(better, loss, best_loss[todo])
            found[todo] = success
        return result, found, best_loss

    def _staged_run(self, model, x, y, rng, target, stream):
        """One run through :attr:`stages`, each from the last stage's points. Returns (point,
        its loss, adversarial within eps?) per sample."""
        out, start = x.clone(), None
        loss = torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)
        success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for stage, (radius, steps) in enumerate(self.stages):
            todo = (~success).nonzero().squeeze(1)
            if not todo.numel():
                break
            sub_target = None if target is None else target[todo]
            sub_start = None if start is None else start[todo]
            x_adv, sub_loss, sub_success = self._single_run(model, x[todo], y[todo], rng[todo], sub_target,
                                                            stream + stage, radius, steps, sub_start)
            out[todo], loss[todo], success[todo] = x_adv, sub_loss, sub_success
            start = out
        return out, loss, success

    def _step(self, x0, x_k, x_prev, grad, eta, alpha, sparsity, radius) -> torch.Tensor:
        geometry = self.geometry
        step = batch_view(eta, x_k) * geometry.steepest_ascent(grad, x_k, sparsity)
        z = geometry.project_point(x0, x_k + step, radius)
        if alpha == 1:  # no momentum: z is already projected
            return z
        moved = x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_prev)
        return geometry.project_point(x0, moved, radius)

    def _single_run(self, model, x, y, rng, target, stream, radius, steps, start=None):
        """One run of ``steps`` in the ``radius`` ball, from ``start`` projected onto it or from
        a random start. Returns (point, its loss, adversarial within eps?) per sample: the
        first such iterate where one was found, else the best-loss iterate."""
        n, l1 = x.shape[0], self.norm == "l1"
        out, out_loss = x.clone(), torch.full((n,), -math.inf, device=x.device, dtype=x.dtype)
        success = torch.zeros(n, dtype=torch.bool, device=x.device)

        def evaluate(points, alive):
            points = points.detach().requires_grad_(True)
            logits = model(points)
            sub_target = None if target is None else target[alive]
            loss = self.objective(logits, y[alive], sub_target)
            (grad,) = torch.autograd.grad(loss.sum(), points)
            broken = adversarial(logits.detach(), y[alive], self.targeted)
            if radius > self.eps:  # a larger stage: broken only within eps
                broken &= self.geometry.measure(points.detach() - x[alive]) <= self.eps * (1 + 1e-5)
            return loss.detach(), grad, broken

        x_k = self._start(x, rng, stream, radius, start)
        alive = torch.arange(n, device=x.device)  # working set: samples not yet adversarial
        loss, grad, adv = evaluate(x_k, alive)
        eta0 = (1.0 if l1 else 2.0) * radius
        eta = torch.full((n,), eta0, device=x.device, dtype=x.dtype)
        state = _RunState(alive, x, x_k, x_k, grad, loss, eta, loss.clone(), x_k.clone(), grad.clone(),
                          torch.zeros_like(loss))
        every = max(int(0.04 * steps), 1)
        marks = set(range(every, steps, every)) if l1 else set(checkpoints(steps))
        schedule = _L1Schedule(state, eta0) if l1 else _HalvingSchedule(state, self.rho)
        for k in range(steps):
            if adv.any():  # record finished samples and drop them from the working set (one host sync)
                done = state.alive[adv]
                out[done], out_loss[done], success[done] = state.x_k[adv], state.loss[adv], True
                state.keep(~adv)
                schedule.keep(~adv)
                if not state.alive.numel():
                    break
            if k == steps - 1:
                break
            alpha = 1.0 if k == 0 or l1 else self.momentum  # Croce & Hein 2021: none in L1
            x_new = self._step(state.x0, state.x_k, state.x_prev, state.grad, state.eta, alpha,
                               schedule.sparsity, radius)
            new_loss, new_grad, adv = evaluate(x_new, state.alive)
            state.advance(x_new, new_loss, new_grad)
            if k + 1 in marks:
                schedule.checkpoint(state, k + 1)
        if state.alive.numel():
            out[state.alive], out_loss[state.alive] = state.x_best, state.best_loss
        return out, out_loss, success

    def _start(self, x, rng, stream, radius, start):
        """``start`` projected onto the ``radius`` ball, else a random start (in L1 a sparse one:
        a Gaussian projected onto the L1 sphere inside the box)."""
        if start is not None:
            return self.geometry.project_point(x, start, radius)
        if self.norm == "l1":
            noise = rng.normal(stream, tuple(x.shape[1:]), x.dtype)
            return x + self.geometry.project_in_box(noise, x, radius)
        return clamp_to_box(x + self.geometry.random_start(rng, stream, x, radius))


@dataclass
class _RunState:
    """Per-sample state of one APGD run over its working set (the points not yet adversarial):
    dataset positions ``alive``, clean ``x0``, the iterate, the previous iterate, its gradient
    and loss, the step size, and the best point so far with its loss and gradient."""

    alive: torch.Tensor
    x0: torch.Tensor
    x_k: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    loss: torch.Tensor
    eta: torch.Tensor
    best_loss: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    increases: torch.Tensor  # steps that increased the loss since the last checkpoint

    def keep(self, mask: torch.Tensor) -> None:
        """Drop the samples outside ``mask`` from the working set."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def advance(self, x_new: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor) -> None:
        """Move to ``x_new`` and keep the best point so far."""
        self.increases += (loss > self.loss).to(loss.dtype)
        self.x_prev, self.x_k, self.loss, self.grad = self.x_k, x_new, loss, grad
        improved = loss > self.best_loss
        self.best_loss = torch.where(improved, loss, self.best_loss)
        self.x_best = torch.where(batch_view(improved, x_new), x_new, self.x_best)
        self.grad_best = torch.where(batch_view(improved, grad), grad, self.grad_best)

    def back_to_best(self, where: torch.Tensor) -> None:
        self.x_k = torch.where(batch_view(where, self.x_k), self.x_best, self.x_k)
        self.grad = torch.where(batch_view(where, self.grad), self.grad_best, self.grad)


class _HalvingSchedule:
    """Linf/L2 step size (Croce & Hein 2020, Sec. 3.2): at a checkpoint eta halves and the
    iterate returns to the best point if fewer than ``rho`` of the steps since the last one
    increased the loss, or if neither eta nor the best loss changed since then."""

    sparsity = None

    def __init__(self, state: _RunState, rho: float) -> None:
        self.rho, self.last_mark = rho, 0
        self.loss_at_check = state.best_loss.clone()
        self.eta_reduced = torch.zeros_like(state.loss, dtype=torch.bool)

    def keep(self, mask: torch.Tensor) -> None:
        self.loss_at_check, self.eta_reduced = self.loss_at_check[mask], self.eta_reduced[mask]

    def checkpoint(self, state: _RunState, step: int) -> None:
        window = step - self.last_mark
        stalled = ((state.increases < self.rho * window)
                   | (~self.eta_reduced & (self.loss_at_check >= state.best_loss)))
        state.eta = torch.where(stalled, state.eta / 2, state.eta)
        state.back_to_best(stalled)
        state.increases.zero_()
        self.loss_at_check, self.eta_reduced, self.last_mark = state.best_loss.clone(), stalled, step


class _L1Schedule:
    """L1 step size and sparsity (Croce & Hein 2021, Sec. 3): the step's sparsity follows the
    best point's support, ||x_best - x||_0 / (1.5 d); eta returns to eps (and the iterate to
    the best point) if that support shrank by over 5%, else divides by 1.5, down to eps / 10."""

    def __init__(self, state: _RunState, eta0: float) -> None:
        self.eta0 = eta0
        self.sparsity = torch.full_like(state.loss, 0.2)  # fraction of coordinates per step
        self.support = torch.full_like(state.loss, float(state.x0[0].numel()))

    def keep(self, mask: torch.Tensor) -> None:
        self.sparsity, self.support = self.sparsity[mask], self.support[mask]

    def checkpoint(self, state: _RunState, step: int) -> None:
        new_support = (state.x_best != state.x0).flatten(1).sum(dim=1).to(state.loss.dtype)
        reset = new_support < 0.95 * self.support
        self.sparsity = new_support / state.x0[0].numel() / 1.5
        state.eta = torch.where(reset, self.eta0, state.eta / 1.5).clamp(self.eta0 / 10, self.eta0)
        state.back_to_best(reset)
        self.support = new_support


class APGDT(APGD):
    """APGD-T (Croce & Hein 2020): untargeted evaluation by targeted attacks. For each of the
    ``target_classes`` classes with the highest clean logits after the true one, APGD with the
    targeted DLR loss -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) towards that class, on the
    points no earlier target broke. A point is broken when it is misclassified at all.
    With ``gate_after`` = k, targets after the k-th run only on the points whose targeted DLR
    came above ``gate_above`` for one of the first k targets (the points near the boundary;
    per sample, so results do not depend on the batch).
    Cost: at most ``target_classes * restarts * steps`` forward+backward passes per sample.

    Parameters
    ----------
    norm : {"linf", "l2", "l1"}, default "linf"
        The threat model's norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    target_classes : int, default 9
        How many of the most likely other classes to target, in order.
    gate_after : int, optional
        After this many targets, go on only with the points that came close (None: all points).
    gate_above : float, default -0.3
        The targeted DLR a point must have exceeded to go on (DLR is scale-free).
    **kwargs
        The other parameters of :class:`APGD` (``steps``, ``restarts``, ``retry_above``, ...).
    """

    supports_targeted = False  # its targets are internal; y is always the true label
    counts = ("target_classes",)

    def __init__(self, *, norm: str = "linf", eps: float, target_classes: int = 9,
                 gate_after: int | None = None, gate_above: float = -0.3, **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, loss="ce", **kwargs)
        self.target_classes, self.gate_after, self.gate_above = target_classes, gate_after, gate_above

    def validate(self) -> None:
        super().validate()
        if self.gate_after is not None:
            check_positive_int("gate_after", self.gate_after)

    def objective(self, logits, y, target):
        return targeted_dlr(logits, y, target)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        k = min(self.target_classes, logits.shape[1] - 1)
        ranked = other_classes_by_logit(logits, y)
        result = x.clone()
        standing = ~adversarial(logits, y)
        closest = torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)  # best DLR so far
        for j in range(k):
            todo = standing if self.gate_after is None or j < self.gate_after else standing & (
                closest > self.gate_above)
            todo = todo.nonzero().squeeze(1)
            if not todo.numel():
                break
            x_adv, broken, loss = self.run(model, x[todo], y[todo], rng[todo], ranked[todo, j],
                                           stream=1000 * (j + 1))
            result[todo] = torch.where(batch_view(broken, x_adv), x_adv, result[todo])
            standing[todo] = ~broken
            closest[todo] = closest[todo].maximum(loss)
        return result
