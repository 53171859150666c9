"""Square Attack (Andriushchenko et al. 2020): score-based random search, no gradients."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlit.attacks.base import FixedBudgetAttack
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.losses import signed_margin
from advlit.attacks.norms import lp_norm, project_l1_in_box
from advlit.attacks.randomness import SampleRNG

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init: float, query: int, queries: int) -> float:
    """The paper's schedule of p, the fraction of pixels a square covers: p_init halved at
    queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query run,
    rescaled to ``queries``."""
    scaled = int(query / queries * 10000)
    return p_init / 2 ** sum(scaled > h for h in _HALVINGS)


def _rings(s: int, power: int, device, dtype) -> torch.Tensor:
    """The paper's window pattern (Sec. 3.2): concentric square rings whose value grows towards
    the centre, eta(r1, r2) = sum_{k <= M(r1, r2)} 1 / (n + 1 - k)^power. Power 2, unit L2
    norm, is the L2 pattern; power 4, unit L1 norm, the more peaked L1 pattern (Croce & Hein
    2021, "Mind the box")."""
    n = s // 2
    r = torch.arange(s, device=device)
    ring = n - torch.maximum((r[:, None] - (s - 1) / 2).abs(), (r[None, :] - (s - 1) / 2).abs()).floor()
    k = torch.arange(n + 1, device=device, dtype=dtype)
    cumulative = (1 / (n + 1 - k) ** power).cumsum(0)
    eta = cumulative[ring.clamp(0, n).long()].to(dtype)
    return eta / eta.norm() if power == 2 else eta / eta.sum()


class Square(FixedBudgetAttack):
    """Random search over square-shaped updates (Andriushchenko et al. 2020, Algorithms 1-3),
    minimizing the margin z_y - max_{j != y} z_j (untargeted) or max_{j != t} z_j - z_t
    (targeted); an update is kept per sample when it lowers the margin.

    Linf: start from vertical stripes of +-eps per column and channel, then set a random
    s x s window to +-eps (one sign per channel; the opposite signs where those would leave
    the point unchanged, so no query is wasted). L2: start from +-pattern tiles scaled to
    norm eps; each update takes the energy of two random windows (per channel) and puts it
    back into the first as the paper's centred pseudo-Gaussian pattern with a random sign
    (added to what the window held), then rescales the whole perturbation to norm eps.
    L1 (Croce & Hein 2021, "Mind the box"): the same moves with the peaked L1 pattern; a
    window gets the L1 mass of both windows plus the budget still unused, spread as its old
    content (rescaled to unit mass) plus the pattern, and every proposal is projected exactly
    onto the L1 ball inside the box (:func:`~advlit.attacks.norms.project_l1_in_box`).
    The window side is s = round(sqrt(p * H * W)) with p from :func:`square_fraction`.

    Costs ``queries`` forward passes per sample at most and no backward pass; a sample stops
    as soon as it is adversarial. Randomness is per sample (``rng``), one stream per query.
    """

    gradient_free = True
    norms = ("linf", "l2", "l1")
    counts = ("queries",)

    def __init__(self, *, norm: str = "linf", eps: float, queries: int = 5000, p_init: float | None = None,
                 **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, **kwargs)
        self.queries = queries
        self.p_init = p_init

    def validate(self) -> None:
        super().validate()
        if self.p_init is not None and not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1] or None, got {self.p_init!r}")

    @property
    def p(self) -> float:
        """p_init: 0.8 (AutoAttack's setting for Square) unless set."""
        return self.p_init if self.p_init is not None else 0.8

    def _margin(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = signed_margin(logits, y, self.targeted)
        return torch.where(logits.isfinite().all(dim=1), m, -math.inf)  # non-finite: broken

    def _init(self, x: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.norm == "linf":
            return clamp_to_box(x + self.eps * rng.sign(0, (c, 1, w), x.dtype).expand_as(x)) - x
        # L2 and L1: tiles of the ring pattern with random signs, scaled to or projected onto
        # the eps ball
        s = max(1, min(h, w) // 5)
        tile = _rings(s, 2 if self.norm == "l2" else 4, x.device, x.dtype)
        pattern = tile.repeat(math.ceil(h / s), math.ceil(w / s))[:h, :w]
        signs = rng.sign(0, (c, math.ceil(h / s), math.ceil(w / s)), x.dtype)
        signs = signs.repeat_interleave(s, 2).repeat_interleave(s, 3)[:, :, :h, :w]
        delta = pattern * signs
        if self.norm == "l1":
            return project_l1_in_box(delta, x, self.eps)
        delta = delta * batch_view(self.eps / lp_norm(delta, "l2").clamp_min(1e-12), x)
        return clamp_to_box(x + delta) - x

    def _place(self, rng: SampleRNG, stream: int, shape, s: int):
        """A random s x s window per sample: its mask (N, 1, H, W) and, for every pixel, its
        row and column inside the window (clamped), to read a pattern from."""
        _, _, h, w = shape
        top, left = rng.integers(stream, h - s + 1), rng.integers(stream + 1, w - s + 1)
        dr = torch.arange(h, device=top.device)[None, :] - top[:, None]
        dc = torch.arange(w, device=top.device)[None, :] - left[:, None]
        inside_r, inside_c = (dr >= 0) & (dr < s), (dc >= 0) & (dc < s)
        mask = (inside_r[:, :, None] & inside_c[:, None, :])[:, None]
        return mask, dr.clamp(0, s - 1), dc.clamp(0, s - 1)

    def _propose(self, x, delta, rng: SampleRNG, query: int) -> torch.Tensor:
        n, c, h, w = x.shape
        p = square_fraction(self.p, query, self.queries)
        s = max(1, min(int(round(math.sqrt(p * h * w))), h - 1, w - 1))
        stream = 8 * query
        window, dr, dc = self._place(rng, stream, x.shape, s)
        signs = rng.sign(stream + 2, (c, 1, 1), x.dtype)
        if self.norm == "linf":
            proposal = torch.where(window, self.eps * signs, delta)
            # a proposal that the box leaves equal to the current point wastes a query (the
            # window already had these signs, or the pixels are clipped): flip its signs
            same = ((clamp_to_box(x + proposal) - clamp_to_box(x + delta)).abs() < 1e-7).flatten(1).all(dim=1)
            return torch.where(batch_view(same, x) & window, -self.eps * signs, proposal)
        other = self._place(rng, stream + 4, x.shape, s)[0] & ~window
        eta = _rings(s, 2 if self.norm == "l2" else 4, x.device, x.dtype)
        pattern = eta[dr[:, :, None], dc[:, None, :]][:, None] * window
        if self.norm == "l1":
            mass = (delta.abs() * (window | other)).sum(dim=(2, 3), keepdim=True)  # per channel
            spare = (self.eps - lp_norm(delta, "l1")).clamp_min(0) / c
            old = delta * window
            new_window = old / old.abs().sum(dim=(2, 3), keepdim=True).clamp_min(1e-12) + signs * pattern
            new_window = new_window * (mass + batch_view(spare, x)) / \
                new_window.abs().sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
            proposal = torch.where(window, new_window, torch.where(other, torch.zeros_like(delta), delta))
            return project_l1_in_box(proposal, x, self.eps)
        energy = (delta.square() * (window | other)).sum(dim=(2, 3), keepdim=True).sqrt()  # per channel
        new_window = delta * window + signs * energy * pattern
        new_norm = new_window.square().sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        proposal = torch.where(window, new_window * energy / new_norm,
                               torch.where(other, torch.zeros_like(delta), delta))
        return proposal * batch_view(self.eps / lp_norm(proposal, "l2").clamp_min(1e-12), proposal)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        result = x.clone()
        with torch.no_grad():
            delta = self._init(x, rng)
            best = self._margin(model(x + delta), y)
            alive = torch.arange(x.shape[0], device=x.device)
            x0, y0, sub_rng = x, y, rng
            for query in range(1, self.queries + 1):
                done = best < 0
                if done.any():  # one host sync per query: finished samples leave
                    result[alive[done]] = x0[done] + delta[done]
                    keep = ~done
                    alive, x0, y0, delta, best = alive[keep], x0[keep], y0[keep], delta[keep], best[keep]
                    sub_rng = sub_rng[keep]
                    if not alive.numel():
                        break
                if query == self.queries:
                    break
                proposal = clamp_to_box(x0 + self._propose(x0, delta, sub_rng, query)) - x0
                candidate = self._margin(model(x0 + proposal), y0)
                better = candidate < best
                delta = torch.where(batch_view(better, delta), proposal, delta)
                best = torch.where(better, candidate, best)
            if alive.numel():
                result[alive] = x0 + delta
        return result
