"""Speed options (#18): mixed precision through the evaluation, channels_last, torch.compile,
and the eps warm-up of adversarial training."""

import pytest
import torch
from lightning.pytorch import Trainer

from advlit.attacks import PGD
from advlit.defenses import AdversarialTraining, RobustClassifier
from advlit.evaluation import RobustnessEvaluation
from advlit.models import DigitsCNN, MadryCNN
from advlit.models.acceleration import accelerate


def _robust_test(module, precision: str) -> dict[str, float]:
    from advlit.data import DigitsDataModule

    evaluation = RobustnessEvaluation({"pgd": PGD(eps=0.1, steps=10)}, log_examples=0, sanity_checks=False)
    Trainer(precision=precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[evaluation]).test(module, DigitsDataModule(val_size=0))
    return evaluation.results


def test_bf16_evaluation_matches_fp32_within_one_point(trained_digits_cnn):
    """The attacks run under the trainer's autocast (bf16 on CPU) and land within 1 point."""
    autocast_seen = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] > 1:  # not the one-image output check at setup
                autocast_seen.append(torch.is_autocast_enabled("cpu"))
            return trained_digits_cnn(x)

    module = RobustClassifier(Recording())
    fp32 = _robust_test(module, "32-true")
    assert not any(autocast_seen)
    before = len(autocast_seen)
    bf16 = _robust_test(module, "bf16-mixed")
    assert all(autocast_seen[before:])  # every forward, the attack's included
    key = "test/robust_acc/pgd/eps=0.1"
    assert 0.05 < fp32[key] < 0.95  # a non-trivial figure, so the comparison means something
    assert abs(fp32[key] - bf16[key]) <= 0.01
    assert abs(fp32["test/clean_acc"] - bf16["test/clean_acc"]) <= 0.01


def test_autocast_attack_keeps_the_perturbation_in_fp32(trained_digits_cnn, digits):
    x, y = digits[2][:16], digits[3][:16]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = PGD(eps=0.1, steps=3)(trained_digits_cnn, x, y)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_channels_last_gives_the_same_attack_and_keeps_checkpoint_keys(digits):
    x, y = digits[2][:32], digits[3][:32]
    module = MadryCNN(width=0.25, image_size=8)
    reference = PGD(eps=0.1, steps=5)(module, x, y, index=torch.arange(32))
    keys = list(module.state_dict())
    accelerate(module, channels_last=True)
    assert module.net[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert list(module.state_dict()) == keys
    assert torch.allclose(PGD(eps=0.1, steps=5)(module, x, y, index=torch.arange(32)), reference, atol=1e-5)


def test_compiled_and_eager_attacks_agree(digits):
    x, y = digits[2][:32], digits[3][:32]
    torch.manual_seed(0)
    eager = DigitsCNN().eval()
    compiled = AdversarialTraining(DigitsCNN(), PGD(eps=0.1), compile=True)
    compiled.model.load_state_dict(eager.state_dict())
    assert list(compiled.model.state_dict()) == list(eager.state_dict())  # checkpoints unchanged
    attack = PGD(eps=0.1, steps=5)
    expected = attack(eager, x, y, index=torch.arange(32))
    got = attack(compiled, x, y, index=torch.arange(32))
    assert torch.allclose(got, expected, atol=1e-5)


def test_compile_rejects_a_bad_value():
    with pytest.raises(ValueError, match="compile must be"):
        accelerate(DigitsCNN(), compile=3)


def test_eps_warmup_ramps_the_training_attack(tmp_path):
    from advlit.data import DigitsDataModule

    seen = []

    class Recording(PGD):
        def perturb(self, model, x, y, rng):
            seen.append(self.eps)
            return super().perturb(model, x, y, rng)

    module = AdversarialTraining(DigitsCNN(), Recording(eps=0.2, steps=1), eps_warmup_epochs=1)
    Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=tmp_path).fit(module, DigitsDataModule(val_size=0))
    assert seen == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="eps_warmup_epochs"):
        AdversarialTraining(DigitsCNN(), PGD(eps=0.2), eps_warmup_epochs=-1)



def test_the_suite_sets_cpu_threads_and_warns_when_the_machine_is_busy(trained_digits_cnn, digits,
                                                                      monkeypatch):
    import warnings

    from advlit.evaluation import AttackSuite, suite

    _, _, x, y = digits
    before, seen, original = torch.get_num_threads(), [], AttackSuite._run
    monkeypatch.setattr(AttackSuite, "_run",
                        lambda self, *a: seen.append(torch.get_num_threads()) or original(self, *a))
    AttackSuite({"pgd": PGD(eps=0.1, steps=1)}, threads=1, checks=False).run(trained_digits_cnn, x[:8], y[:8])
    assert seen == [1] and torch.get_num_threads() == before
    monkeypatch.setattr(suite.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr(suite, "_warned_busy", False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AttackSuite({"pgd": PGD(eps=0.1, steps=1)}, checks=False).run(trained_digits_cnn, x[:8], y[:8])
    assert any("CPU is busy" in str(w.message) and "threads=1" in str(w.message) for w in caught)
