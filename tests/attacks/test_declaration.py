"""How an attack is declared: validation once after the most-derived constructor, counts and
capabilities as class attributes, signatures LightningCLI can read."""

import pytest
import torch
from jsonargparse import ArgumentParser

from advlit.attacks import APGDT, FGSM, KLPGD, PDPGD, PGD, DeepFool, FixedBudgetAttack


class Scaled(FixedBudgetAttack):
    """A new attack the way the README says to write one: no validate() call, no repeated
    parent arguments."""

    counts = ("repeats",)

    def __init__(self, *, eps: float, repeats: int = 1, scale: float = 1.0, **kwargs) -> None:
        super().__init__(eps=eps, **kwargs)
        self.repeats, self.scale = repeats, scale

    def validate(self) -> None:
        super().validate()
        if not 0 < self.scale <= 1:  # reads an attribute set after the parent's constructor
            raise ValueError(f"scale must be in (0, 1], got {self.scale!r}")

    def perturb(self, model, x, y, rng):
        return (x + self.scale * self.geometry.random_start(rng, 0, x, self.eps)).clamp(0, 1)


def test_validation_runs_once_after_the_most_derived_constructor(monkeypatch):
    calls = []
    original = Scaled.validate
    monkeypatch.setattr(Scaled, "validate", lambda self: calls.append(1) or original(self))
    Scaled(eps=0.1, scale=0.5)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="scale must be in"):
        Scaled(eps=0.1, scale=2.0)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        Scaled(eps=0.1, repeats=0)
    with pytest.raises(ValueError, match="eps must be >= 0"):  # the parent's checks still run
        Scaled(eps=-1.0)


def test_an_attack_without_a_constructor_of_its_own_is_validated_too():
    from advlit.attacks import Attack

    class Bare(Attack):
        def perturb(self, model, x, y, rng):
            return x

    with pytest.raises(ValueError, match="model_mode must be one of"):
        Bare(model_mode="test")


def test_a_new_attack_runs_under_the_guard(trained_digits_cnn, digits):
    _, _, x, y = digits
    x_adv = Scaled(eps=0.1, norm="l2")(trained_digits_cnn, x[:8], y[:8])
    assert (x_adv - x[:8]).flatten(1).norm(dim=1).max() <= 0.1 + 1e-6


def test_capabilities_are_class_attributes():
    assert FGSM.single_step and not PGD.single_step
    assert not APGDT.supports_targeted and not DeepFool.supports_targeted and PGD.supports_targeted
    with pytest.raises(ValueError, match="KLPGD has no targeted mode"):
        KLPGD(eps=0.1, targeted=True)


def test_lightning_cli_sees_the_real_parameters():
    """Subclasses pass the rest to the parent as **kwargs; jsonargparse follows them and drops
    what the subclass fixes (FGSM's steps, APGDT's loss)."""
    def parameters(cls):
        parser = ArgumentParser()
        parser.add_class_arguments(cls, "a")
        return {a.dest[2:] for a in parser._actions if a.dest.startswith("a.")}

    assert {"eps", "norm", "random_start", "targeted", "model_mode", "loss"} <= parameters(FGSM)
    assert "steps" not in parameters(FGSM) and "restarts" not in parameters(FGSM)
    assert {"preconditioner", "steps", "lr", "dual_lr", "targeted"} <= parameters(PDPGD)
    assert "loss" not in parameters(APGDT)


def test_attacks_hold_no_per_call_state(trained_digits_cnn, digits):
    _, _, x, y = digits
    attack = KLPGD(eps=0.1, steps=2)
    before = dict(vars(attack))
    attack(trained_digits_cnn, x[:8], y[:8])
    assert vars(attack) == before and torch.is_grad_enabled()


def test_ranges_and_literal_options_are_declared_not_hand_written():
    """``ranges`` beside ``counts`` and ``Literal`` annotations are checked by the base class,
    with one-line messages naming the value and what is allowed."""
    from typing import Literal

    from advlit.attacks.base import FRACTION, Range

    class Declared(FixedBudgetAttack):
        ranges = {"scale": FRACTION, "clip": Range(0, optional=True)}

        def __init__(self, *, eps: float, scale: float = 1.0, clip: float | None = None,
                     mode: Literal["sum", "max"] | None = None, **kwargs) -> None:
            super().__init__(eps=eps, **kwargs)
            self.scale, self.clip, self.mode = scale, clip, mode

    Declared(eps=0.1, scale=0.5, clip=None, mode="max")
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\], got 2"):
        Declared(eps=0.1, scale=2)
    with pytest.raises(ValueError, match="clip must be > 0 or None, got -1"):
        Declared(eps=0.1, clip=-1)
    with pytest.raises(ValueError, match=r"mode must be one of \('sum', 'max', None\), got 'mean'"):
        Declared(eps=0.1, mode="mean")
    with pytest.raises(ValueError, match="scale must be in"):
        Declared(eps=0.1).replace(scale=0.0)
