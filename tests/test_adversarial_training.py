import pytest
import torch
import torch.nn.functional as F

from advlit.attacks import PGD, RandomOf, WorstOf
from advlit.defenses import AdversarialTraining, RobustClassifier
from advlit.models import DigitsCNN


def test_natural_ratio_outside_unit_interval_is_rejected():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"natural_ratio must be in \\[0, 1\\], got {bad}"):
            AdversarialTraining(DigitsCNN(), PGD(eps=0.1), natural_ratio=bad)


def test_combinators_need_two_attacks():
    for combinator in (WorstOf, RandomOf):
        with pytest.raises(ValueError, match="needs at least 2 attacks, got 1"):
            combinator(attacks=[PGD(eps=0.1)])


def test_natural_batches_train_on_clean_inputs(trained_digits_cnn, digits):
    _, _, x, y = digits
    module = AdversarialTraining(trained_digits_cnn, PGD(eps=0.2, steps=3), natural_ratio=1.0)
    loss, _ = module.training_loss(x[:32], y[:32])
    assert loss.item() == pytest.approx(F.cross_entropy(trained_digits_cnn(x[:32]), y[:32]).item())
    adversarial = AdversarialTraining(trained_digits_cnn, PGD(eps=0.2, steps=3))
    assert adversarial.training_loss(x[:32], y[:32])[0].item() > loss.item() + 0.1


def test_clean_weight_mixes_clean_and_adversarial_loss(trained_digits_cnn, digits):
    """Goodfellow et al.'s objective: alpha CE(x) + (1 - alpha) CE(x_adv), checked directly."""
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    attack = PGD(eps=0.2, steps=3, random_start=False)
    module = AdversarialTraining(trained_digits_cnn, attack, clean_weight=0.25)
    loss, _ = module.training_loss(x, y)
    clean = F.cross_entropy(trained_digits_cnn(x), y)
    adversarial = F.cross_entropy(trained_digits_cnn(attack(module, x, y)), y)
    assert adversarial.item() > clean.item() + 0.1
    assert loss.item() == pytest.approx((0.25 * clean + 0.75 * adversarial).item(), rel=1e-5)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="clean_weight must be in"):
            AdversarialTraining(trained_digits_cnn, attack, clean_weight=bad)


def per_sample_ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_mat_max_keeps_the_more_damaging_example_per_sample(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    linf = PGD(norm="linf", eps=0.1, steps=5, random_start=False)
    l2 = PGD(norm="l2", eps=0.5, steps=5, random_start=False)
    module = AdversarialTraining(trained_digits_cnn, WorstOf(attacks=[linf, l2]))
    chosen = per_sample_ce(module, module.adversarial_examples(x, y), y)
    each = torch.stack([per_sample_ce(module, a(module, x, y), y) for a in (linf, l2)])
    assert torch.allclose(chosen, each.max(0).values, atol=1e-5)
    assert (each[0] > each[1]).any() and (each[1] > each[0]).any()  # both norms get picked


def test_mat_rand_uses_one_attack_per_batch(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    attacks = [PGD(norm="linf", eps=0.1, steps=2, random_start=False),
               PGD(norm="l2", eps=1.0, steps=2, random_start=False)]
    module = AdversarialTraining(trained_digits_cnn, RandomOf(attacks=attacks))
    outputs = [a(module, x, y) for a in attacks]
    used = set()
    torch.manual_seed(0)
    for _ in range(12):
        x_adv = module.adversarial_examples(x, y)
        used |= {i for i, o in enumerate(outputs) if torch.equal(o, x_adv)}
    assert used == {0, 1}


def test_optimizer_and_scheduler_come_from_the_config():
    module = RobustClassifier(
        DigitsCNN(), optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
        scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 3), scheduler_interval="step")
    config = module.configure_optimizers()
    assert config["optimizer"].param_groups[0]["lr"] == 0.5
    assert config["lr_scheduler"]["interval"] == "step"
