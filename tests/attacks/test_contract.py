"""The attack contract (docs/design.md), checked for every public attack in ``advlit.attacks``:
shape, dtype and device of x; images stay in [0, 1]; fixed-budget attacks stay in their ball,
min-norm attacks return x or an adversarial point; the model's flags, weights, BatchNorm
statistics and ``.grad`` come back unchanged; attacks work under inference mode; keyed by
dataset index they leave the global RNG alone and repeat exactly."""

import inspect

import pytest
import torch

import advlit.attacks as attacks
from advlit.attacks import (
    APGD,
    APGDT,
    DDN,
    FABT,
    FGSM,
    FMN,
    KLPGD,
    PDGD,
    PDPGD,
    PGD,
    CarliniWagnerL2,
    DeepFool,
    FixedBudgetAttack,
    FoolboxMinNorm,
    HighConfidenceAttack,
    MinNormAttack,
    PathAttack,
    RandomOf,
    Square,
    TorchattacksBudget,
    TorchattacksMinNorm,
    VirtualAdversarial,
    WithinEps,
    WorstOf,
)
from advlit.attacks.norms import lp_norm

CASES = [
    FGSM(norm="linf", eps=0.1),
    FGSM(norm="linf", eps=0.1, random_start=True),
    FGSM(norm="l2", eps=1.0),
    PGD(norm="linf", eps=0.1, steps=5),
    PGD(norm="l2", eps=1.0, steps=5),
    PGD(norm="l1", eps=2.0, steps=5),
    PGD(norm="linf", eps=0.1, steps=3, restarts=2, loss="margin"),
    PGD(norm="l2", eps=1.0, steps=3, targeted=True),
    PGD(norm="linf", eps=0.1, steps=3, model_mode="train"),
    KLPGD(eps=0.1, steps=3),
    APGD(norm="linf", eps=0.1, steps=10),
    APGD(norm="l2", eps=1.0, steps=10, loss="dlr"),
    APGD(norm="linf", eps=0.1, steps=5, targeted=True),
    APGD(norm="l1", eps=2.0, steps=10),
    APGD(norm="l1", eps=2.0, steps=10, large_eps=True),
    APGDT(norm="linf", eps=0.1, steps=5, target_classes=2),
    Square(norm="linf", eps=0.1, queries=30),
    Square(norm="l2", eps=1.0, queries=30),
    Square(norm="l1", eps=3.0, queries=30),
    DeepFool(norm="l2", steps=10),
    DeepFool(norm="linf", steps=10, step_clip=0.5),
    CarliniWagnerL2(steps=10, binary_search_steps=2),
    PDGD(steps=20),
    PDGD(steps=20, targeted=True),
    *(PDPGD(norm=n, steps=20) for n in ("linf", "l2", "l1", "l0", "group_l0")),
    *(FMN(norm=n, steps=20) for n in ("linf", "l2", "l1", "l0")),
    FMN(steps=20, targeted=True),
    DDN(steps=20),
    DDN(steps=20, targeted=True),
    *(FABT(norm=n, steps=10, target_classes=2) for n in ("linf", "l2", "l1")),
    HighConfidenceAttack(steps=5),
    PathAttack(steps=5, step_size=0.1, clamp=True),
    VirtualAdversarial(eps=1.0),
    WorstOf(attacks=[PGD(norm="linf", eps=0.1, steps=3), PGD(norm="l2", eps=1.0, steps=3)]),
    RandomOf(attacks=[PGD(norm="linf", eps=0.1, steps=3), FGSM(norm="l2", eps=1.0)]),
    WithinEps(attack=PDGD(steps=10), eps=1.0),
    TorchattacksBudget(name="PGD", eps=0.1, options={"steps": 3}),
    TorchattacksMinNorm(name="DeepFool", options={"steps": 5}),
    FoolboxMinNorm(name="L2FMNAttack", options={"steps": 10}),
]
PEERS = (TorchattacksBudget, TorchattacksMinNorm, FoolboxMinNorm)


def case_id(attack) -> str:
    shown = ("norm", "targeted", "loss", "random_start")
    options = [f"{k}={v}" for k, v in vars(attack).items() if k in shown and v not in (False, "ce")]
    return f"{type(attack).__name__}({','.join(options)})"


def test_every_public_attack_is_in_the_contract_list():
    public = {obj for name in attacks.__all__ if inspect.isclass(obj := getattr(attacks, name))
              and issubclass(obj, attacks.Attack) and not inspect.isabstract(obj)
              and obj.perturb is not attacks.Attack.perturb}
    missing = public - {type(a) for a in CASES}
    assert not missing, f"add cases for {sorted(c.__name__ for c in missing)} to CASES"


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def labels_for(attack, y):
    return (y + 1) % 10 if attack.targeted else y


def skip_missing_peer(attack):
    if isinstance(attack, PEERS):
        pytest.importorskip("foolbox" if isinstance(attack, FoolboxMinNorm) else "torchattacks")


@pytest.mark.parametrize("attack", CASES, ids=case_id)
def test_output_and_model_state(attack, trained_bn_net, digits):
    skip_missing_peer(attack)
    model = trained_bn_net
    _, _, x, y = digits
    x, y = x[:48], labels_for(attack, y[:48])
    model.train()
    model.drop.eval()  # mixed per-module flags must come back exactly
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = snapshot(model)

    x_adv = attack(model, x, y)

    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert model.training and model.conv.training and not model.drop.training
    for k, v in snapshot(model).items():
        assert torch.equal(v, before[k]), f"{k} changed (BatchNorm statistics or weights)"
    for p in model.parameters():
        assert p.requires_grad and torch.equal(p.grad, torch.full_like(p, 0.5))
    model.eval()
    for p in model.parameters():
        p.grad = None
    if isinstance(attack, FixedBudgetAttack):
        assert (lp_norm(x_adv - x, attack.norm) <= attack.eps * (1 + 1e-5) + 1e-6).all()


@pytest.mark.parametrize("attack", [a for a in CASES if isinstance(a, MinNormAttack)], ids=case_id)
def test_min_norm_returns_x_or_an_adversarial_point(attack, trained_digits_cnn, digits):
    skip_missing_peer(attack)
    _, _, x, y = digits
    x, y = x[:48], labels_for(attack, y[:48])
    x_adv = attack(trained_digits_cnn, x, y)
    with torch.no_grad():
        fooled = attack.is_adversarial(trained_digits_cnn(x_adv), y)
    unchanged = (x_adv == x).flatten(1).all(1)
    assert (fooled | unchanged).all(), "a returned point is neither adversarial nor x"
    assert fooled.any()


@pytest.mark.parametrize("attack", CASES, ids=case_id)
def test_works_under_inference_mode(attack, trained_digits_cnn, digits):
    """Lightning evaluates under torch.inference_mode: attacks must still get gradients."""
    skip_missing_peer(attack)
    _, _, x, y = digits
    with torch.inference_mode():
        x_adv = attack(trained_digits_cnn, x[:32], labels_for(attack, y[:32]))
    assert (x_adv != x[:32]).any()


@pytest.mark.parametrize("attack", [a for a in CASES if not isinstance(a, PEERS)], ids=case_id)
def test_keyed_randomness_repeats_and_leaves_the_global_rng_alone(attack, trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y, index = x[:32], labels_for(attack, y[:32]), torch.arange(100, 132)
    state = torch.get_rng_state()
    first = attack(trained_digits_cnn, x, y, index=index, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # a different global state must not matter
    assert torch.equal(attack(trained_digits_cnn, x, y, index=index, seed=3), first)
