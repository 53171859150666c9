"""Evaluation pieces: min-norm statistics, sanity checks, EOT, the min-norm curve against PGD."""

import math

import pytest
import torch
from torch import nn

from advlit.attacks import PDPGD, PGD
from advlit.evaluation import RobustnessEvaluation
from advlit.evaluation.checks import BY_NAME, ProbeContext, bad_gradient_share
from advlit.evaluation.eot import ExpectationOverTransformation
from advlit.evaluation.keys import Key
from advlit.evaluation.result import SuiteResult
from advlit.models import InputQuantization
from tests.conftest import accuracy


def hand_made(broken: dict[str, dict[float, list[int]]], radius: dict[str, list[float]], n: int,
              single_step=(), cascade=False) -> SuiteResult:
    """A result of ``n`` correctly classified points: ``broken[name][eps]`` lists the points an
    attack broke; ``radius[name]`` gives a min-norm attack's radii (also on misclassified ones)."""
    mask = {name: {eps: torch.isin(torch.arange(n), torch.tensor(points, dtype=torch.long))
                   for eps, points in per_eps.items()} for name, per_eps in broken.items()}
    radii = {name: torch.tensor(values) for name, values in radius.items()}
    order = [*broken, *radius]
    correct = torch.ones(n, dtype=torch.bool)
    for values in radii.values():
        correct &= values > 0
    return SuiteResult({name: "linf" for name in order},
                       {**{name: sorted(per_eps) for name, per_eps in broken.items()},
                        **{name: [0.1, 0.5] for name in radius}},
                       order, cascade, torch.arange(n), correct, torch.zeros(n, dtype=torch.bool), mask,
                       {name: {eps: torch.zeros(n, dtype=torch.bool) for eps in per_eps}
                        for name, per_eps in broken.items()},
                       radii, {name: values / 2 for name, values in radii.items()},
                       single_step=set(single_step))


def test_radius_statistics_from_hand_made_radii():
    # misclassified, broken at 0.2, broken at 0.6, never broken
    result = hand_made({}, {"df": [0.0, 0.2, 0.6, math.inf]}, 4)
    metrics = result.metrics()
    assert metrics[Key("robust_acc", "df", "linf", 0.1)] == 0.75
    assert metrics[Key("robust_acc", "df", "linf", 0.5)] == 0.5
    assert metrics[Key("success_rate", "df", "linf")] == pytest.approx(2 / 3)
    assert metrics[Key("median_norm", "df", "linf")] == pytest.approx(0.2)
    assert metrics[Key("mean_norm", "df", "linf")] == pytest.approx(0.4)
    assert metrics[Key("rho_adv", "df", "linf")] == pytest.approx(0.2)


def test_result_checks_name_what_fired():
    # pgd: 0.5 robust at 0.1, 0.6 at 0.3 (rises); fgsm (single step) 0.4 at 0.1; df leaves 1 in 10
    flags = hand_made({"pgd": {0.1: [0, 1, 2, 3, 4], 0.3: [0, 1, 2, 3]}, "fgsm": {0.1: [0, 1, 2, 3, 4, 5]}},
                      {"df": [0.05] * 9 + [math.inf]}, 10, single_step={"fgsm"}).flags
    fired = {"robust_acc_increases_with_eps", "single_step_stronger", "unbounded_attack_not_zero"}
    assert fired <= set(flags)
    assert "(pgd)" in flags["robust_acc_increases_with_eps"] and "fgsm < pgd" in flags["single_step_stronger"]
    calm = hand_made({"pgd": {0.1: [0, 1], 0.3: [0, 1, 2]}}, {"df": [0.05] * 10}, 10).flags
    assert not set(calm) & {"robust_acc_increases_with_eps", "unbounded_attack_not_zero"}


def test_metric_names_are_formatted_in_one_place():
    """Keys become names only through Key.name, and nothing in advlit parses a name back."""
    from pathlib import Path

    name = Key("robust_acc", "apgd", "linf", 1e-05).name("test/", "_eot8")
    assert name == "test/robust_acc/apgd_eot8/eps=1e-05"
    assert Key("robust_acc", None, "l2", 0.5).name() == "robust_acc/worst_l2/eps=0.5"
    assert Key("deployed_robust_acc").name("val/", "_x") == "val/deployed/robust_acc_x"
    assert Key("sanity", check="silent_success").name("test/") == "test/sanity/silent_success"
    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("advlit/**/*.py"), *root.glob("scripts/*.py")]:
        text = path.read_text()
        for pattern in ('split("/")', 'partition("/")', 'partition("eps=")', '[4:]', "[6:]",
                        "removeprefix('test/')", 'removeprefix("test/")', 'removeprefix(f"{stage}/")'):
            assert pattern not in text, (path.name, pattern)


class Noisy(nn.Module):
    """A randomized defense: Gaussian noise on the input, also in eval mode."""

    def __init__(self, model, sigma):
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x):
        return self.model(x + self.sigma * torch.randn_like(x))


def test_sanity_checks_catch_randomness_and_masked_gradients(trained_digits_cnn, digits):
    _, _, x, y = digits
    def randomness(model):
        return BY_NAME["randomized_model"].run(ProbeContext(model, model, x[:8], y[:8], None, False))

    assert randomness(trained_digits_cnn) is None and randomness(Noisy(trained_digits_cnn, 0.3)) == ""
    assert bad_gradient_share(trained_digits_cnn, x[:8], y[:8]) == 0
    assert bad_gradient_share(InputQuantization(trained_digits_cnn, 5), x[:8], y[:8]) > 0


def test_eot_pgd_is_at_least_as_strong_on_a_randomized_model(trained_digits_cnn, digits):
    _, _, x, y = digits
    noisy = Noisy(trained_digits_cnn, 0.3)
    judge = ExpectationOverTransformation(noisy, 32)
    attack = PGD(eps=0.1, steps=10)
    torch.manual_seed(0)
    naive = accuracy(judge, attack(noisy, x, y), y)
    torch.manual_seed(0)
    eot = accuracy(judge, attack(ExpectationOverTransformation(noisy, 16), x, y), y)
    assert eot <= naive


def test_min_norm_curve_agrees_with_pgd(trained_digits_cnn, digits):
    """Both estimate robust accuracy at eps: the min-norm curve may not sit far above PGD
    (within 2 points: on one 2-core machine it sat 1.1 points above PGD-50 at eps 0.1, 4 of
    the 360 images, on another at or below it)."""
    _, _, x, y = digits
    model = trained_digits_cnn
    torch.manual_seed(0)
    x_adv = PDPGD(norm="linf", steps=300, restarts=3, random_init=0.2)(model, x, y)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        fooled = model(x_adv).argmax(1) != y
    radius = torch.where(fooled, (x_adv - x).flatten(1).abs().amax(1), torch.tensor(math.inf))
    radius[~correct] = 0
    for eps in (0.05, 0.1, 0.15):
        curve = (radius > eps).float().mean().item()
        pgd = accuracy(model, PGD(eps=eps, steps=50, restarts=2)(model, x, y), y)
        assert curve <= pgd + 0.02, (eps, curve, pgd)


def test_bad_evaluation_arguments():
    with pytest.raises(ValueError, match="at least one attack"):
        RobustnessEvaluation({})
    with pytest.raises(ValueError, match="negative eps"):
        RobustnessEvaluation({"pgd": PGD(eps=0.1)}, eps_grid={"linf": [-0.1]})
    with pytest.raises(ValueError, match="max_samples must be >= 1"):
        RobustnessEvaluation({"pgd": PGD(eps=0.1)}, max_samples=0)


def test_peer_attacks_run_inside_a_suite(trained_digits_cnn, digits):
    pytest.importorskip("torchattacks", reason="optional peer: pip install --no-deps torchattacks")
    from advlit.attacks import TorchattacksBudget, TorchattacksMinNorm

    _, _, x, y = digits
    theirs = TorchattacksBudget(name="PGD", eps=0.1, options={"alpha": 0.01, "steps": 20})
    ours = PGD(eps=0.1, steps=20, step_size=0.01)
    torch.manual_seed(0)
    a = accuracy(trained_digits_cnn, ours(trained_digits_cnn, x, y), y)
    torch.manual_seed(0)
    b = accuracy(trained_digits_cnn, theirs(trained_digits_cnn, x, y), y)
    assert abs(a - b) <= 0.03
    x_adv = TorchattacksMinNorm(name="DeepFool", options={"steps": 50})(trained_digits_cnn, x[:32], y[:32])
    assert x_adv.shape == x[:32].shape
