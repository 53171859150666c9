"""Fixed-budget attacks: strength, restarts, targeted and differentiable modes, argument checks
(the shared contract is in test_contract.py)."""

import pytest
import torch

from advlit.attacks import FGSM, PGD
from advlit.attacks.norms import lp_norm
from tests.conftest import accuracy


def test_pgd_stronger_than_fgsm_and_monotone_in_eps(trained_digits_cnn, digits):
    model = trained_digits_cnn
    _, _, x, y = digits
    clean = accuracy(model, x, y)
    assert clean > 0.9
    torch.manual_seed(0)
    fgsm = accuracy(model, FGSM(eps=0.1)(model, x, y), y)
    pgd = accuracy(model, PGD(eps=0.1, steps=20)(model, x, y), y)
    assert pgd <= fgsm < clean
    curve = [accuracy(model, PGD(eps=e, steps=20, random_start=False)(model, x, y), y)
             for e in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert curve[0] == pytest.approx(clean)
    assert all(b <= a + 1e-9 for a, b in zip(curve, curve[1:])), curve
    assert curve[-1] <= 0.02


@pytest.mark.parametrize("norm,eps", [("linf", 1.0), ("l2", 8.0)])
def test_huge_budget_reaches_zero_accuracy(norm, eps, trained_digits_cnn, digits):
    _, _, x, y = digits
    x_adv = PGD(norm=norm, eps=eps, steps=30)(trained_digits_cnn, x, y)
    assert accuracy(trained_digits_cnn, x_adv, y) <= 0.01


def test_targeted_attack_reaches_target(trained_digits_cnn, digits):
    _, _, x, y = digits
    target = (y + 3) % 10
    x_adv = PGD(norm="linf", eps=0.4, steps=40, targeted=True)(trained_digits_cnn, x, target)
    assert accuracy(trained_digits_cnn, x_adv, target) >= 0.95


def test_restarts_keep_per_sample_worst_case(trained_digits_cnn, digits):
    """With the same seed the first restart equals the single run, so the per-sample worst
    case over restarts can only lower the robust accuracy and raise the loss."""
    model = trained_digits_cnn
    _, _, x, y = digits
    torch.manual_seed(1)
    one = PGD(eps=0.06, steps=3, loss="margin")(model, x, y)
    torch.manual_seed(1)
    many = PGD(eps=0.06, steps=3, restarts=5, loss="margin")(model, x, y)
    with torch.no_grad():
        from advlit.attacks.losses import margin
        m_one, m_many = margin(model(one), y), margin(model(many), y)
    assert accuracy(model, many, y) < accuracy(model, one, y)
    assert (m_many <= m_one + 1e-5).all()


def test_differentiable_attack_backpropagates_to_parameters(trained_digits_cnn, digits):
    model = trained_digits_cnn
    _, _, x, y = digits
    before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    x_adv = PGD(norm="l2", eps=0.5, steps=2, random_start=False, differentiable=True)(model, x[:8], y[:8])
    assert x_adv.requires_grad
    grads = torch.autograd.grad(model(x_adv).sum(), list(model.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    for p, g in zip(model.parameters(), before):  # autograd.grad never accumulates .grad
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


@pytest.mark.parametrize("kwargs,match", [
    (dict(norm="l3", eps=0.1), "unknown norm 'l3'"),
    (dict(eps=-0.1), "eps must be >= 0"),
    (dict(eps=0.1, steps=0), "steps must be an integer >= 1"),
    (dict(eps=0.1, restarts=0), "restarts must be"),
    (dict(eps=0.1, loss="hinge"), "loss must be one of"),
    (dict(eps=0.1, step_size=0.0), "step_size must be > 0"),
    (dict(eps=0.1, model_mode="test"), "model_mode must be"),
])
def test_bad_hyper_parameters_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD(**kwargs)


def test_replace_validates_and_copies():
    attack = PGD(eps=0.1, steps=5)
    other = attack.replace(eps=0.3)
    assert (attack.eps, other.eps, other.steps) == (0.1, 0.3, 5)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attack.replace(eps=-1.0)
    with pytest.raises(ValueError, match="no hyper-parameter 'epsilon'"):
        attack.replace(epsilon=0.1)


def test_l1_pgd_stays_in_ball_and_is_sparse(trained_digits_cnn, digits):
    _, _, x, y = digits
    attack = PGD(norm="l1", eps=2.0, steps=20)
    x_adv = attack(trained_digits_cnn, x, y)
    assert (lp_norm(x_adv - x, "l1") <= 2.0 + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(trained_digits_cnn, x_adv, y) < accuracy(trained_digits_cnn, x, y) - 0.3
    assert lp_norm(x_adv - x, "l0").mean() < 0.5 * x[0].numel()


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), r"float in \[0, 1\], got dtype torch.uint8; convert uint8"),
    (torch.full((2, 1, 8, 8), 255.0), r"must lie in \[0, 1\], got values in \[255, 255\]; divide 0-255"),
    (torch.full((2, 1, 8, 8), float("nan")), "NaN pixels"),
])
def test_attacks_reject_inputs_that_are_not_float_images_in_the_unit_box(trained_digits_cnn, bad, message):
    with pytest.raises(ValueError, match=message):
        PGD(eps=0.1, steps=1)(trained_digits_cnn, bad, torch.zeros(2, dtype=torch.long))


def test_focused_restarts_retry_only_the_points_that_came_close(trained_digits_cnn, digits):
    """retry_above=+inf is one run, -inf every restart on every point; in between, retries
    only cost on points whose best targeted DLR reached the threshold."""
    import math

    from advlit.attacks import APGDT
    from advlit.evaluation import AttackSuite

    _, _, x, y = digits
    x, y = x[:64], y[:64]
    index = torch.arange(64)

    def run(**options):
        attack = APGDT(eps=0.1, steps=10, target_classes=2, **options)
        return AttackSuite({"t": attack}, checks=False).run(trained_digits_cnn, x, y, index=index)

    once, never = run(restarts=1), run(restarts=3, retry_above=math.inf)
    assert torch.equal(once.broken["t"][0.1], never.broken["t"][0.1]) and once.backward == never.backward
    always, every = run(restarts=3), run(restarts=3, retry_above=-math.inf)
    assert torch.equal(always.broken["t"][0.1], every.broken["t"][0.1])
    focused = run(restarts=3, retry_above=-0.1)
    assert never.backward["t"] < focused.backward["t"] < always.backward["t"]
    assert (focused.broken["t"][0.1] >= never.broken["t"][0.1]).all()


def test_square_promise_ends_unpromising_points_early_and_keeps_the_rest(trained_digits_cnn, digits):
    """With ``promise`` a point whose margin has not fallen enough by a checkpoint stops there:
    fewer queries, and every point the unlimited run broke by that checkpoint is still broken."""
    from advlit.attacks import Square
    from advlit.evaluation import AttackSuite

    _, _, x, y = digits
    x, y = x[:64], y[:64]
    full, gated = (AttackSuite({"sq": Square(eps=0.08, queries=200, promise=promise)}, checks=False).run(
        trained_digits_cnn, x, y) for promise in (None, [(0.25, 0.5)]))
    assert gated.forward["sq"] < full.forward["sq"]
    early = AttackSuite({"sq": Square(eps=0.08, queries=50)}, checks=False).run(trained_digits_cnn, x, y)
    assert (gated.broken["sq"][0.08] >= early.broken["sq"][0.08]).all()
    assert (gated.broken["sq"][0.08] <= full.broken["sq"][0.08]).all()
    with pytest.raises(ValueError, match="promise pairs"):
        Square(eps=0.1, promise=[(1.5, 0.5)])
