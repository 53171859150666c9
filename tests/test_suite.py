"""The evaluation engine: exact at any batch size, keyed randomness, the global RNG left
alone, honest scoring of non-finite logits, the flags against masked gradients, and the
strength of APGD and Square."""

import pytest
import torch
from torch import nn

from advlit.attacks import APGD, APGDT, FGSM, PDGD, PDPGD, PGD, CarliniWagnerL2, DeepFool, Square, WithinEps
from advlit.evaluation import AttackSuite, SuiteResult, standard_suite
from advlit.evaluation.keys import Key
from advlit.models import ScrambledGradient
from tests.conftest import accuracy

EVERY_ATTACK = {
    "pgd": PGD(eps=0.1, steps=5),
    "pgd_l2": PGD(norm="l2", eps=1.0, steps=5, restarts=2),
    "fgsm_rs": FGSM(eps=0.1, random_start=True),
    "apgd": APGD(eps=0.1, steps=8),
    "apgd_t": APGDT(eps=0.1, steps=5, target_classes=2),
    "square": Square(eps=0.1, queries=40),
    "square_l2": Square(norm="l2", eps=1.0, queries=40),
    "square_l1": Square(norm="l1", eps=3.0, queries=40),
    "square_promise": Square(eps=0.05, queries=40, promise=[(0.25, 0.9), (0.5, 0.5)]),
    "pdpgd": PDPGD(norm="linf", steps=20, restarts=2),
    "cw": CarliniWagnerL2(steps=20, binary_search_steps=2),
    "deepfool": DeepFool(norm="l2", steps=10),
}


def test_results_do_not_depend_on_batching(trained_digits_cnn, digits):
    """Every attack, random starts included: the same per-sample results for one batch of 48,
    for batches of 20 in a shuffled order (each sample keeps its dataset index) and for the
    suite's own batches of 7 (``batch_size``)."""
    _, _, x, y = digits
    x, y = x[:48], y[:48]
    grid = {"linf": [0.1], "l2": [1.0], "l1": [3.0]}
    suite = AttackSuite(EVERY_ATTACK, eps_grid=grid, cascade=False, checks=False)
    whole = suite.run(trained_digits_cnn, x, y)
    order = torch.randperm(48, generator=torch.Generator().manual_seed(3))
    parts = [suite.run(trained_digits_cnn, x[idx], y[idx], index=idx) for idx in order.split(20)]
    inverse = order.argsort()
    chunked = AttackSuite(EVERY_ATTACK, eps_grid=grid, cascade=False, checks=False, batch_size=7).run(
        trained_digits_cnn, x, y)
    for merged, back in ((SuiteResult.cat(parts), inverse), (chunked, slice(None))):
        for name in EVERY_ATTACK:
            if name in whole.radius:
                assert torch.allclose(merged.radius[name][back], whole.radius[name], rtol=1e-4), name
            else:
                for eps, broken in whole.broken[name].items():
                    assert torch.equal(merged.broken[name][eps][back], broken), name
    assert (whole.broken["pgd"][0.1]).any() and not whole.broken["pgd"][0.1].all()


def test_attacks_and_suite_leave_the_global_rng_alone(trained_digits_cnn, digits):
    _, _, x, y = digits
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for attack in (PGD(eps=0.1, steps=3), APGD(eps=0.1, steps=3), Square(eps=0.1, queries=5)):
        attack(trained_digits_cnn, x[:16], y[:16], index=torch.arange(16))
        assert torch.equal(torch.get_rng_state(), state), attack
    standard_suite(eps=0.1, version="fast").run(trained_digits_cnn, x[:16], y[:16])
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_changes_random_starts_and_index_keys_them(trained_digits_cnn, digits):
    _, _, x, y = digits
    attack = PGD(eps=0.1, steps=1)
    a = attack(trained_digits_cnn, x[:8], y[:8], index=torch.arange(8))
    b = attack(trained_digits_cnn, x[:8], y[:8], index=torch.arange(8), seed=1)
    c = attack(trained_digits_cnn, x[:8], y[:8], index=torch.arange(8) + 100)
    assert not torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, attack(trained_digits_cnn, x[:8], y[:8], index=torch.arange(8)))


class NaNOnClassZero(nn.Module):
    """Returns NaN logits for every input its wrapped model calls class 0."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        zero = logits.argmax(dim=1, keepdim=True) == 0
        return torch.where(zero, torch.full_like(logits, float("nan")), logits)


def test_nonfinite_logits_are_never_robust_and_are_flagged(trained_digits_cnn, digits):
    _, _, x, y = digits
    model = NaNOnClassZero(trained_digits_cnn)
    result = AttackSuite({"pgd": PGD(eps=0.01, steps=2)}, checks=False).run(model, x, y)
    zeros = y == 0
    assert zeros.any() and not result.correct[zeros].any() and not result.robust[zeros].any()
    assert "nonfinite_logits" in result.flags


def test_scrambled_gradients_are_flagged_and_broken_by_square(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:96], y[:96]
    model = ScrambledGradient(trained_digits_cnn, x.shape[1:])
    gradient_only = AttackSuite({"apgd": APGD(eps=0.15, steps=20)}).run(model, x, y)
    full = AttackSuite({"apgd": APGD(eps=0.15, steps=20), "square": Square(eps=0.15, queries=300)})
    full = full.run(model, x, y)
    assert full.robust_accuracy < gradient_only.robust_accuracy - 0.2
    assert "black_box_beats_white_box" in full.flags
    plain = AttackSuite({"apgd": APGD(eps=0.15, steps=20)}).run(trained_digits_cnn, x, y)
    assert not set(plain.flags) & {"black_box_beats_white_box", "unconstrained_attack_failure"}, plain.flags


class Stubborn(nn.Module):
    """Predicts the class of the clean input whatever it is given (a lookup, no gradient)."""

    def __init__(self, model, x):
        super().__init__()
        self.model, self.x = model, x

    def forward(self, x):
        nearest = torch.cdist(x.flatten(1), self.x.flatten(1)).argmin(dim=1)
        return self.model(self.x[nearest]) + 0 * x.flatten(1)[:, :1]


def test_unconstrained_failure_is_flagged(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    result = AttackSuite({"pgd": PGD(eps=0.1, steps=5)}).run(Stubborn(trained_digits_cnn, x), x, y)
    assert "unconstrained_attack_failure" in result.flags


def test_large_eps_stages_do_not_count_as_silent_success(trained_digits_cnn, digits):
    """APGD's 3 eps and 2 eps stages pass adversarial points outside the eps ball: not a lost
    success, so no silent-success flag; the clean path check still runs on in-ball attacks."""
    _, _, x, y = digits
    x, y = x[:48], y[:48]
    staged = APGD(norm="l1", eps=1.0, steps=10, large_eps=True)
    assert not staged.stays_in_ball and APGD(norm="l1", eps=1.0).stays_in_ball
    result = AttackSuite({"apgd": staged}).run(trained_digits_cnn, x, y)
    assert "silent_success" not in result.flags
    wider = AttackSuite({"apgd": APGD(norm="l1", eps=3.0, steps=10)}).run(trained_digits_cnn, x, y)
    assert wider.robust_accuracy < result.robust_accuracy  # the 3 eps stage crosses where eps does not


def test_apgd_is_at_least_as_strong_as_pgd_of_the_same_budget(trained_digits_cnn, digits):
    _, _, x, y = digits
    model = trained_digits_cnn
    index = torch.arange(len(y))
    for norm, eps in (("linf", 0.08), ("l2", 0.6), ("l1", 3.0)):
        pgd = accuracy(model, PGD(norm=norm, eps=eps, steps=20)(model, x, y, index=index), y)
        apgd = accuracy(model, APGD(norm=norm, eps=eps, steps=20)(model, x, y, index=index), y)
        assert apgd <= pgd + 1e-9, (norm, apgd, pgd)
    targeted = accuracy(model, APGDT(eps=0.08, steps=20, target_classes=3)(model, x, y, index=index), y)
    assert targeted <= accuracy(model, x, y) - 0.3


def test_square_alone_breaks_most_points_of_an_erm_model(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    for norm, eps in (("linf", 0.2), ("l2", 2.0), ("l1", 8.0)):
        x_adv = Square(norm=norm, eps=eps, queries=300)(trained_digits_cnn, x, y, index=torch.arange(100))
        assert accuracy(trained_digits_cnn, x_adv, y) < 0.3, norm


def test_standard_suite_on_a_plain_module_and_its_summary(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    result = standard_suite(norm="linf", eps=0.1, version="fast").run(trained_digits_cnn, x, y)
    assert result.robust.dtype == torch.bool and result.robust.shape == (64,)
    assert 0 <= result.robust_accuracy < result.clean_accuracy
    metrics = result.metrics()
    assert metrics[Key("robust_acc", None, "linf", 0.1)] == pytest.approx(result.robust_accuracy)
    assert 0 < metrics[Key("grads_per_image", "apgd_ce", "linf")] <= 25
    table = result.table()
    assert "apgd_t" in table and all(len(line) <= 80 for line in table.splitlines())


@pytest.mark.parametrize("norm, eps, stages", [("l2", 0.4, ["pdgd", "fab_t"]), ("l1", 1.0, ["fab_t"])])
def test_standard_suite_has_min_norm_stages_on_the_points_standing(trained_digits_cnn, digits, norm, eps,
                                                                  stages):
    _, _, x, y = digits
    suite = standard_suite(norm=norm, eps=eps)
    assert list(suite.attacks) == ["apgd_ce", "apgd_t", *stages, "square"]
    assert all(suite.grid(name) == [eps] for name in stages)
    x, y = x[:24], y[:24]
    suite.attacks["square"] = suite.attacks["square"].replace(queries=50)
    for name in stages:
        suite.attacks[name] = suite.attacks[name].replace(attack=suite.attacks[name].attack.replace(steps=20))
    result = suite.run(trained_digits_cnn, x, y)
    standing = int(result.robust_to("apgd_t", eps).sum())
    stage = suite.attacks[stages[0]].attack
    steps = stage.steps * getattr(stage, "target_classes", 1)  # FAB-T: steps per target class
    assert 0 < result.backward[stages[0]] <= steps * standing < steps * int(result.correct.sum())
    assert result.robust_accuracy <= result.metrics()[Key("robust_acc", "apgd_t", norm, eps)] + 1e-9


def test_within_eps_keeps_only_what_the_min_norm_attack_found_inside_the_ball(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    index = torch.arange(32)
    found = PDGD(steps=50)(trained_digits_cnn, x, y, index=index)
    norms = (found - x).flatten(1).norm(dim=1)
    eps = norms[norms > 0].median().item()
    x_adv = WithinEps(attack=PDGD(steps=50), eps=eps)(trained_digits_cnn, x, y, index=index)
    inside = (norms > 0) & (norms <= eps)
    assert inside.any() and (norms > eps).any()
    assert torch.equal(x_adv[inside], found[inside]) and torch.equal(x_adv[~inside], x[~inside])
    with pytest.raises(ValueError, match="WithinEps wraps a min-norm attack"):
        WithinEps(attack=PGD(eps=0.1), eps=0.1)


def test_budget_counters_are_exact(trained_digits_cnn, digits):
    """A K-step PGD counts K backward passes per attacked sample; a cascade attacks only the
    points still standing."""
    _, _, x, y = digits
    x, y = x[:40], y[:40]
    result = AttackSuite({"pgd": PGD(eps=0.1, steps=7), "pgd2": PGD(eps=0.1, steps=3)}, checks=False).run(
        trained_digits_cnn, x, y)
    assert result.backward["pgd"] == 7 * int(result.correct.sum())
    assert result.backward["pgd2"] == 3 * int(result.robust_to("pgd", 0.1).sum())


def test_bad_inputs_get_clear_errors(trained_digits_cnn, digits):
    _, _, x, y = digits
    suite = AttackSuite({"pgd": PGD(eps=0.1)})
    with pytest.raises(ValueError, match="float in"):
        suite.run(trained_digits_cnn, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        suite.run(trained_digits_cnn, x * 255, y)
    with pytest.raises(ValueError, match="NaN"):
        suite.run(trained_digits_cnn, torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="unknown norm 'l3'"):
        AttackSuite({"pgd": PGD(eps=0.1)}, eps_grid={"l3": [1.0]})
    with pytest.raises(ValueError, match="unknown standard-suite version"):
        standard_suite(version="strong")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        AttackSuite({"pgd": PGD(eps=0.1)}, batch_size=0)


def test_validation_time_evaluation_leaves_training_bit_identical(tmp_path):
    """Attacks in the evaluation draw nothing from the global RNG, so training with a
    robust validation every epoch gives exactly the weights of training without it."""
    from lightning.pytorch import Trainer, seed_everything

    from advlit.data import DigitsDataModule
    from advlit.defenses import AdversarialTraining
    from advlit.evaluation import RobustnessEvaluation
    from advlit.models import DigitsCNN

    def train(callbacks):
        seed_everything(0)
        module = AdversarialTraining(DigitsCNN(), PGD(eps=0.1, steps=2))
        Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=2, logger=False,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                callbacks=callbacks, default_root_dir=tmp_path).fit(module, DigitsDataModule(val_size=100))
        return module.state_dict()

    evaluation = RobustnessEvaluation({"pgd": PGD(eps=0.1, steps=2), "square": Square(eps=0.1, queries=5)},
                                      on_test=False, every_n_val_epochs=1, log_examples=0)
    plain, evaluated = train([]), train([evaluation])
    assert "val/robust_acc/pgd/eps=0.1" in evaluation.results
    for key, value in plain.items():
        assert torch.equal(value, evaluated[key]), key


def test_min_norm_statistics_is_the_engine_on_one_attack(trained_digits_cnn, digits):
    from advlit.attacks import DeepFool
    from advlit.evaluation import min_norm_statistics

    _, _, x, y = digits
    stats = min_norm_statistics(DeepFool(steps=10), trained_digits_cnn, x[:40], y[:40])
    assert stats["success_rate"] > 0.9 and 0 < stats["median_norm"] and 0 < stats["rho_adv"] < 1
