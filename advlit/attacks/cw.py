"""Carlini & Wagner (2017) L2 attack: tanh change of variables, Adam, binary search over the
trade-off constant, confidence kappa, early abort."""

from __future__ import annotations

import torch
from torch import nn

from advlit.attacks.base import NON_NEGATIVE, POSITIVE, MinNormAttack
from advlit.attacks.geometry import batch_view
from advlit.attacks.losses import signed_margin
from advlit.attacks.randomness import SampleRNG


class CarliniWagnerL2(MinNormAttack):
    """minimize ||x' - x||_2^2 + c * max(m(x'), -kappa) over w, x' = (tanh(w) + 1) / 2, where
    m = z_y - max_{j != y} z_j (untargeted) or max_{j != t} z_j - z_t (targeted).
    ``binary_search_steps`` rounds of ``steps`` Adam iterations; per sample, c is halved
    towards the last success or multiplied by 10 until the first. In a round, a sample stops
    (its best is no longer updated) when its own loss has not decreased by 0.01% over
    ``steps // 10`` iterations, and the round ends when every sample has stopped (one host
    sync per check): no stopping rule couples the samples of a batch. Cost:
    binary_search_steps * steps forward+backward passes at most.

    The paper's settings are steps=10000, learning_rate=0.01, initial_const=1e-3; with pixels
    at exactly 0 or 1 (tanh saturated) short runs need the larger default learning rate.

    Parameters
    ----------
    steps : int, default 200
        Adam iterations per binary-search round.
    binary_search_steps : int, default 9
        Rounds of the search over the constant c.
    initial_const : float, default 1.0
        c in the first round.
    confidence : float, default 0.0
        kappa: how far past the boundary the margin must go.
    learning_rate : float, default 0.05
        Adam's step size on w.
    abort_early : bool, default True
        Stop a sample's round once its loss stalls (see above).
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    counts = ("steps", "binary_search_steps")
    ranges = {"initial_const": POSITIVE, "confidence": NON_NEGATIVE, "learning_rate": POSITIVE}

    def __init__(self, *, steps: int = 200, binary_search_steps: int = 9,
                 initial_const: float = 1.0, confidence: float = 0.0,
                 learning_rate: float = 0.05, abort_early: bool = True, **kwargs) -> None:
        super().__init__(norm="l2", **kwargs)
        self.steps, self.binary_search_steps = steps, binary_search_steps
        self.initial_const, self.confidence = initial_const, confidence
        self.learning_rate, self.abort_early = learning_rate, abort_early

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        n = x.shape[0]
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, float("inf"))
        best_l2 = torch.full_like(const, float("inf"))
        best = x.clone()
        w0 = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        check = max(1, self.steps // 10)
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=self.learning_rate)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            active = torch.ones(n, dtype=torch.bool, device=x.device)
            previous = torch.full_like(const, float("inf"))
            for step in range(self.steps):
                x_new = (torch.tanh(w) + 1) / 2
                l2sq = (x_new - x).flatten(1).square().sum(dim=1)
                m = signed_margin(model(x_new), y, self.targeted)
                loss = l2sq + const * (m + self.confidence).clamp_min(0)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                with torch.no_grad():
                    success = (m < -self.confidence if self.confidence > 0 else m < 0) & active
                    l2 = l2sq.sqrt()
                    improved = success & (l2 < best_l2)
                    best_l2 = torch.where(improved, l2, best_l2)
                    best = torch.where(batch_view(improved, x), x_new.detach(), best)
                    succeeded |= success
                if self.abort_early and (step + 1) % check == 0:
                    # per sample: a sample whose own loss stalled stops counting (Adam is
                    # element-wise, so no sample's result depends on the others in its batch)
                    active &= ~(loss.detach() > previous * 0.9999)
                    previous = loss.detach()
                    if not active.any():  # one host sync per check
                        break
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(upper.isinf(), const * 10, (lower + upper) / 2)
        return best
