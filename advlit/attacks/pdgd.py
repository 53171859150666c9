"""Primal-dual min-norm attacks (Matyasko's thesis ch. 5, Algorithms 2-3; Matyasko & Chau,
"PDPGD", 2021): PDGD for L2 and PDPGD (proximal) for Linf, L2, L1, L0 and group-L0.

Lagrangian of  min ||r||  s.t.  x + r misclassified:  w_n ||r|| + w_c * s(m(x + r)), with m
the prediction margin (target margin 0), s its surrogate and (w_n, w_c) = softmax(0, log
lambda). Primal: Adam on r (PDGD), or a proximal gradient step (PDPGD). Dual: gradient
ascent on log lambda with the misclassification indicator (+1 while x + r is still classified
correctly, -1 once it is adversarial), smoothed by an exponential moving average. The primal
learning rate decays from ``lr`` to ``lr * lr_final``; the best adversarial example is kept
per sample; the first run starts at x, further ``restarts`` from uniform noise.

Defaults follow the authors' released MNIST settings (aam-at/cpgd) rather than the thesis text
where the two differ, because they measured better on an adversarially trained MNIST model
(README, "advlit against torchattacks"): ``surrogate: softplus`` (log(1 + e^m), still pulling
once the point is adversarial) instead of the hinge max(m, 0); ``lr_schedule: exponential``
instead of linear; lr 1.0 and lambda 10 at the start. ``surrogate: hinge, lr_schedule:
linear, lr: 0.1, dual_init: 1, random_init: 0`` give the thesis's Algorithm 2 as written.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import FRACTION, POSITIVE, MinNormAttack, Range
from advlit.attacks.geometry import batch_view, clamp_to_box, normalize_l2
from advlit.attacks.losses import signed_margin
from advlit.attacks.randomness import SampleRNG

ADAM_BETAS = (0.9, 0.999)
SURROGATES = {"hinge": lambda m: m.clamp_min(0), "softplus": F.softplus}


class PDGD(MinNormAttack):
    """Primal-dual gradient descent, L2 (thesis Algorithm 2). Cost: ``steps * restarts``
    forward+backward passes, plus ``refine_steps`` forward passes of a final bisection
    towards x (:meth:`boundary_search`).

    Parameters
    ----------
    norm : {"l2"}, default "l2"
        The norm (PDPGD covers the others).
    steps : int, default 500
        Primal-dual iterations per run.
    lr : float, default 1.0
        The primal learning rate at the start.
    lr_final : float, default 0.01
        The primal learning rate at the end, as a fraction of ``lr``, in (0, 1].
    dual_lr : float, default 0.1
        Step size of the ascent on log lambda.
    dual_init : float, default 10.0
        lambda at the start.
    dual_ema : float, default 0.9
        Smoothing of the misclassification indicator, in [0, 1).
    restarts : int, default 1
        Runs; the first from x, the others from uniform noise.
    random_init : float, default 0.5
        The noise's range for the restarts.
    surrogate : {"softplus", "hinge"}, default "softplus"
        s(m) of the margin in the Lagrangian.
    lr_schedule : {"exponential", "linear"}, default "exponential"
        How the primal learning rate decays.
    refine_steps : int, default 10
        Forward passes of the final bisection towards x (0: none).
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    norms = ("l2",)
    counts = ("steps", "restarts")
    ranges = {"lr": POSITIVE, "dual_lr": POSITIVE, "dual_init": POSITIVE, "lr_final": FRACTION,
              "dual_ema": Range(0, 1, "[)"), "random_init": Range(0, bounds="[)")}

    def __init__(self, *, norm: str = "l2", steps: int = 500, lr: float = 1.0,
                 lr_final: float = 0.01, dual_lr: float = 0.1, dual_init: float = 10.0,
                 dual_ema: float = 0.9, restarts: int = 1, random_init: float = 0.5,
                 surrogate: Literal["softplus", "hinge"] = "softplus",
                 lr_schedule: Literal["exponential", "linear"] = "exponential", refine_steps: int = 10,
                 **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.surrogate, self.lr_schedule = surrogate, lr_schedule
        self.steps, self.lr, self.lr_final = steps, lr, lr_final
        self.refine_steps = refine_steps
        self.dual_lr, self.dual_init, self.dual_ema = dual_lr, dual_init, dual_ema
        self.restarts, self.random_init = restarts, random_init

    # -- primal step: Adam on the Lagrangian ------------------------------------------
    @staticmethod
    def adam_direction(state: dict, grad: torch.Tensor, step: int) -> torch.Tensor:
        """Adam's bias-corrected m / (sqrt(v) + eps) for this step's gradient."""
        beta1, beta2 = ADAM_BETAS
        if not state:
            state["m"], state["v"] = torch.zeros_like(grad), torch.zeros_like(grad)
        state["m"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = state["m"] / (1 - beta1 ** (step + 1))
        v_hat = state["v"] / (1 - beta2 ** (step + 1))
        return m_hat / (v_hat.sqrt() + 1e-8)

    def primal_step(self, state: dict, r, grad_cls, w_norm, w_cls, lr: float, step: int):
        """Adam step on w_n ||r||_2 + w_c surrogate (d||r||/dr = r / ||r||, zero-safe)."""
        grad = batch_view(w_cls, r) * grad_cls + batch_view(w_norm, r) * normalize_l2(r)
        return r - lr * self.adam_direction(state, grad, step)

    # -- loop -----------------------------------------------------------------------
    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, best: torch.Tensor,
             best_norm: torch.Tensor, rng: SampleRNG, restart: int) -> None:
        n = x.shape[0]
        r = torch.zeros_like(x)
        if restart > 0 and self.random_init > 0:
            u = rng.uniform(restart, tuple(x.shape[1:]), x.dtype)
            r = clamp_to_box(x + (2 * u - 1) * self.random_init) - x
        state: dict = {}
        log_dual = torch.full((n,), math.log(self.dual_init), device=x.device, dtype=x.dtype)
        weights = torch.stack([torch.zeros_like(log_dual), log_dual], dim=1).softmax(dim=1)
        for step in range(self.steps):
            r_leaf = r.detach().requires_grad_(True)
            logits = model(x + r_leaf)
            m = signed_margin(logits, y, self.targeted)
            (grad_cls,) = torch.autograd.grad(SURROGATES[self.surrogate](m).sum(), r_leaf)
            with torch.no_grad():
                adversarial = m < 0
                norm = self.geometry.measure(r)
                better = adversarial & (norm < best_norm)
                best_norm.copy_(torch.where(better, norm, best_norm))
                best.copy_(torch.where(batch_view(better, x), x + r, best))

                progress = step / max(1, self.steps - 1)
                if self.lr_schedule == "linear":
                    lr = self.lr * (1 - (1 - self.lr_final) * progress)
                else:
                    lr = self.lr * self.lr_final ** progress
                r = self.primal_step(state, r, grad_cls, weights[:, 0], weights[:, 1], lr, step)
                r = clamp_to_box(x + r) - x

                indicator = (~adversarial).to(x.dtype) * 2 - 1
                log_dual = (log_dual + self.dual_lr * indicator).clamp(-20, 20)
                current = torch.stack([torch.zeros_like(log_dual), log_dual], dim=1).softmax(dim=1)
                weights = self.dual_ema * weights + (1 - self.dual_ema) * current

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        best = x.clone()
        best_norm = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
        with torch.no_grad():  # already misclassified points need no perturbation
            already = self.is_adversarial(model(x), y)
            best_norm.masked_fill_(already, 0.0)
        for restart in range(self.restarts):
            self._run(model, x, y, best, best_norm, rng, restart)
        found = best_norm.isfinite() & (best_norm > 0)
        return self.boundary_search(model, x, y, best, found, self.refine_steps)


class PDPGD(PDGD):
    """Primal-dual proximal gradient descent (thesis Algorithm 3) for ``norm`` in linf, l2,
    l1, l0 and group_l0 (pixels changed in any channel): a gradient step on the surrogate,
    then the proximal operator of the norm (:meth:`primal_step`). ``preconditioner``
    ``auto`` (the default) is ``adam`` for linf and ``none`` for the others, which measured best
    for each.

    Parameters
    ----------
    norm : {"linf", "l2", "l1", "l0", "group_l0"} or a norm with a proximal operator, default "linf"
        The norm whose smallest perturbation is sought.
    preconditioner : {"auto", "adam", "none"}, default "auto"
        The primal step's preconditioner.
    **kwargs
        The other parameters of :class:`PDGD`.
    """

    norms = None  # any norm with a proximal operator
    hooks = ("prox",)

    def __init__(self, *, norm: str = "linf", preconditioner: Literal["auto", "adam", "none"] = "auto",
                 **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.preconditioner = preconditioner

    @property
    def step_rule(self) -> str:
        """The preconditioner in effect: the given one, or for ``auto`` ``adam`` in linf and
        ``none`` otherwise (derived, so that ``replace(norm=...)`` follows the new norm)."""
        if self.preconditioner != "auto":
            return self.preconditioner
        return "adam" if self.norm == "linf" else "none"

    def primal_step(self, state: dict, r, grad_cls, w_norm, w_cls, lr: float, step: int):
        """Proximal gradient on w_n ||r|| + w_c surrogate with step eta: r_half = r - eta w_c g,
        then prox of the norm with threshold eta w_n.

        - ``preconditioner: adam``: Adam's direction for g in place of w_c g, eta = lr / w_c
          (a step of about lr per coordinate).
        - ``none``: eta = lr / (w_c ||g||_2), a step of L2 length lr down the surrogate.
        """
        if self.step_rule == "adam":
            r_half = r - lr * self.adam_direction(state, grad_cls, step)
            return self.geometry.prox(r_half, lr * w_norm / w_cls.clamp_min(1e-12))
        g_norm = grad_cls.flatten(1).norm(dim=1)
        eta = lr / (w_cls * g_norm).clamp_min(1e-12)
        threshold = torch.where(g_norm > 0, eta * w_norm, lr * w_norm / w_cls.clamp_min(1e-12))
        return self.geometry.prox(r - lr * normalize_l2(grad_cls), threshold)
