"""Min-norm attacks: strength, boundary search, restarts, argument checks (the shared contract
is in test_contract.py; proximal operators in test_norms.py)."""

import pytest
import torch

from advlit.attacks import DDN, FABT, FMN, PDGD, PDPGD, CarliniWagnerL2, DeepFool
from advlit.attacks.norms import lp_norm

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
    FMN(norm="linf", steps=100),
    FMN(norm="l2", steps=100),
    FMN(norm="l1", steps=100),
    FMN(norm="l0", steps=100),
    DDN(steps=100),
    *(FABT(norm=n, steps=30, target_classes=3) for n in ("linf", "l2", "l1")),
]


def predictions(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize("attack", CASES, ids=lambda a: f"{type(a).__name__}-{a.norm}")
def test_min_norm_attacks_break_most_points(attack, trained_digits_cnn, digits):
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


def mean_norm(attack, model, x, y):
    x_adv = attack(model, x, y)
    ok = (predictions(model, x) == y) & (predictions(model, x_adv) != y)
    return lp_norm(x_adv - x, attack.norm)[ok].mean().item(), ok.float().mean().item()


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


@pytest.mark.parametrize("attack", [FMN, PDPGD])
def test_l0_refinement_drops_entries_and_stays_adversarial(trained_digits_cnn, digits, attack):
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    raw = attack(norm="l0", steps=30, refine_steps=0)(trained_digits_cnn, x, y)
    refined = attack(norm="l0", steps=30, refine_steps=10)(trained_digits_cnn, x, y)
    with torch.no_grad():
        fooled_raw = trained_digits_cnn(raw).argmax(1) != y
        fooled = trained_digits_cnn(refined).argmax(1) != y
    assert torch.equal(fooled, fooled_raw) and fooled.any()
    changed_raw, changed = (raw != x).flatten(1), (refined != x).flatten(1)
    assert not (changed & ~changed_raw).any()  # only entries of the raw perturbation remain
    assert torch.equal(refined[changed.view_as(x)], raw[changed.view_as(x)])  # unchanged values
    dropped = changed_raw[fooled].sum(1) - changed[fooled].sum(1)
    assert (dropped >= 0).all()
    if attack is PDPGD:  # FMN-L0 already ends at 1-4 of 64 pixels here, PDPGD with spares
        assert dropped.gt(0).any()


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


@pytest.mark.parametrize("make,match", [
    (lambda: DeepFool(norm="l1"), "DeepFool supports norm in"),
    (lambda: PDPGD(norm="l3"), "unknown norm 'l3'"),
    (lambda: PDGD(norm="linf"), "PDGD supports norm in"),
    (lambda: CarliniWagnerL2(steps=0), "steps must be an integer >= 1"),
    (lambda: PDGD(lr_final=0), "lr_final must be in"),
    (lambda: DeepFool(overshoot=-1), "overshoot must be >= 0"),
    (lambda: PDPGD(refine_steps=-1), "refine_steps must be an integer >= 0"),
    (lambda: PDGD(surrogate="square"), "surrogate must be one of"),
    (lambda: PDGD(lr_schedule="cosine"), "lr_schedule must be one of"),
    (lambda: PDPGD(preconditioner="lbfgs"), "preconditioner must be one of"),
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
    one, two = (lp_norm(a - x, "l2") for a in (runs[0], restarted))
    model = trained_digits_cnn
    fooled = (predictions(model, runs[0]) != y) & (predictions(model, restarted) != y)
    assert (two[fooled] <= one[fooled] + 1e-5).all()  # best-so-far over runs never gets worse


def test_pdpgd_default_step_rule_follows_the_norm():
    linf = PDPGD(norm="linf")
    assert linf.step_rule == "adam" and linf.replace(norm="l1").step_rule == "none"
    assert PDPGD(norm="l1", preconditioner="adam").step_rule == "adam"


@pytest.mark.parametrize("attack,grads,forwards", [
    (FMN(norm="l2", steps=7, refine_steps=3), 7, 7 + 3),
    (DDN(steps=7, refine_steps=3), 7, 7 + 3),
    (FABT(steps=4, target_classes=2, refine_steps=3), 4 * 2, 1 + 2 * 4 * 2 + 3),
    (PDGD(steps=5, restarts=2, refine_steps=4), 5 * 2, 1 + 5 * 2 + 4),
    (PDPGD(norm="linf", steps=6, refine_steps=0), 6, 1 + 6),
])
def test_budget_counters_are_exact(attack, grads, forwards, trained_digits_cnn, digits):
    """The engine's counters: a K-step attack takes K input gradients per attacked point (the
    misclassified ones are not attacked) and its forward passes are its steps plus its
    bisection (plus PDGD's check of the clean points)."""
    from advlit.evaluation import AttackSuite

    _, _, x, y = digits
    x, y = x[:40], y[:40]
    result = AttackSuite({"a": attack}, checks=False).run(trained_digits_cnn, x, y)
    attacked = int(result.correct.sum())
    assert result.backward["a"] == grads * attacked
    assert result.forward["a"] == forwards * attacked


def test_fmn_is_as_tight_as_deepfool_on_a_nearly_linear_model(trained_digits_cnn, digits):
    """On the small digits CNN DeepFool's linearization is close to exact (its norms are within
    1% of PDGD's); FMN must break as many points and stay within 2% of it."""
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    for norm in ("l2", "linf"):
        fmn, found = mean_norm(FMN(norm=norm, steps=100), trained_digits_cnn, x, y)
        deepfool, found_deepfool = mean_norm(DeepFool(norm=norm), trained_digits_cnn, x, y)
        assert found >= found_deepfool and fmn <= 1.02 * deepfool
