"""Proximal operators prox_{mu ||.||}(v) = argmin_z mu ||z|| + 1/2 ||z - v||^2, per sample,
used by the primal-dual proximal attacks (PDPGD). ``mu`` is a per-sample tensor (N,)."""

from __future__ import annotations

import torch

from advlit.attacks.geometry import TINY, _per_sample_view, project_l1


def prox_l2(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Block soft-threshold: v * max(0, 1 - mu / ||v||_2)."""
    norm = v.flatten(1).norm(dim=1).clamp_min(TINY)
    return v * _per_sample_view((1 - mu / norm).clamp_min(0), v)


def prox_l1(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Soft-threshold: sign(v) * max(|v| - mu, 0)."""
    return v.sign() * (v.abs() - _per_sample_view(mu, v)).clamp_min(0)


def prox_linf(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Moreau decomposition: v - mu * Proj_{L1 ball of radius 1}(v / mu)."""
    m = _per_sample_view(mu.clamp_min(TINY), v)
    return v - m * project_l1(v / m, 1.0)


def prox_l0(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Hard-threshold: keep v_i where v_i^2 > 2 mu (prox of mu * ||v||_0)."""
    return v * (v.square() > 2 * _per_sample_view(mu, v))


def prox_group_l0(v: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Group hard-threshold, one group per pixel across channels (v is N, C, H, W):
    keep a pixel where ||v_pixel||_2^2 > 2 mu (prox of mu * number of changed pixels)."""
    energy = v.square().sum(dim=1, keepdim=True)
    return v * (energy > 2 * _per_sample_view(mu, v))


PROXIMAL = {"l2": prox_l2, "l1": prox_l1, "linf": prox_linf, "l0": prox_l0, "group_l0": prox_group_l0}
