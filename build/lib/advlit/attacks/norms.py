"""Norms as objects: everything an attack needs to know about one norm, in one place.

A :class:`Norm` holds the per-sample measure, the name of its dual norm, the Euclidean
projection onto its ball, its steepest-ascent direction, a random start in its ball and its
proximal operator prox_{mu ||.||}(v) = argmin_z mu ||z|| + 1/2 ||z - v||^2. A hook a norm
does not have is None, and an attack that needs it says so through :meth:`Norm.require`.
YAML names a norm by its string (``norm: linf``); :func:`get_norm` is the one place an unknown
name is rejected. Adding a norm is one ``Norm(...)`` entry in ``_NORMS`` below (plus tests).

Every function works on a batch: the first dimension indexes samples and the norm is taken
over all remaining dimensions; ``mu`` and a per-sample ``eps`` (projections take a float or
one radius per sample) are (N,) tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from advlit.attacks.geometry import TINY, batch_view, box_blocked, clamp_to_box, normalize_l2

# -- measures ----------------------------------------------------------------------------


def _linf(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).abs().amax(dim=1)


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(p=2, dim=1)


def _l1(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).abs().sum(dim=1)


def _l0(x: torch.Tensor) -> torch.Tensor:
    return (x.flatten(1) != 0).sum(dim=1).to(x.dtype)


def _group_l0(x: torch.Tensor) -> torch.Tensor:
    """Number of pixels changed in any channel of an (N, C, H, W) batch."""
    return (x != 0).any(dim=1).flatten(1).sum(dim=1).to(x.dtype)


# -- projections onto the ball of radius eps -----------------------------------------------


def project_linf(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Coordinate-wise clip."""
    if isinstance(eps, torch.Tensor):
        eps = batch_view(eps, delta)
        return torch.maximum(torch.minimum(delta, eps), -eps)
    return delta.clamp(-eps, eps)


def project_l2(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Shrink only if outside."""
    scale = (eps / _l2(delta).clamp_min(TINY)).clamp(max=1.0)
    return delta * batch_view(scale, delta)


def project_l1(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """O(n log n) by sorting (Duchi et al. 2008): soft-threshold |v| at the theta that makes
    ||.||_1 = eps. ``eps`` may be a per-sample tensor (N,)."""
    flat = delta.flatten(1)
    n, d = flat.shape
    eps_t = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(n)
    magnitude = flat.abs()
    outside = magnitude.sum(dim=1) > eps_t
    sorted_mag = magnitude.sort(dim=1, descending=True).values
    cumsum = sorted_mag.cumsum(dim=1)
    ks = torch.arange(1, d + 1, device=flat.device, dtype=flat.dtype)
    candidates = (cumsum - eps_t[:, None]) / ks
    rho = (sorted_mag > candidates).sum(dim=1).clamp_min(1)  # number of kept coordinates
    theta = candidates.gather(1, (rho - 1)[:, None]).clamp_min(0)
    shrunk = (magnitude - theta).clamp_min(0) * flat.sign()
    return torch.where(outside[:, None], shrunk, flat).view_as(delta)


def project_l0(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Keep the floor(eps) entries of largest magnitude (ties broken by position), zero the rest."""
    flat = delta.flatten(1)
    k = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).floor().expand(flat.shape[0])
    rank = torch.empty_like(flat, dtype=torch.long).scatter_(
        1, flat.abs().argsort(dim=1, descending=True, stable=True),
        torch.arange(flat.shape[1], device=flat.device).expand_as(flat))
    return delta * (rank < k[:, None]).view_as(delta)


def shrink_l0(delta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L0's path towards 0 (scaling removes no entry): keep the ceil(t ||delta||_0) largest."""
    return project_l0(delta, (t * (delta != 0).flatten(1).sum(1)).ceil())


def project_l1_in_box(delta: torch.Tensor, x0: torch.Tensor, eps: float | torch.Tensor,
                      iterations: int = 32) -> torch.Tensor:
    """The Euclidean projection of ``delta`` onto {||d||_1 <= eps} ∩ {0 <= x0 + d <= 1}
    (Croce & Hein 2021, "Mind the box", Sec. 3.1; clipping after the L1 projection would waste
    budget on pixels the box cuts). Per coordinate it is the soft-threshold of delta at theta,
    clipped to the room the box leaves in delta's direction; theta >= 0 is the smallest with
    ||d||_1 <= eps, found by bisection (the norm only decreases in theta; 32 halvings reach
    float32 resolution, and the result is always inside the ball)."""
    flat, base = delta.flatten(1), x0.flatten(1)
    room = torch.where(flat > 0, 1 - base, base).clamp_min(0)
    magnitude = flat.abs()
    eps_t = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])

    def shrunk(theta: torch.Tensor) -> torch.Tensor:
        return (magnitude - theta[:, None]).clamp_min(0).minimum(room)

    zero = torch.zeros_like(eps_t)
    low, high = zero, magnitude.amax(dim=1)
    for _ in range(iterations):  # invariant: the norm at theta = high is within eps
        mid = (low + high) / 2
        over = shrunk(mid).sum(dim=1) > eps_t
        low, high = torch.where(over, mid, low), torch.where(over, high, mid)
    theta = torch.where(shrunk(zero).sum(dim=1) > eps_t, high, zero)
    return (flat.sign() * shrunk(theta)).view_as(delta)


# -- steepest ascent: the unit-norm direction d maximizing <grad, d> ------------------------


def _ascent_linf(grad: torch.Tensor, x: torch.Tensor | None = None, sparsity: float = 0.01) -> torch.Tensor:
    return grad.sign()


def _ascent_l2(grad: torch.Tensor, x: torch.Tensor | None = None, sparsity: float = 0.01) -> torch.Tensor:
    return normalize_l2(grad)


def _ascent_l1(grad: torch.Tensor, x: torch.Tensor | None = None,
               sparsity: float | torch.Tensor = 0.01) -> torch.Tensor:
    """Sparse L1 descent (Tramer & Boneh 2019, SLIDE): sign(grad) on the top ``sparsity``
    fraction of coordinates by |grad| (a float, or one fraction per sample), scaled to unit L1
    norm. Given the current point ``x``, coordinates that the [0, 1] box would clip anyway get
    no share of the budget."""
    if x is not None:
        grad = grad * ~box_blocked(grad, x)
    flat = grad.flatten(1)
    d = flat.shape[1]
    if isinstance(sparsity, torch.Tensor):
        k = (sparsity * d).round().long().clamp(1, d)
        threshold = flat.abs().sort(dim=1, descending=True).values.gather(1, (k - 1)[:, None])
    else:
        threshold = flat.abs().topk(max(1, int(round(sparsity * d))), dim=1).values[:, -1:]
    mask = (flat.abs() >= threshold) & (flat != 0)
    direction = flat.sign() * mask
    return (direction / direction.abs().sum(dim=1, keepdim=True).clamp_min(1)).view_as(grad)


# -- random starts in the ball, per sample, from a SampleRNG --------------------------------
# L2 and L1 draw a uniform direction at a radius uniform in [0, eps]: uniform *in volume*
# would put every start on the sphere in high dimension (radius ~ eps u^(1/d)), far from x.


def _start_linf(rng, stream: int, like: torch.Tensor, eps: float) -> torch.Tensor:
    return (rng.uniform(stream, tuple(like.shape[1:]), like.dtype) * 2 - 1) * eps


def _radius(rng, stream: int, like: torch.Tensor, eps: float) -> torch.Tensor:
    return batch_view(rng.uniform(stream + 1, (), like.dtype) * eps, like)


def _start_l2(rng, stream: int, like: torch.Tensor, eps: float) -> torch.Tensor:
    """A Gaussian direction."""
    direction = normalize_l2(rng.normal(stream, tuple(like.shape[1:]), like.dtype))
    return direction * _radius(rng, stream, like, eps)


def _start_l1(rng, stream: int, like: torch.Tensor, eps: float) -> torch.Tensor:
    """Exponential spacings of the simplex with random signs."""
    e = -rng.uniform(stream, (like[0].numel() + 1,), like.dtype).log()
    point = (e[:, :-1] / e.sum(dim=1, keepdim=True)).view_as(like)
    return point * rng.sign(stream + 2, tuple(like.shape[1:]), like.dtype) * _radius(rng, stream, like, eps)


# -- proximal operators, used by the primal-dual proximal attacks (PDPGD) -------------------


def prox_l2(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Block soft-threshold: v * max(0, 1 - mu / ||v||_2)."""
    return v * batch_view((1 - mu / _l2(v).clamp_min(TINY)).clamp_min(0), v)


def prox_l1(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Soft-threshold: sign(v) * max(|v| - mu, 0)."""
    return v.sign() * (v.abs() - batch_view(mu, v)).clamp_min(0)


def prox_linf(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Moreau decomposition: v - mu * Proj_{L1 ball of radius 1}(v / mu)."""
    m = batch_view(mu.clamp_min(TINY), v)
    return v - m * project_l1(v / m, 1.0)


def prox_l0(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Hard-threshold: keep v_i where v_i^2 > 2 mu (prox of mu * ||v||_0)."""
    return v * (v.square() > 2 * batch_view(mu, v))


def prox_group_l0(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Group hard-threshold, one group per pixel across channels (v is N, C, H, W): keep a
    pixel where ||v_pixel||_2^2 > 2 mu (prox of mu * number of changed pixels)."""
    return v * (v.square().sum(dim=1, keepdim=True) > 2 * batch_view(mu, v))


# -- the norms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Norm:
    """One norm's behaviour; see the module docstring. ``dual`` names the dual norm (the
    distance to a linearized boundary f + <w, r> = 0 is |f| / ||w||_dual)."""

    name: str
    measure: Callable[[torch.Tensor], torch.Tensor]
    dual: str | None = None
    project: Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor] | None = None
    steepest_ascent: Callable[..., torch.Tensor] | None = None
    random_start: Callable[..., torch.Tensor] | None = None
    prox: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    project_in_box: Callable[..., torch.Tensor] | None = None
    shrink: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def towards_zero(self, delta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The point a fraction t (per sample, in [0, 1]) of the way from 0 to ``delta`` along a
        path on which this norm shrinks towards 0 and every entry keeps its value or moves
        towards 0 (so it stays in the box): ``shrink`` where the norm has one (L0), else
        t * delta."""
        if self.shrink is not None:
            return self.shrink(delta, t)
        return batch_view(t, delta) * delta

    def project_point(self, x0: torch.Tensor, point: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
        """A point of the eps ball around ``x0`` inside the [0, 1] box, near ``point``: the
        exact projection where the norm has ``project_in_box`` (L1) or where ball and box
        separate per coordinate (Linf), else the ball's projection clipped to the box (L2)."""
        if self.project_in_box is not None:
            return x0 + self.project_in_box(point - x0, x0, eps)
        return clamp_to_box(x0 + self.project(point - x0, eps))

    def diameter(self, like: torch.Tensor) -> float:
        """The largest distance in this norm between two images of the [0, 1] box shaped like one
        sample of ``like``: the norm of an all-ones image (1 in Linf, sqrt(d) in L2, d in L1)."""
        return self.measure(torch.ones_like(like[:1])).item()

    def require(self, *hooks: str, by: str) -> Norm:
        """This norm if it has every hook in ``hooks``, else a ValueError naming ``by`` (the
        attack) and the norms that would do."""
        missing = [h for h in hooks if getattr(self, h) is None]
        if missing:
            usable = [n.name for n in _NORMS.values() if all(getattr(n, h) is not None for h in hooks)]
            raise ValueError(f"{by} needs a norm with {', '.join(hooks)}, which {self.name!r} lacks; "
                             f"use one of {usable}")
        return self


_NORMS = {n.name: n for n in (
    Norm("linf", _linf, dual="l1", project=project_linf, steepest_ascent=_ascent_linf,
         random_start=_start_linf, prox=prox_linf),
    Norm("l2", _l2, dual="l2", project=project_l2, steepest_ascent=_ascent_l2,
         random_start=_start_l2, prox=prox_l2),
    Norm("l1", _l1, dual="linf", project=project_l1, steepest_ascent=_ascent_l1,
         random_start=_start_l1, prox=prox_l1, project_in_box=project_l1_in_box),
    Norm("l0", _l0, project=project_l0, prox=prox_l0, shrink=shrink_l0),
    Norm("group_l0", _group_l0, prox=prox_group_l0),
)}
NORMS = tuple(_NORMS)


def get_norm(name: str) -> Norm:
    """The :class:`Norm` called ``name``; the one place an unknown name is rejected."""
    try:
        return _NORMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown norm {name!r}; use one of {NORMS}") from None


def lp_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``||x_i||`` in the norm called ``norm``; shape (N,)."""
    return get_norm(norm).measure(x)
