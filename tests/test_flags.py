"""The honesty flags: each fires on a model built to trigger it, and none of those that accuse
the model fires on plain and adversarially trained models under the suites the configs use."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from jsonargparse import ArgumentParser
from torch import nn

from advlit.attacks import PGD
from advlit.evaluation import AttackSuite, RobustnessEvaluation
from advlit.evaluation.checks import BY_NAME, CHECKS, same_outputs
from advlit.models import MLP, DigitsCNN
from tests.conftest import train_erm
from tests.test_evaluation import Noisy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ACCUSING = [check.name for check in CHECKS if check.accuses == "model"]


class Softmaxed(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(dim=1)


class GradientInForward(nn.Module):
    """A dynamic defense: one gradient step on its own input before classifying."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model(z).logsumexp(dim=1).sum(), z)
        return self.model((x + 0.01 * grad.sign()).clamp(0, 1))


class CountsCalls(nn.Module):
    """Changes a buffer at every forward pass, also in eval mode."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.model(x)


class NaNForSome(nn.Module):
    """Deterministic, with NaN logits on images whose first pixel is dark."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return torch.where(x.flatten(1)[:, :1] < 0.05, torch.nan, logits)


def probe(name, model, x, y=None):
    """One model probe of the registry on ``model``: its detail if it fired, else None."""
    from advlit.evaluation.checks import ProbeContext

    y = model(x).argmax(dim=1) if y is None else y
    return BY_NAME[name].run(ProbeContext(model, model, x, y, None, targeted=False))


def test_model_probes_fire_on_models_built_to_trigger_them(trained_digits_cnn, digits):
    _, _, x, y = digits
    x = x[:16]
    plain = trained_digits_cnn
    assert probe("probability_outputs", plain, x) is None
    assert probe("optimization_in_forward", plain, x) is None
    assert probe("probability_outputs", Softmaxed(plain), x) is not None
    assert "backward call" in probe("optimization_in_forward", GradientInForward(plain), x)
    assert "buffer changed" in probe("optimization_in_forward", CountsCalls(plain), x)
    nan_model = NaNForSome(plain)
    assert torch.isnan(nan_model(x)).any() and probe("randomized_model", nan_model, x) is None
    assert probe("randomized_model", Noisy(plain, 0.3), x) is not None
    assert same_outputs(torch.tensor([1.0, torch.nan]), torch.tensor([1.0, torch.nan]))
    assert not same_outputs(torch.tensor([1.0, torch.nan]), torch.tensor([torch.nan, 1.0]))


def test_suite_reports_the_new_flags(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:32], y[:32]
    suite = AttackSuite({"pgd": PGD(eps=0.1, steps=5)})
    assert "probability_outputs" in suite.run(Softmaxed(trained_digits_cnn), x, y).flags
    assert "optimization_in_forward" in suite.run(GradientInForward(trained_digits_cnn), x, y).flags
    assert "randomized_model" not in suite.run(NaNForSome(trained_digits_cnn), x, y).flags


def test_randomness_explains_its_consequences(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:48], y[:48]
    result = AttackSuite({"pgd": PGD(eps=0.15, steps=10)}).run(Noisy(trained_digits_cnn, 0.3), x, y)
    assert "randomized_model" in result.flags
    explained = {"silent_success", "incomplete_optimization", "unconstrained_attack_failure"}
    assert not set(result.flags) & explained


@pytest.fixture(scope="module")
def clean_models(digits, trained_digits_cnn):
    """A plain CNN, a PGD-trained CNN and a plain MLP on the 8x8 digits."""
    tx, ty, _, _ = digits
    torch.manual_seed(0)
    robust = DigitsCNN()
    opt = torch.optim.Adam(robust.parameters(), lr=3e-3)
    attack = PGD(eps=0.1, steps=5)
    for _ in range(8):
        for idx in torch.randperm(len(ty)).split(128):
            x_adv = attack(robust, tx[idx], ty[idx])
            robust.train()
            opt.zero_grad()
            F.cross_entropy(robust(x_adv), ty[idx]).backward()
            opt.step()
    torch.manual_seed(0)
    mlp = train_erm(MLP(input_shape=(1, 8, 8), hidden_sizes=(64, 64)), tx, ty, epochs=20)
    return {"cnn": trained_digits_cnn, "pgd_at_cnn": robust.eval(), "mlp": mlp}


def evaluation_pieces(text) -> list[dict]:
    """The RobustnessEvaluation entries of one parsed config file."""
    def is_evaluation(entry) -> bool:
        return isinstance(entry, dict) and entry.get("class_path", "").endswith("RobustnessEvaluation")

    if is_evaluation(text):
        return [text]
    trainer = (text or {}).get("trainer") or {}
    return [c for c in (trainer.get("callbacks+") or []) + (trainer.get("callbacks") or []) if is_evaluation(c)]


def config_suites() -> dict[str, AttackSuite]:
    """Every RobustnessEvaluation the configs define, by file, plus mixed-norm suites in both
    orders."""
    parser = ArgumentParser()
    parser.add_argument("--evaluation", type=RobustnessEvaluation)
    pieces = {}
    for path in sorted(CONFIGS.rglob("*.yaml")):
        for i, piece in enumerate(evaluation_pieces(yaml.safe_load(path.read_text()))):
            piece = dict(piece, init_args={**piece.get("init_args", {}), "log_examples": 0})
            cfg = parser.parse_object({"evaluation": piece})
            pieces[f"{path.relative_to(CONFIGS)}#{i}"] = parser.instantiate_classes(cfg).evaluation.suite
    l2, linf = PGD(norm="l2", eps=1.0, steps=20), PGD(norm="linf", eps=0.1, steps=20)
    pieces["mixed l2 then linf"] = AttackSuite({"pgd_l2": l2, "pgd_linf": linf})
    pieces["mixed linf then l2"] = AttackSuite({"pgd_linf": linf, "pgd_l2": l2})
    return pieces


def test_no_accusing_flag_on_clean_models(clean_models, digits):
    suites = config_suites()
    assert len(suites) >= 10 and len(ACCUSING) >= 7
    _, _, x, y = digits
    x, y = x[:40], y[:40]
    for model_name, model in clean_models.items():
        for suite_name, suite in suites.items():
            suite.batch_size = None
            suite.progress = False
            result = suite.run(model, x, y)
            accused = set(result.flags) & set(ACCUSING)
            assert not accused, (model_name, suite_name, {k: result.flags[k] for k in accused})


def test_a_randomized_model_is_judged_as_deployed(trained_digits_cnn, digits):
    """The rand suite attacks through EOT but reports the deployed model: its expected accuracy
    over single passes (20, more than the attacks' EOT average), the same in two runs, never
    above the clean figure."""
    from advlit.evaluation import standard_suite

    _, _, x, y = digits
    x, y = x[:48], y[:48]
    noisy = Noisy(trained_digits_cnn, 0.3)
    suite = standard_suite(norm="linf", eps=0.15, version="rand")
    suite.attacks = {n: a.replace(steps=10) for n, a in suite.attacks.items()}
    first, second = suite.run(noisy, x, y), suite.run(noisy, x, y)
    assert first.robust_accuracy == second.robust_accuracy and first.clean_accuracy == second.clean_accuracy
    assert first.deployed_passes == suite.deployed_passes == 20 > suite.eot_samples
    assert torch.equal(first.deployed_clean * 20, (first.deployed_clean * 20).round())
    single = torch.stack([(noisy(x).argmax(1) == y).float() for _ in range(50)]).mean()
    assert abs(first.clean_accuracy - single.item()) < 0.05
    assert (first.deployed_robust <= first.deployed_clean).all()
    assert first.clean_accuracy < first.averaged_clean_accuracy + 1e-9
    low, high = first.deployed_interval()
    assert low <= first.robust_accuracy <= high
    assert "deployed model" in first.table()


def test_the_guide_documents_every_check_of_the_registry():
    """docs/flags.md has one section per check of the registry, naming its paper and,
    for the per-sample checks, its threshold; its lists of accusing and attack flags match."""
    guide = (Path(__file__).resolve().parents[1] / "docs" / "flags.md").read_text()
    sections = {}
    for block in guide.split("\n## ")[1:]:
        name, _, body = block.partition("\n")
        sections[name.strip()] = body
    assert set(sections) == {check.name for check in CHECKS}
    for check in CHECKS:
        body = " ".join(sections[check.name].split())
        assert check.paper.split(",")[0].split(";")[0] in body, check.name
        if check.threshold:
            assert f"{check.threshold:.1%}" in body, check.name
    accusing = guide.split("**Flags that accuse the model**")[1].split("**Flags about the attacks**")[0]
    assert {c.name for c in CHECKS if f"`{c.name}`" in accusing} == set(ACCUSING)


class Forgetful(PGD):
    """Runs PGD, then returns the clean point: it loses every success it had."""

    def perturb(self, model, x, y, rng):
        super().perturb(model, x, y, rng)
        return x.clone()


def test_attack_failure_indicators_fire(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:48], y[:48]
    short = AttackSuite({"pgd1": PGD(eps=0.2, steps=1, step_size=0.002, random_start=False)})
    flags = short.run(trained_digits_cnn, x, y).flags
    assert "incomplete_optimization" in flags and "PGD, linf eps=0.2" in flags["incomplete_optimization"]
    flags = AttackSuite({"forgetful": Forgetful(eps=0.2, steps=10)}).run(trained_digits_cnn, x, y).flags
    assert "silent_success" in flags


def test_a_new_check_is_one_object_in_the_registry(trained_digits_cnn, digits, monkeypatch):
    """A check added to CHECKS alone reaches SuiteResult.flags, the metrics and the callback."""
    from advlit.evaluation import checks
    from advlit.evaluation.keys import Key

    _, _, x, y = digits
    new = checks.Check("every_point_flagged", "sample", "attack", "a test check", "advlit",
                       lambda result: torch.ones_like(result.correct))
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS, new])
    monkeypatch.setitem(checks.BY_NAME, new.name, new)
    result = AttackSuite({"pgd": PGD(eps=0.1, steps=2)}, checks=False).run(trained_digits_cnn, x[:8], y[:8])
    assert result.flags["every_point_flagged"] == "a test check (100.00% of points)"
    metrics = result.metrics()
    assert metrics[Key("sanity", check=new.name)] == 1.0 and metrics[Key("indicator", check=new.name)] == 1.0
