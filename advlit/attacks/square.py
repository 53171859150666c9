"""Square Attack (Andriushchenko et al. 2020): score-based random search, no gradients."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlit.attacks.base import FixedBudgetAttack, Range
from advlit.attacks.geometry import batch_view, clamp_to_box
from advlit.attacks.losses import signed_margin
from advlit.attacks.norms import lp_norm, project_l1_in_box
from advlit.attacks.randomness import SampleRNG, below_from_bits, sign_from_bits

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_BLOCK = 64  # queries whose random values are drawn together (one hash pass)


def square_fraction(p_init: float, query: int, queries: int = 10000) -> float:
    """The paper's schedule of p, the fraction of pixels a square covers: p_init halved at
    queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query run,
    rescaled to a run of ``queries``."""
    scaled = int(query / queries * 10000)
    return p_init / 2 ** sum(scaled > h for h in _HALVINGS)


def _rings(h: int, w: int, power: int, device, dtype) -> torch.Tensor:
    """Concentric rectangular rings around the centre (h // 2, w // 2) whose value grows towards
    it: a pixel at Chebyshev distance d gets sum_{k >= d} 1 / (k + 1)^power (Andriushchenko et
    al. 2020, Sec. 3.2)."""
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    d = torch.maximum((rows[:, None] - h // 2).abs(), (cols[None, :] - w // 2).abs())
    k = torch.arange(max(h // 2, w // 2) + 1, device=device, dtype=dtype)
    tail = (1 / (k + 1) ** power).flip(0).cumsum(0).flip(0)
    return tail[d]


def window_pattern(s: int, power: int, device, dtype) -> torch.Tensor:
    """The paper's s x s update pattern, (2, s, s): rings over the top half and their negative
    over the bottom half (Sec. 3.2), then the same transposed (each update picks one of the two).
    Power 2 scaled to unit L2 norm is the L2 pattern; power 4 scaled to unit L1 norm the more
    peaked L1 pattern (Croce & Hein 2021, "Mind the box")."""
    eta = torch.cat([_rings(s // 2, s, power, device, dtype), -_rings(s - s // 2, s, power, device, dtype)])
    eta = eta / (eta.norm() if power == 2 else eta.abs().sum())
    return torch.stack([eta, eta.T])


class Square(FixedBudgetAttack):
    """Random search over square-shaped updates (Andriushchenko et al. 2020, Algorithms 1-3),
    minimizing the margin z_y - max_{j != y} z_j (untargeted) or max_{j != t} z_j - z_t
    (targeted); an update is kept per sample when it lowers the margin.

    Linf: start from vertical stripes of +-eps per column and channel, then set a random
    s x s window to +-eps (one sign per channel; the opposite signs where those would leave
    the point unchanged, so no query is wasted). L2: start from +-pattern tiles scaled to
    norm eps; each update empties a second random window and sets the first to its old
    content (unit norm) plus the paper's two-halves pattern (:func:`window_pattern`) with a
    random sign, scaled to the energy of both windows plus a share of the unused budget (per
    channel), then rescales the whole perturbation to norm eps.
    L1 (Croce & Hein 2021, "Mind the box"): the same moves with the peaked L1 pattern and L1
    mass, and every proposal is projected exactly onto the L1 ball inside the box
    (:func:`~advlit.attacks.norms.project_l1_in_box`). The window side is
    s = round(sqrt(p * H * W)) with p from :func:`square_fraction` (odd and >= 3 in L2 and L1).

    Costs ``queries`` forward passes per sample at most and no backward pass; a sample stops
    as soon as it is adversarial. Randomness is per sample (``rng``), one stream per block of
    64 queries.

    Parameters
    ----------
    norm : {"linf", "l2", "l1"}, default "linf"
        The threat model's norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    queries : int, default 5000
        Forward passes per sample at most (the start counts as one).
    p_init : float, optional
        Initial fraction of the image a square covers (default 0.8, AutoAttack's).
    rescale_schedule : bool, optional
        Rescale p's halving schedule to ``queries`` (default: in Linf only).
    promise : list of (float, float), optional
        (fraction of ``queries``, ratio) pairs: at each such query a point still standing keeps
        its remaining queries only if its margin is below ratio times its margin at the start
        (scale-free, per sample); the others end there. None: every point gets every query.
    **kwargs
        ``targeted``, ``model_mode``, ``differentiable`` of :class:`~advlit.attacks.Attack`.
    """

    gradient_free = True
    norms = ("linf", "l2", "l1")
    counts = ("queries",)
    ranges = {"p_init": Range(0, 1, "(]", optional=True)}

    def __init__(self, *, norm: str = "linf", eps: float, queries: int = 5000, p_init: float | None = None,
                 rescale_schedule: bool | None = None, promise: list[tuple[float, float]] | None = None,
                 **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, **kwargs)
        self.queries = queries
        self.p_init = p_init
        self.rescale_schedule = rescale_schedule
        self.promise = None if promise is None else [tuple(map(float, pair)) for pair in promise]

    def validate(self) -> None:
        super().validate()
        for fraction, ratio in self.promise or []:
            if not (0 < fraction < 1 and 0 < ratio <= 1):
                raise ValueError(f"promise pairs must be (fraction of queries in (0, 1), ratio in (0, 1]), "
                                 f"got {(fraction, ratio)}")

    def _checks(self) -> dict[int, float]:
        """Query -> margin ratio a point must be below to go on (:attr:`promise`)."""
        return {max(1, round(fraction * self.queries)): ratio for fraction, ratio in self.promise or []}

    @property
    def p(self) -> float:
        """p_init: 0.8 (AutoAttack's setting for Square) unless set."""
        return self.p_init if self.p_init is not None else 0.8

    @property
    def rescaled(self) -> bool:
        """Whether p's schedule is rescaled to ``queries`` (unless set: in Linf only). Measured on
        the benchmark PGD-AT CNN, first 100-200 MNIST test images, 4500 queries alone: Linf
        0.820 rescaled vs 0.825 not; L2 (eps 2) 0.240 vs 0.190, L1 (eps 10) 0.230 vs 0.170:
        L2 and L1 keep the larger windows longer, as AutoAttack's Square does."""
        return self.rescale_schedule if self.rescale_schedule is not None else self.norm == "linf"

    def _margin(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = signed_margin(logits, y, self.targeted)
        return torch.where(logits.isfinite().all(dim=1), m, -math.inf)  # non-finite: broken

    def _init(self, x: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        """The starting point (in the ball and the box)."""
        n, c, h, w = x.shape
        if self.norm == "linf":
            return clamp_to_box(x + self.eps * rng.sign(0, (c, 1, w), x.dtype).expand_as(x))
        # L2 and L1: s x s tiles of the update pattern with random signs, scaled to or
        # projected onto the eps ball
        s = max(1, min(h, w) // 5)
        tile = window_pattern(s, self._power, x.device, x.dtype)[0]
        pattern = tile.repeat(math.ceil(h / s), math.ceil(w / s))[:h, :w]
        signs = rng.sign(0, (c, math.ceil(h / s), math.ceil(w / s)), x.dtype)
        signs = signs.repeat_interleave(s, 2).repeat_interleave(s, 3)[:, :, :h, :w]
        delta = pattern * signs
        if self.norm == "l1":
            return x + project_l1_in_box(delta, x, self.eps)
        return clamp_to_box(x + delta * batch_view(self.eps / lp_norm(delta, "l2").clamp_min(1e-12), x))

    @property
    def _power(self) -> int:
        return 2 if self.norm == "l2" else 4

    def _place(self, top_bits: torch.Tensor, left_bits: torch.Tensor, shape, s: int):
        """A random s x s window per sample: its mask (N, 1, H, W) and, for every pixel, its
        row and column inside the window (clamped), to read a pattern from."""
        _, _, h, w = shape
        top, left = below_from_bits(top_bits, h - s + 1), below_from_bits(left_bits, w - s + 1)
        dr = torch.arange(h, device=top.device)[None, :] - top[:, None]
        dc = torch.arange(w, device=top.device)[None, :] - left[:, None]
        inside_r, inside_c = (dr >= 0) & (dr < s), (dc >= 0) & (dc < s)
        mask = (inside_r[:, :, None] & inside_c[:, None, :])[:, None]
        return mask, dr.clamp(0, s - 1), dc.clamp(0, s - 1)

    def _propose(self, x, current, draws: torch.Tensor, query: int) -> torch.Tensor:
        """A proposed point (in the ball and the box) next to ``current``, from this query's
        random values ``draws`` (N, 5 + C): window corners, the second window's corners, the
        pattern's orientation, a sign per channel."""
        n, c, h, w = x.shape
        p = square_fraction(self.p, query, self.queries if self.rescaled else 10000)
        s = int(round(math.sqrt(p * h * w)))
        signs = sign_from_bits(draws[:, 5:], x.dtype).view(n, c, 1, 1)
        if self.norm == "linf":
            s = max(1, min(s, h - 1, w - 1))
            window = self._place(draws[:, 0], draws[:, 1], x.shape, s)[0]
            values = clamp_to_box(x + self.eps * signs)
            # a window that already holds these values (or that the box clips to them) would
            # waste the query: flip its signs
            wasted = ~((values != current) & window).flatten(1).any(dim=1)
            values = torch.where(batch_view(wasted, x), clamp_to_box(x - self.eps * signs), values)
            return torch.where(window, values, current)
        # L2, L1: odd windows of side >= 3, as in the paper's code
        s = min(max(3, s + 1 - s % 2), h, w)
        delta = current - x
        window, dr, dc = self._place(draws[:, 0], draws[:, 1], x.shape, s)
        other = self._place(draws[:, 2], draws[:, 3], x.shape, s)[0] & ~window
        transpose = draws[:, 4] & 1
        eta = window_pattern(s, self._power, x.device, x.dtype)
        pattern = eta[transpose[:, None, None], dr[:, :, None], dc[:, None, :]][:, None] * window
        # the window's old content (unit norm) plus the signed pattern, given the norm of both
        # windows plus an equal share of the budget still unused
        q = 2 if self.norm == "l2" else 1
        old = delta * window
        old_norm = old.abs().pow(q).sum(dim=(2, 3), keepdim=True).pow(1 / q)
        windows_norm_q = (delta.abs().pow(q) * (window | other)).sum(dim=(2, 3), keepdim=True)
        spare = (self.eps ** q - lp_norm(delta, self.norm) ** q).clamp_min(0) / c
        target = (windows_norm_q + batch_view(spare, x)).pow(1 / q)
        new_window = old / old_norm.clamp_min(1e-12) + signs * pattern
        new_window = new_window * target / new_window.abs().pow(q).sum(dim=(2, 3), keepdim=True).pow(
            1 / q).clamp_min(1e-12)
        proposal = torch.where(window, new_window, torch.where(other, torch.zeros_like(delta), delta))
        if self.norm == "l1":
            return x + project_l1_in_box(proposal, x, self.eps)
        return clamp_to_box(x + proposal * batch_view(self.eps / lp_norm(proposal, "l2").clamp_min(1e-12), x))

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        result = x.clone()
        checks = self._checks()
        with torch.no_grad():
            current = self._init(x, rng)
            best = self._margin(model(current), y)
            start = best.clone()
            alive = torch.arange(x.shape[0], device=x.device)
            x0, y0, sub_rng, draws = x, y, rng, None
            for query in range(1, self.queries + 1):
                done = best < 0
                if query in checks:  # unpromising points end here too
                    done |= best >= checks[query] * start
                if done.any():  # one host sync per query: finished samples leave
                    result[alive[done]] = current[done]
                    keep = ~done
                    alive, x0, y0, current, best = alive[keep], x0[keep], y0[keep], current[keep], best[keep]
                    start = start[keep]
                    sub_rng, draws = sub_rng[keep], None if draws is None else draws[keep]
                    if not alive.numel():
                        break
                if query == self.queries:
                    break
                if (query - 1) % _BLOCK == 0:  # the random values of the next _BLOCK queries at once
                    draws = sub_rng.bits(1 + (query - 1) // _BLOCK, (_BLOCK, 5 + x.shape[1]))
                proposal = self._propose(x0, current, draws[:, (query - 1) % _BLOCK], query)
                candidate = self._margin(model(proposal), y0)
                better = candidate < best
                current = torch.where(batch_view(better, current), proposal, current)
                best = torch.where(better, candidate, best)
            if alive.numel():
                result[alive] = current
        return result
