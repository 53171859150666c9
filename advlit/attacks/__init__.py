"""Adversarial attacks in pure torch: ``attack(model, x, y) -> x_adv``."""

from advlit.attacks.base import Attack, FixedBudgetAttack, model_state_guard
from advlit.attacks.pgd import FGSM, PGD

__all__ = ["Attack", "FixedBudgetAttack", "FGSM", "PGD", "model_state_guard"]
