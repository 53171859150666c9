import pytest
import torch

from advlit.attacks import geometry as g
from advlit.attacks.randomness import SampleRNG


def test_lp_norms_match_torch():
    x = torch.randn(5, 3, 4, 4)
    flat = x.flatten(1)
    assert torch.allclose(g.lp_norm(x, "linf"), flat.abs().max(1).values)
    assert torch.allclose(g.lp_norm(x, "l2"), flat.norm(dim=1))
    assert torch.allclose(g.lp_norm(x, "l1"), flat.abs().sum(1))
    with pytest.raises(ValueError, match="unknown norm"):
        g.lp_norm(x, "l7")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_is_identity_inside_and_lands_on_sphere_outside(norm):
    torch.manual_seed(0)
    delta = torch.randn(16, 1, 8, 8)
    eps = 0.5
    projected = g.project(delta, norm, eps)
    assert torch.allclose(g.lp_norm(projected, norm), torch.full((16,), eps), atol=1e-6)
    small = projected * 0.5
    assert torch.equal(g.project(small, norm, eps), small)


def test_l2_projection_is_the_nearest_point():
    """Against brute force: no point of the ball is closer than the projection."""
    torch.manual_seed(0)
    v = torch.randn(1, 6) * 3
    p = g.project_l2(v, 1.0)
    candidates = g.normalize_l2(torch.randn(20000, 6)) * torch.rand(20000, 1) ** (1 / 6)
    assert (v - p).norm() <= (candidates - v).norm(dim=1).min() + 1e-6


def test_zero_safe_normalization_and_steepest_ascent():
    x = torch.zeros(2, 3)
    x[1] = torch.tensor([3.0, 4.0, 0.0])
    n = g.normalize_l2(x)
    assert torch.isfinite(n).all() and torch.equal(n[0], torch.zeros(3))
    assert torch.allclose(n[1], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.equal(g.steepest_ascent(x, "linf"), x.sign())


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_random_start_is_inside_ball(norm):
    rng = SampleRNG.from_index(torch.arange(500))
    r = g.random_in_ball(rng, 0, torch.zeros(500, 1, 8, 8), norm, 0.3)
    norms = g.lp_norm(r, norm)
    assert (norms <= 0.3 + 1e-6).all()
    if norm == "linf":
        assert norms.mean() > 0.25
    else:  # radius uniform in [0, eps], not concentrated on the sphere
        assert 0.12 < norms.mean() < 0.18 and (norms < 0.1).float().mean() > 0.2
