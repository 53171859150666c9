"""Norm geometry shared by all attacks: per-sample norms, projections onto norm balls,
steepest-ascent directions and uniform random starts.

Every function works on a batch: the first dimension indexes samples and the norm is
taken over all remaining dimensions.
"""

from __future__ import annotations

import torch

NORMS = ("linf", "l2")
TINY = 1e-12


def _per_sample_view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (N,) so it broadcasts against ``like`` (N, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


def lp_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``||x_i||_p`` for p in {linf, l2, l1}; returns shape (N,)."""
    flat = x.flatten(1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"unknown norm {norm!r}; use one of 'linf', 'l2', 'l1'")


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


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project a perturbation onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return project_linf(delta, eps)
    if norm == "l2":
        return project_l2(delta, eps)
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit-norm direction maximizing <grad, d>: sign(grad) for Linf, grad/||grad|| for L2."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return normalize_l2(grad)
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def random_in_ball(like: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """A point drawn uniformly from the ``norm`` ball of radius ``eps`` (per sample)."""
    if norm == "linf":
        return torch.empty_like(like).uniform_(-eps, eps)
    if norm == "l2":
        direction = normalize_l2(torch.randn_like(like))
        d = like[0].numel()
        radius = torch.rand(like.shape[0], device=like.device, dtype=like.dtype) ** (1.0 / d)
        return direction * _per_sample_view(radius * eps, like)
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def clamp_to_box(x: torch.Tensor) -> torch.Tensor:
    """Clip images to the valid pixel domain [0, 1]."""
    return x.clamp(0.0, 1.0)
