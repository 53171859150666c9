"""The high-confidence straight-through attack and the adversary-critic defense."""

import copy

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advlit.attacks import HighConfidenceAttack
from advlit.defenses import AdversaryCritic
from advlit.models import Critic
from tests.conftest import TinyBNNet


def tiny_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def attack_loss(model, attack, x, target, weights):
    return (attack.toward(model, x, target) * weights).sum()


@pytest.mark.parametrize("slope", [1.0, 1e4])
def test_straight_through_gradient_is_finite_and_second_order(slope):
    model = tiny_classifier()
    x = 0.4 + 0.2 * torch.rand(6, 1, 2, 2, dtype=torch.double)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    weights = torch.randn_like(x)
    attack = HighConfidenceAttack(steps=3, confidence=0.99, step_clip=0.02, slope=slope, differentiable=True)
    with torch.no_grad():
        x_adv = attack.toward(model, x, target)
        assert (model(x_adv).softmax(1).gather(1, target[:, None]) < 0.99).all()  # never stops here
    params = list(model.parameters())
    grads = torch.autograd.grad(attack_loss(model, attack, x, target, weights), params)
    flat = torch.cat([g.flatten() for g in grads])
    assert flat.isfinite().all() and flat.abs().sum() > 0
    if slope > 1:   # the sigmoid term vanishes away from the threshold: the exact gradient
        direction = [torch.randn_like(p) for p in params]
        h = 1e-6
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(h * d)
            up = attack_loss(model, attack, x, target, weights)
            for p, d in zip(params, direction):
                p.sub_(2 * h * d)
            down = attack_loss(model, attack, x, target, weights)
            for p, d in zip(params, direction):
                p.add_(h * d)
        numeric = (up - down) / (2 * h)
        analytic = sum((g * d).sum() for g, d in zip(grads, direction))
        assert torch.allclose(analytic, numeric, rtol=1e-4, atol=1e-8), (analytic, numeric)


def test_high_confidence_attack_reaches_the_requested_confidence(trained_digits_cnn, digits):
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    target = (y + 1) % 10
    x_adv = HighConfidenceAttack(steps=50, confidence=0.9, targeted=True)(trained_digits_cnn, x, target)
    with torch.no_grad():
        p = trained_digits_cnn(x_adv).softmax(1).gather(1, target[:, None]).squeeze(1)
    assert (p >= 0.9 - 1e-3).float().mean() >= 0.95
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_high_confidence_attack_as_a_min_norm_attack_leaves_the_model_alone(trained_bn_net, digits):
    _, _, x, y = digits
    model = trained_bn_net.train()
    state = copy.deepcopy(model.state_dict())
    x_adv = HighConfidenceAttack(steps=20, step_clip=0.1)(model, x[:64], y[:64])
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y[:64]
    unchanged = (x_adv == x[:64]).flatten(1).all(1)
    assert fooled.float().mean() > 0.5 and torch.equal(unchanged, ~fooled)
    with pytest.raises(ValueError, match="confidence must be in"):
        HighConfidenceAttack(confidence=1.0)


def tiny_defense(**kwargs):
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    critic = Critic(num_classes=3, input_shape=(1, 2, 2), hidden=8, input_noise=0.0)
    return AdversaryCritic(classifier, critic, HighConfidenceAttack(steps=2, differentiable=True), **kwargs)


def test_gradient_penalty_is_taken_at_real_and_adversarial_points_separately():
    defense = tiny_defense(gradient_penalty=10.0)
    x, x_adv = torch.rand(5, 1, 2, 2), torch.rand(5, 1, 2, 2)
    y, t = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1, 2, 0, 2, 0])
    loss, accuracy = defense.critic_loss(x, y, x_adv, t)

    def penalty(points, labels):
        norms = []
        for point, label in zip(points, labels):
            point = point[None].clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(defense.critic(point, label[None]).sum(), point)
            norms.append(grad.pow(2).sum())
        return torch.stack(norms).mean()

    real, fake = defense.critic(x, y), defense.critic(x_adv, t)
    expected = (F.binary_cross_entropy_with_logits(real, torch.ones(5))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros(5))
                + 10.0 * (penalty(x, y) + penalty(x_adv, t)))
    assert torch.allclose(loss, expected, atol=1e-6)
    assert accuracy == torch.cat([real > 0, fake < 0]).float().mean()


def test_cycle_term_vanishes_when_the_way_back_is_already_confident():
    defense = tiny_defense()
    x = torch.rand(4, 1, 2, 2)
    logits = defense(x)
    y = logits.argmax(1)
    defense.class_confidence.fill_(0.01)          # any prediction is already confident enough
    parts = defense.classifier_loss(x, y, logits, x, y)
    assert parts["cycle"] == 0
    defense.class_confidence.fill_(0.999)
    parts = defense.classifier_loss(x, y, logits, x, (y + 1) % 3)
    assert parts["cycle"] > 0 and parts["loss"] > parts["nll"]


def test_each_player_is_updated_only_by_its_own_optimizer(tmp_path):
    defense = tiny_defense(pretrain_epochs=0)
    opt_f, opt_d = defense.configure_optimizers()[0]
    def ids(params):
        return {id(p) for p in params}

    assert ids(p for g in opt_f.param_groups for p in g["params"]) == ids(defense.model.parameters())
    assert ids(p for g in opt_d.param_groups for p in g["params"]) == ids(defense.critic.parameters())
    x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    reference = copy.deepcopy(defense)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(defense, DataLoader(TensorDataset(x, y), batch_size=8))
    # replay the critic's step alone: the classifier's step must not have moved the critic
    logits = reference(x)
    reference.update_confidence(logits, y)
    t = reference.targets(logits, y)
    x_adv = reference.attack.toward(reference.model, x, t, reference.class_confidence[t]).detach()
    opt_d_ref = reference.configure_optimizers()[0][1]
    loss, _ = reference.critic_loss(x, y, x_adv, t)
    loss.backward()
    opt_d_ref.step()
    for mine, theirs in zip(defense.critic.parameters(), reference.critic.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-6)
    moved = [not torch.equal(a, b) for a, b in zip(defense.model.parameters(), reference.model.parameters())]
    assert any(moved)


def test_bad_critic_settings_are_rejected():
    classifier, critic = TinyBNNet(), Critic(num_classes=10, input_shape=(1, 8, 8), hidden=8)
    with pytest.raises(ValueError, match="differentiable: true"):
        AdversaryCritic(classifier, critic, HighConfidenceAttack())
    with pytest.raises(ValueError, match="critic has 3 outputs"):
        AdversaryCritic(classifier, Critic(num_classes=3, input_shape=(1, 8, 8), hidden=8))
    with pytest.raises(ValueError, match="target must be"):
        AdversaryCritic(classifier, critic, target="random")


def test_without_cycle_weight_the_way_back_is_not_attacked():
    defense = tiny_defense()
    defense.cycle_weight = 0.0
    x = torch.rand(4, 1, 2, 2)
    logits = defense(x)
    y = logits.argmax(1)
    calls = []
    toward = defense.attack.toward
    defense.attack.toward = lambda *args: calls.append(args) or toward(*args)
    parts = defense.classifier_loss(x, y, logits, x, (y + 1) % 3)
    assert not calls and "cycle" not in parts
    expected = parts["nll"] + defense.adv_weight * parts["adversarial"]
    assert parts["loss"].item() == pytest.approx(expected.item())
