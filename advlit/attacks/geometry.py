"""Norm geometry shared by all attacks: per-sample norms, projections onto norm balls,
steepest-ascent directions and uniform random starts.

Every function works on a batch: the first dimension indexes samples and the norm is
taken over all remaining dimensions.
"""

from __future__ import annotations

import torch

NORMS = ("linf", "l2", "l1")
TINY = 1e-12


def _per_sample_view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (N,) so it broadcasts against ``like`` (N, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


def lp_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``||x_i||_p`` for p in {linf, l2, l1, l0}, or ``group_l0`` (number of pixels
    changed in any channel of an (N, C, H, W) batch); returns shape (N,)."""
    if norm == "group_l0":
        return (x != 0).any(dim=1).flatten(1).sum(dim=1).to(x.dtype)
    flat = x.flatten(1)
    if norm == "l0":
        return (flat != 0).sum(dim=1).to(x.dtype)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"unknown norm {norm!r}; use one of 'linf', 'l2', 'l1', 'l0', 'group_l0'")


def normalize_l2(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||_2`` per sample; samples with a zero vector stay zero (no NaN)."""
    n = x.flatten(1).norm(p=2, dim=1).clamp_min(TINY)
    return x / _per_sample_view(n, x)


def project_linf(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection onto the Linf ball of radius eps: coordinate-wise clip."""
    return delta.clamp(-eps, eps)


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection onto the L2 ball of radius eps: shrink only if outside."""
    n = delta.flatten(1).norm(p=2, dim=1)
    scale = (eps / n.clamp_min(TINY)).clamp(max=1.0)
    return delta * _per_sample_view(scale, delta)


def project_l1(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the L1 ball of radius eps, O(n log n) by sorting
    (Duchi et al. 2008): soft-threshold |v| at the theta that makes ||.||_1 = eps.
    ``eps`` may be a per-sample tensor (N,)."""
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


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project a perturbation onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return project_linf(delta, eps)
    if norm == "l2":
        return project_l2(delta, eps)
    if norm == "l1":
        return project_l1(delta, eps)
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def sparse_l1_direction(grad: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Steepest ascent for L1 spread over the top ``sparsity`` fraction of coordinates by
    |grad| (Tramer & Boneh 2019, SLIDE): sign(grad) there, scaled to unit L1 norm."""
    flat = grad.flatten(1)
    k = max(1, int(round(sparsity * flat.shape[1])))
    threshold = flat.abs().topk(k, dim=1).values[:, -1:]
    mask = (flat.abs() >= threshold) & (flat != 0)
    direction = flat.sign() * mask
    return (direction / direction.abs().sum(dim=1, keepdim=True).clamp_min(1)).view_as(grad)


def steepest_ascent(grad: torch.Tensor, norm: str, l1_sparsity: float = 0.01) -> torch.Tensor:
    """Unit-norm direction maximizing <grad, d>: sign(grad) for Linf, grad/||grad|| for L2,
    the sparse top-k sign direction for L1."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return normalize_l2(grad)
    if norm == "l1":
        return sparse_l1_direction(grad, l1_sparsity)
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def random_in_ball(rng, stream: int, like: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """A random start in the ``norm`` ball of radius ``eps``, per sample, from ``rng`` (a
    :class:`~advlit.attacks.randomness.SampleRNG`). Linf: uniform in the ball. L2 and L1: a
    uniform direction (Gaussian for L2; exponential spacings of the simplex with random signs
    for L1) at a radius uniform in [0, eps]. Uniform *in volume* would put every start on the
    sphere in high dimension (radius ~ eps * u^(1/d)), far from x: a weaker attack."""
    shape = tuple(like.shape[1:])
    if norm == "linf":
        return (rng.uniform(stream, shape, like.dtype) * 2 - 1) * eps
    radius = _per_sample_view(rng.uniform(stream + 1, (), like.dtype) * eps, like)
    if norm == "l2":
        return normalize_l2(rng.normal(stream, shape, like.dtype)) * radius
    if norm == "l1":
        e = -rng.uniform(stream, (like[0].numel() + 1,), like.dtype).log()
        point = (e[:, :-1] / e.sum(dim=1, keepdim=True)).view_as(like)
        return point * rng.sign(stream + 2, shape, like.dtype) * radius
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def clamp_to_box(x: torch.Tensor) -> torch.Tensor:
    """Clip images to the valid pixel domain [0, 1]."""
    return x.clamp(0.0, 1.0)
