"""Min-norm attacks: invariants, strength, proximal operators against their closed forms."""

import pytest
import torch

from advlit.attacks import PDGD, PDPGD, CarliniWagnerL2, DeepFool
from advlit.attacks import geometry as g
from advlit.attacks import proximal as prox

CASES = [
    DeepFool(norm="l2", steps=30),
    DeepFool(norm="linf", steps=30, step_clip=0.5),
    CarliniWagnerL2(steps=50, binary_search_steps=4, initial_const=1.0, learning_rate=0.1),
    PDGD(steps=100),
    PDPGD(norm="l2", steps=100),
    PDPGD(norm="linf", steps=100),
    PDPGD(norm="l1", steps=100),
    PDPGD(norm="l0", steps=100),
    PDPGD(norm="group_l0", steps=100),
]


def predictions(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize("attack", CASES, ids=lambda a: f"{type(a).__name__}-{a.norm}")
def test_min_norm_invariants_and_success(attack, trained_digits_cnn, trained_bn_net, digits):
    _, _, x, y = digits
    x, y = x[:96], y[:96]
    model = trained_digits_cnn
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    fooled = predictions(model, x_adv) != y
    unchanged = (x_adv == x).flatten(1).all(1)
    assert (fooled | unchanged).all(), "a returned point is neither adversarial nor x"
    correct = predictions(model, x) == y
    assert fooled[correct].float().mean() >= 0.9
    # the model is untouched, also a BatchNorm/dropout model in train mode
    trained_bn_net.train()
    before = {k: v.clone() for k, v in trained_bn_net.state_dict().items()}
    attack(trained_bn_net, x[:16], y[:16])
    assert trained_bn_net.training
    assert all(torch.equal(v, before[k]) for k, v in trained_bn_net.state_dict().items())
    trained_bn_net.eval()


def mean_norm(attack, model, x, y):
    x_adv = attack(model, x, y)
    ok = (predictions(model, x) == y) & (predictions(model, x_adv) != y)
    return g.lp_norm(x_adv - x, attack.norm)[ok].mean().item(), ok.float().mean().item()


def test_primal_dual_finds_smaller_perturbations_than_deepfool(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    model = trained_digits_cnn
    df_l2, _ = mean_norm(DeepFool(norm="l2"), model, x, y)
    df_linf, _ = mean_norm(DeepFool(norm="linf"), model, x, y)
    pdgd, _ = mean_norm(PDGD(steps=200), model, x, y)
    pdpgd_l2, _ = mean_norm(PDPGD(norm="l2", steps=200), model, x, y)
    pdpgd_linf, _ = mean_norm(PDPGD(norm="linf", steps=200), model, x, y)
    assert pdgd <= df_l2 and pdpgd_l2 <= df_l2 * 1.01
    assert pdpgd_linf <= df_linf * 1.03
    # L1 and L0 versions find sparse perturbations: far fewer pixels than DeepFool-L2 changes
    l0, _ = mean_norm(PDPGD(norm="l0", steps=200), model, x, y)
    assert l0 < 8  # of 64 pixels


def test_boundary_search_only_shrinks_adversarial_perturbations(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    torch.manual_seed(0)
    raw = PDPGD(norm="l2", steps=30, refine_steps=0)(trained_digits_cnn, x, y)
    torch.manual_seed(0)
    refined = PDPGD(norm="l2", steps=30, refine_steps=10)(trained_digits_cnn, x, y)
    with torch.no_grad():
        fooled_raw = trained_digits_cnn(raw).argmax(1) != y
        fooled = trained_digits_cnn(refined).argmax(1) != y
    assert torch.equal(fooled, fooled_raw)
    shrink = (refined - x).flatten(1).norm(dim=1) / (raw - x).flatten(1).norm(dim=1).clamp_min(1e-12)
    assert (shrink[fooled] <= 1 + 1e-6).all() and shrink[fooled].min() < 1


def test_cw_l2_norm_near_deepfool(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    df, _ = mean_norm(DeepFool(norm="l2"), trained_digits_cnn, x, y)
    cw, found = mean_norm(CarliniWagnerL2(steps=100, binary_search_steps=5, initial_const=1.0),
                          trained_digits_cnn, x, y)
    assert found > 0.85 and cw < 2 * df


def test_targeted_primal_dual_reaches_target(trained_digits_cnn, digits):
    _, _, x, y = digits
    target = (y[:64] + 1) % 10
    x_adv = PDGD(steps=150, targeted=True)(trained_digits_cnn, x[:64], target)
    assert (predictions(trained_digits_cnn, x_adv) == target).float().mean() >= 0.9


def objective(z, v, mu, norm):
    return mu * g.lp_norm(z, norm) + 0.5 * (z - v).flatten(1).square().sum(1)


@pytest.mark.parametrize("norm,op", [("l2", prox.prox_l2), ("l1", prox.prox_l1),
                                     ("linf", prox.prox_linf)])
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
    assert torch.allclose(prox.prox_l1(v, mu), torch.tensor([[2.2, 0.0, 0.2, 0.0]]))
    assert torch.allclose(prox.prox_l2(v, mu), v * (1 - 0.8 / v.norm()))
    assert torch.equal(prox.prox_l2(v, torch.tensor([10.0])), torch.zeros_like(v))
    # hard threshold at sqrt(2 mu) = 1.265: keeps only 3.0
    assert torch.equal(prox.prox_l0(v, mu), torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    # Linf prox of (3, -0.5, 1, 0) with mu=0.8 clips the largest entry down to 2.2
    assert torch.allclose(prox.prox_linf(v, mu), torch.tensor([[2.2, -0.5, 1.0, 0.0]]))
    # group L0: a pixel is kept or zeroed across all its channels
    pixels = torch.tensor([[[[1.0, 0.1]], [[1.0, 0.1]]]])  # (1, 2 channels, 1, 2)
    kept = prox.prox_group_l0(pixels, torch.tensor([0.5]))
    assert torch.equal(kept[..., 0], pixels[..., 0]) and torch.equal(kept[..., 1], torch.zeros(1, 2, 1))


def test_l1_projection_is_exact():
    torch.manual_seed(0)
    v = torch.randn(8, 20)
    p = g.project_l1(v, 2.0)
    assert torch.allclose(p.abs().sum(1), torch.full((8,), 2.0), atol=1e-5)
    # KKT: every kept coordinate was shrunk by the same theta, dropped ones were below it
    for row_v, row_p in zip(v, p):
        kept = row_p != 0
        theta = (row_v.abs() - row_p.abs())[kept]
        assert torch.allclose(theta, theta[0].expand_as(theta), atol=1e-5)
        assert (row_v.abs()[~kept] <= theta[0] + 1e-6).all()
    inside = v / v.abs().sum(1, keepdim=True)
    assert torch.equal(g.project_l1(inside, 2.0), inside)


@pytest.mark.parametrize("make,match", [
    (lambda: DeepFool(norm="l1"), "DeepFool supports norm in"),
    (lambda: PDPGD(norm="l3"), "PDPGD supports norm in"),
    (lambda: PDGD(norm="linf"), "PDGD supports norm in"),
    (lambda: CarliniWagnerL2(steps=0), "steps must be an integer >= 1"),
    (lambda: PDGD(lr_final=0), "lr_final must be in"),
    (lambda: DeepFool(overshoot=-1), "overshoot must be >= 0"),
    (lambda: PDPGD(refine_steps=-1), "refine_steps must be an integer >= 0"),
    (lambda: PDGD(surrogate="square"), "surrogate must be one of"),
    (lambda: PDGD(lr_schedule="cosine"), "lr_schedule must be 'linear' or 'exponential'"),
    (lambda: PDPGD(preconditioner="lbfgs"), "preconditioner must be 'adam' or 'none'"),
])
def test_bad_min_norm_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_primal_dual_first_run_starts_at_x_and_restarts_add_noise(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        runs.append(PDGD(steps=20, restarts=1, random_init=0.5, refine_steps=0)(trained_digits_cnn, x, y))
    assert torch.equal(runs[0], runs[1])  # no randomness in the first run
    torch.manual_seed(1)
    restarted = PDGD(steps=20, restarts=2, random_init=0.5, refine_steps=0)(trained_digits_cnn, x, y)
    assert not torch.equal(restarted, runs[0])
    one, two = (g.lp_norm(a - x, "l2") for a in (runs[0], restarted))
    model = trained_digits_cnn
    fooled = (predictions(model, runs[0]) != y) & (predictions(model, restarted) != y)
    assert (two[fooled] <= one[fooled] + 1e-5).all()  # best-so-far over runs never gets worse


def test_pdpgd_default_step_rule_follows_the_norm():
    linf = PDPGD(norm="linf")
    assert linf.step_rule == "adam" and linf.replace(norm="l1").step_rule == "none"
    assert PDPGD(norm="l1", preconditioner="adam").step_rule == "adam"
