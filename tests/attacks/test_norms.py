"""Norm objects (advlit.attacks.norms): measures, projections, steepest ascent, random starts
and proximal operators against closed forms and brute force."""

import pytest
import torch

from advlit.attacks import PGD, norms
from advlit.attacks import geometry as g
from advlit.attacks.norms import get_norm, lp_norm
from advlit.attacks.randomness import SampleRNG


def test_lp_norms_match_torch():
    x = torch.randn(5, 3, 4, 4)
    flat = x.flatten(1)
    assert torch.allclose(lp_norm(x, "linf"), flat.abs().max(1).values)
    assert torch.allclose(lp_norm(x, "l2"), flat.norm(dim=1))
    assert torch.allclose(lp_norm(x, "l1"), flat.abs().sum(1))
    with pytest.raises(ValueError, match="unknown norm"):
        lp_norm(x, "l7")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_is_identity_inside_and_lands_on_sphere_outside(norm):
    torch.manual_seed(0)
    delta = torch.randn(16, 1, 8, 8)
    eps = 0.5
    projected = get_norm(norm).project(delta, eps)
    assert torch.allclose(lp_norm(projected, norm), torch.full((16,), eps), atol=1e-6)
    small = projected * 0.5
    assert torch.equal(get_norm(norm).project(small, eps), small)


def test_l2_projection_is_the_nearest_point():
    """Against brute force: no point of the ball is closer than the projection."""
    torch.manual_seed(0)
    v = torch.randn(1, 6) * 3
    p = norms.project_l2(v, 1.0)
    candidates = g.normalize_l2(torch.randn(20000, 6)) * torch.rand(20000, 1) ** (1 / 6)
    assert (v - p).norm() <= (candidates - v).norm(dim=1).min() + 1e-6


def test_zero_safe_normalization_and_steepest_ascent():
    x = torch.zeros(2, 3)
    x[1] = torch.tensor([3.0, 4.0, 0.0])
    n = g.normalize_l2(x)
    assert torch.isfinite(n).all() and torch.equal(n[0], torch.zeros(3))
    assert torch.allclose(n[1], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.equal(get_norm("linf").steepest_ascent(x), x.sign())


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_random_start_is_inside_ball(norm):
    rng = SampleRNG.from_index(torch.arange(500))
    r = get_norm(norm).random_start(rng, 0, torch.zeros(500, 1, 8, 8), 0.3)
    norms = lp_norm(r, norm)
    assert (norms <= 0.3 + 1e-6).all()
    if norm == "linf":
        assert norms.mean() > 0.25
    else:  # radius uniform in [0, eps], not concentrated on the sphere
        assert 0.12 < norms.mean() < 0.18 and (norms < 0.1).float().mean() > 0.2


def objective(z, v, mu, norm):
    return mu * lp_norm(z, norm) + 0.5 * (z - v).flatten(1).square().sum(1)


@pytest.mark.parametrize("norm,op", [("l2", norms.prox_l2), ("l1", norms.prox_l1),
                                     ("linf", norms.prox_linf)])
def test_convex_prox_minimizes_its_objective(norm, op):
    torch.manual_seed(0)
    v = torch.randn(6, 1, 3, 3)
    mu = torch.tensor([0.01, 0.1, 0.3, 1.0, 3.0, 10.0])
    z = op(v, mu)
    best = objective(z, v, mu, norm)
    for _ in range(300):
        other = z + 0.05 * torch.randn_like(z)
        assert (objective(other, v, mu, norm) >= best - 1e-6).all()


def test_closed_forms():
    v = torch.tensor([[3.0, -0.5, 1.0, 0.0]])
    mu = torch.tensor([0.8])
    assert torch.allclose(norms.prox_l1(v, mu), torch.tensor([[2.2, 0.0, 0.2, 0.0]]))
    assert torch.allclose(norms.prox_l2(v, mu), v * (1 - 0.8 / v.norm()))
    assert torch.equal(norms.prox_l2(v, torch.tensor([10.0])), torch.zeros_like(v))
    # hard threshold at sqrt(2 mu) = 1.265: keeps only 3.0
    assert torch.equal(norms.prox_l0(v, mu), torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    # Linf prox of (3, -0.5, 1, 0) with mu=0.8 clips the largest entry down to 2.2
    assert torch.allclose(norms.prox_linf(v, mu), torch.tensor([[2.2, -0.5, 1.0, 0.0]]))
    # group L0: a pixel is kept or zeroed across all its channels
    pixels = torch.tensor([[[[1.0, 0.1]], [[1.0, 0.1]]]])  # (1, 2 channels, 1, 2)
    kept = norms.prox_group_l0(pixels, torch.tensor([0.5]))
    assert torch.equal(kept[..., 0], pixels[..., 0]) and torch.equal(kept[..., 1], torch.zeros(1, 2, 1))


def test_l1_projection_is_exact():
    torch.manual_seed(0)
    v = torch.randn(8, 20)
    p = norms.project_l1(v, 2.0)
    assert torch.allclose(p.abs().sum(1), torch.full((8,), 2.0), atol=1e-5)
    # KKT: every kept coordinate was shrunk by the same theta, dropped ones were below it
    for row_v, row_p in zip(v, p):
        kept = row_p != 0
        theta = (row_v.abs() - row_p.abs())[kept]
        assert torch.allclose(theta, theta[0].expand_as(theta), atol=1e-5)
        assert (row_v.abs()[~kept] <= theta[0] + 1e-6).all()
    inside = v / v.abs().sum(1, keepdim=True)
    assert torch.equal(norms.project_l1(inside, 2.0), inside)


def test_l1_projection_inside_the_box_is_exact():
    """Against Dykstra's alternating projections onto the L1 ball and the box, which converge
    to the projection onto their intersection; and closer than clipping after projecting."""
    torch.manual_seed(0)
    x0 = torch.rand(6, 12)
    x0[:, :3] = 0.0
    x0[:, 3:5] = 1.0
    v = torch.randn(6, 12)
    ours = norms.project_l1_in_box(v, x0, 1.5)
    d, p, q = v.clone(), torch.zeros_like(v), torch.zeros_like(v)
    for _ in range(3000):
        ball = norms.project_l1(d + p, 1.5)
        p = d + p - ball
        d = (ball + q).clamp(-x0, 1 - x0)
        q = ball + q - d
    assert torch.allclose(ours, d, atol=1e-4)
    assert (ours.abs().sum(1) <= 1.5 + 1e-5).all() and ((x0 + ours) >= 0).all() and ((x0 + ours) <= 1).all()
    clipped = (x0 + norms.project_l1(v, 1.5)).clamp(0, 1) - x0
    assert ((ours - v).norm(dim=1) <= (clipped - v).norm(dim=1) + 1e-6).all()
    assert ((ours - v).norm(dim=1) < (clipped - v).norm(dim=1) - 1e-3).any()


def test_l0_projection_keeps_the_largest_entries_per_sample():
    torch.manual_seed(0)
    delta = torch.randn(5, 1, 6, 6)
    eps = torch.tensor([0.0, 1.0, 3.7, 10.0, 100.0])
    projected = get_norm("l0").project(delta, eps)
    assert torch.equal(norms.lp_norm(projected, "l0"), torch.tensor([0.0, 1.0, 3.0, 10.0, 36.0]))
    for i, k in enumerate((0, 1, 3, 10, 36)):
        kept = delta[i].flatten().abs().topk(k).indices
        expected = torch.zeros(36).index_copy(0, kept, delta[i].flatten()[kept])
        assert torch.equal(projected[i].flatten(), expected)


HOOKED = {hook: [n for n in norms.NORMS if getattr(get_norm(n), hook) is not None]
          for hook in ("project", "steepest_ascent", "random_start", "prox")}


@pytest.mark.parametrize("name", HOOKED["project"])
def test_every_projection_lands_in_the_ball_and_keeps_inside_points(name):
    torch.manual_seed(0)
    norm = get_norm(name)
    delta = torch.randn(8, 1, 6, 6)
    projected = norm.project(delta, 0.5)
    assert (norm.measure(projected) <= 0.5 + 1e-5).all()
    inside = projected * 0.5
    assert torch.allclose(norm.project(inside, 0.5), inside)


@pytest.mark.parametrize("name", HOOKED["steepest_ascent"])
def test_every_steepest_ascent_is_a_unit_ascent_direction(name):
    """Unit norm, and no better than the dual norm of the gradient (exactly it for Linf/L2)."""
    torch.manual_seed(0)
    norm = get_norm(name)
    grad = torch.randn(8, 1, 6, 6)
    d = norm.steepest_ascent(grad)
    assert torch.allclose(norm.measure(d), torch.ones(8), atol=1e-5)
    gain = (grad * d).flatten(1).sum(1)
    dual = get_norm(norm.dual).measure(grad)
    assert (gain > 0).all() and (gain <= dual + 1e-5).all()
    if name in ("linf", "l2"):
        assert torch.allclose(gain, dual, atol=1e-5)


@pytest.mark.parametrize("name", HOOKED["random_start"])
def test_every_random_start_is_inside_the_ball_and_keyed_per_sample(name):
    norm = get_norm(name)
    like = torch.zeros(64, 1, 6, 6)
    start = norm.random_start(SampleRNG.from_index(torch.arange(64)), 0, like, 0.3)
    assert (norm.measure(start) <= 0.3 + 1e-6).all() and (norm.measure(start) > 0).all()
    again = norm.random_start(SampleRNG.from_index(torch.arange(32, 64)), 0, like[32:], 0.3)
    assert torch.equal(again, start[32:])


@pytest.mark.parametrize("name", HOOKED["prox"])
def test_every_prox_never_increases_the_norm_and_is_zero_for_a_huge_threshold(name):
    torch.manual_seed(0)
    norm = get_norm(name)
    v = torch.randn(6, 2, 3, 3)
    z = norm.prox(v, torch.full((6,), 0.1))
    assert (norm.measure(z) <= norm.measure(v) + 1e-6).all()
    assert torch.allclose(norm.prox(v, torch.full((6,), 1e6)), torch.zeros_like(v), atol=1e-6)


def test_unknown_norm_names_are_rejected_in_one_place():
    with pytest.raises(ValueError, match=r"unknown norm 'l3'; use one of \('linf', 'l2', 'l1'"):
        get_norm("l3")
    with pytest.raises(ValueError, match="PGD needs a norm with project, steepest_ascent, random_start, "
                                         "which 'l0' lacks"):
        PGD(norm="l0", eps=1.0)


@pytest.mark.parametrize("tiny", [1.0, 1e-9])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_hyperplane_projection_in_the_box_is_the_smallest_feasible_step(norm, tiny):
    """FAB's projection onto w . d = c inside the box, against a linear program (Linf, L1)
    and the closed form c w / |w|^2 where the box does not bind (L2); also where half of w is
    ``tiny`` (masked gradients), where a bisection over the multiplier lost its precision."""
    from scipy.optimize import linprog

    from advlit.attacks.fab import project_onto_hyperplane

    gen = torch.Generator().manual_seed(0)
    point = torch.rand(4, 12, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    w[:, ::2] *= tiny
    c = torch.tensor([0.3, -0.5, 1.0, -0.05], dtype=torch.float64)
    d = project_onto_hyperplane(point, w, c, norm)
    assert torch.allclose((w * d).sum(1), c, atol=1e-9)
    assert (point + d).min() >= 0 and (point + d).max() <= 1
    for i in range(4):
        if norm == "l2":  # here the unconstrained step stays in the box
            step = c[i] * w[i] / w[i].square().sum()
            assert (point[i] + step).min() >= 0 and (point[i] + step).max() <= 1
            assert torch.allclose(d[i], step, atol=1e-8)
            continue
        # variables (d+, d-) >= 0 (and t for Linf): min sum or t s.t. w (d+ - d-) = c, in the box
        n, lo, hi = 12, -point[i].numpy(), (1 - point[i]).numpy()
        if norm == "l1":
            cost = [1.0] * 2 * n
            a_eq = [list(w[i].numpy()) + list(-w[i].numpy())]
            bounds = [(0, h) for h in hi] + [(0, -low) for low in lo]
            best = linprog(cost, A_eq=a_eq, b_eq=[c[i].item()], bounds=bounds).fun
            assert d[i].abs().sum().item() <= best + 1e-7
        else:
            cost = [0.0] * n + [1.0]
            a_eq = [list(w[i].numpy()) + [0.0]]
            a_ub = [[1.0 if j == k else 0.0 for j in range(n)] + [-1.0] for k in range(n)]
            a_ub += [[-1.0 if j == k else 0.0 for j in range(n)] + [-1.0] for k in range(n)]
            bounds = [(lo[k], hi[k]) for k in range(n)] + [(0, None)]
            best = linprog(cost, A_ub=a_ub, b_ub=[0.0] * 2 * n, A_eq=a_eq, b_eq=[c[i].item()],
                           bounds=bounds).fun
            assert d[i].abs().max().item() <= best + 1e-7
