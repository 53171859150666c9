"""TRADES, margin maximization, VAT and robust linear models: their losses against closed
forms, and brief training on the embedded digits moving the metric each one targets."""

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn

from advlit.attacks import KLPGD, PGD
from advlit.data import DigitsDataModule
from advlit.defenses import (
    TRADES,
    MarginMaximization,
    RobustClassifier,
    RobustLinearClassifier,
    VirtualAdversarialTraining,
)
from advlit.models import MLP, BinaryLinear, DigitsCNN
from tests.conftest import accuracy


def test_kl_pgd_raises_the_kl_inside_the_ball(trained_digits_cnn, digits):
    _, _, x, y = digits
    attack = KLPGD(eps=0.1, steps=5)
    x_adv = attack(trained_digits_cnn, x[:64], y[:64])
    assert (x_adv - x[:64]).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():
        p = F.log_softmax(trained_digits_cnn(x[:64]), 1)
        kl = lambda z: F.kl_div(F.log_softmax(trained_digits_cnn(z), 1), p, log_target=True,  # noqa: E731
                                reduction="batchmean")
        assert kl(x_adv) > 10 * kl((x[:64] + 0.001 * torch.randn_like(x[:64])).clamp(0, 1))


def test_trades_with_beta_zero_is_cross_entropy(trained_digits_cnn, digits):
    _, _, x, y = digits
    module = TRADES(trained_digits_cnn, KLPGD(eps=0.1, steps=2), beta=0.0)
    loss, _ = module.training_loss(x[:32], y[:32])
    assert loss.item() == pytest.approx(F.cross_entropy(trained_digits_cnn(x[:32]), y[:32]).item(), rel=1e-5)
    assert TRADES(trained_digits_cnn, KLPGD(eps=0.1, steps=2), beta=6.0).training_loss(
        x[:32], y[:32])[0].item() > loss.item()


@pytest.mark.parametrize("margin_norm,q", [("l2", 2), ("linf", 1)])
def test_margin_sensitivity_of_a_linear_model_is_the_weight_gap(margin_norm, q):
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    module = MarginMaximization(linear, C=1.0, margin_norm=margin_norm, loss="hinge", competitors=3)
    loss, logits = module.training_loss(x, y)
    rival = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    hinge = 1 + rival - logits.gather(1, y[:, None]).squeeze(1)
    W = linear[1].weight
    gaps = torch.stack([max((W[y[i]] - W[j]).norm(p=q) for j in range(4) if j != y[i]) for i in range(8)])
    assert loss.item() == pytest.approx((hinge.clamp_min(0).mean() + gaps.mean()).item(), rel=1e-5)


def test_vat_with_alpha_zero_is_cross_entropy_and_its_direction_beats_random(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    plain = VirtualAdversarialTraining(trained_digits_cnn, eps=1.0, alpha=0.0)
    assert plain.training_loss(x, y)[0].item() == pytest.approx(
        F.cross_entropy(trained_digits_cnn(x), y).item(), rel=1e-5)
    torch.manual_seed(0)
    vat = VirtualAdversarialTraining(trained_digits_cnn, eps=1.0, alpha=1.0, xi=1e-3)
    ce = F.cross_entropy(trained_digits_cnn(x), y).item()
    vat_term = vat.training_loss(x, y)[0].item() - ce
    with torch.no_grad():
        p = F.log_softmax(trained_digits_cnn(x), 1)
        d = torch.randn_like(x)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        random_kl = F.kl_div(F.log_softmax(trained_digits_cnn(x + d), 1), p, log_target=True,
                             reduction="batchmean").item()
    assert vat_term > 2 * random_kl


def test_robust_linear_loss_equals_loss_at_the_optimal_attack():
    torch.manual_seed(0)
    model = BinaryLinear(input_shape=(1, 4, 4))
    module = RobustLinearClassifier(model, eps=0.2, norm="linf")
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 2, (16,))
    loss, _ = module.training_loss(x, y)
    signed = (y.float() * 2 - 1)[:, None]
    delta = (-signed * 0.2 * model.linear.weight.sign()).view_as(x)
    at_attack = F.cross_entropy(model(x + delta), y)
    assert loss.item() == pytest.approx(at_attack.item(), rel=1e-5)
    with pytest.raises(ValueError, match="two-class model"):
        BinaryLinear(num_classes=10)
    with pytest.raises(ValueError, match="needs a BinaryLinear"):
        RobustLinearClassifier(MLP(num_classes=2))


def pgd_robust_accuracy(module, datamodule, eps=0.2):
    x = datamodule.test_set.images.float() / 255
    y = datamodule.test_set.labels
    module.eval()
    torch.manual_seed(0)
    return accuracy(module, PGD(eps=eps, steps=20)(module, x, y), y), accuracy(module, x, y)


def fit(module, epochs=8):
    dm = DigitsDataModule(batch_size=64)
    torch.manual_seed(0)
    Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, limit_val_batches=0).fit(module, datamodule=dm)
    return pgd_robust_accuracy(module, dm)


def test_trades_and_margin_training_raise_robust_accuracy_over_erm():
    torch.manual_seed(0)
    erm_robust, erm_clean = fit(RobustClassifier(DigitsCNN(), optimizer=lambda p: torch.optim.Adam(p, 3e-3)))
    torch.manual_seed(0)
    trades_robust, trades_clean = fit(TRADES(DigitsCNN(), KLPGD(eps=0.2, steps=5), beta=6.0,
                                             optimizer=lambda p: torch.optim.Adam(p, 3e-3)))
    torch.manual_seed(0)
    margin_robust, _ = fit(MarginMaximization(DigitsCNN(), C=0.5, margin_norm="linf", loss="ce",
                                              optimizer=lambda p: torch.optim.Adam(p, 3e-3)))
    assert erm_clean > 0.9 and trades_clean > 0.6
    assert trades_robust > erm_robust + 0.2, (erm_robust, trades_robust)
    assert margin_robust > erm_robust + 0.05, (erm_robust, margin_robust)
