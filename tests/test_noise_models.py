"""Noise-injection layers, the CIFAR-10 architectures and naive-vs-EOT evaluation."""

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from advlit.attacks import PGD
from advlit.data import DigitsDataModule
from advlit.defenses import RobustClassifier
from advlit.evaluation import RobustnessEvaluation
from advlit.models import (
    VGG11,
    BasicNet,
    DigitsCNN,
    LeNet5,
    NiN,
    NoisyInput,
    ParametricNoise,
    PreActResNet18,
    ResNet18,
    ResNet20,
    WideResNet,
)

ARCHITECTURES = {
    "resnet20": (ResNet20, (0.26e6, 0.28e6)),
    "noisenet20": (lambda: ResNet20(pni=True), (0.26e6, 0.28e6)),
    "resnet18": (ResNet18, (11.0e6, 11.4e6)),
    "preact_resnet18": (PreActResNet18, (11.0e6, 11.4e6)),
    "wrn28_10": (lambda: WideResNet(28, 10), (36.0e6, 37.0e6)),
    "wrn34_10": (lambda: WideResNet(34, 10), (45.5e6, 46.5e6)),
    "vgg11": (VGG11, (9.0e6, 11.0e6)),
    "nin": (NiN, (0.9e6, 1.0e6)),
    "basicnet": (BasicNet, (1.0e6, 1.2e6)),
    "noise_basicnet": (lambda: BasicNet(pni=True), (1.0e6, 1.2e6)),
}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_maps_cifar_batches_to_logits(name):
    build, (low, high) = ARCHITECTURES[name]
    model = build().eval()
    assert low <= sum(p.numel() for p in model.parameters()) <= high
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_wide_resnet_rejects_a_bad_depth():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(depth=30)


def outputs_twice(model, x, seed=None):
    outs = []
    for _ in range(2):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(model(x))
    return outs


@pytest.mark.parametrize("build", [lambda flag: LeNet5(pni=True) if flag else _quiet_pni(),
                                   lambda flag: NoisyInput(10, LeNet5, 0.2, at_inference=flag)])
def test_noise_is_seeded_and_in_eval_mode_only_when_asked(build):
    x = torch.rand(4, 1, 28, 28)
    noisy = build(True)
    a, b = outputs_twice(noisy.train(), x, seed=0)
    assert torch.equal(a, b)                       # same seed, same noise
    a, b = outputs_twice(noisy.train(), x)
    assert not torch.equal(a, b)                   # noisy in train mode
    a, b = outputs_twice(noisy.eval(), x)
    assert not torch.equal(a, b)                   # asked for noise at inference
    a, b = outputs_twice(build(False).eval(), x)
    assert torch.equal(a, b)                       # not asked: deterministic


def _quiet_pni():
    model = LeNet5(pni=True)
    for module in model.modules():
        if isinstance(module, ParametricNoise):
            module.inference_noise = False
    return model


def test_pni_alpha_learns():
    model = LeNet5(pni=True).train()
    alphas = [m.alpha for m in model.modules() if isinstance(m, ParametricNoise)]
    assert len(alphas) == 5
    F.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.arange(8)).backward()
    assert all(a.grad is not None and a.grad.abs() > 0 for a in alphas)


def test_noisy_input_averages_logits_over_samples():
    model = NoisyInput(10, LeNet5, sigma=0.5, num_samples=64).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        single = torch.stack([NoisyInput(10, lambda k: model.model, 0.5)(x) for _ in range(64)])
        averaged = torch.stack([model(x) for _ in range(8)])
    assert averaged.shape == (8, 3, 10)
    assert averaged.std(0).mean() < 0.5 * single.std(0).mean()   # ~1/8 of the spread
    with pytest.raises(ValueError, match="sigma"):
        NoisyInput(10, LeNet5, sigma=-1.0)


def test_naive_and_eot_suites_side_by_side(trained_digits_cnn, tmp_path):
    model = RobustClassifier(NoisyInput(10, lambda k: trained_digits_cnn, sigma=0.1))
    suite = {"pgd": PGD(eps=0.1, steps=10)}
    naive = RobustnessEvaluation(suite, max_samples=120, log_examples=0)
    eot = RobustnessEvaluation(suite, max_samples=120, eot_samples=8, log_examples=0)
    trainer = Trainer(logger=False, callbacks=[naive, eot], enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    torch.manual_seed(0)
    trainer.test(model, DigitsDataModule(eval_batch_size=120))
    assert "randomized_model" in naive.flags and "through EOT" in eot.flags["randomized_model"]
    assert naive.flags["randomized_model"].count("consequences") <= 1
    robust_naive = naive.results["test/robust_acc/pgd/eps=0.1"]
    robust_eot = eot.results["test/deployed/robust_acc_eot8"]  # the deployed model, one pass at a time
    assert eot.results["test/deployed/clean_acc_eot8"] >= robust_eot
    # the naive figure judges each image by one noisy pass: two standard errors of that draw
    noise = 2 * (robust_naive * (1 - robust_naive) / 120) ** 0.5
    assert robust_eot <= robust_naive + noise, (robust_eot, robust_naive)


def test_digits_cnn_untouched_by_noise_wrapper(trained_digits_cnn):
    wrapper = NoisyInput(10, lambda k: trained_digits_cnn, sigma=0.0)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(wrapper(x), trained_digits_cnn(x))
    assert isinstance(wrapper.model, DigitsCNN)
