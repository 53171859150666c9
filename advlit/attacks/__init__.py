"""Adversarial attacks in pure torch: ``attack(model, x, y) -> x_adv``."""

from advlit.attacks.apgd import APGD, APGDT
from advlit.attacks.base import Attack, FixedBudgetAttack, MinNormAttack, model_state_guard
from advlit.attacks.confidence import HighConfidenceAttack
from advlit.attacks.cw import CarliniWagnerL2
from advlit.attacks.deepfool import DeepFool
from advlit.attacks.kl_pgd import KLPGD
from advlit.attacks.path import AdversarialPath, PathAttack
from advlit.attacks.pdgd import PDGD, PDPGD
from advlit.attacks.peers import TorchattacksBudget, TorchattacksMinNorm
from advlit.attacks.pgd import FGSM, PGD
from advlit.attacks.randomness import SampleRNG
from advlit.attacks.square import Square

__all__ = ["APGD", "APGDT", "FGSM", "KLPGD", "PDGD", "PDPGD", "PGD", "AdversarialPath", "Attack",
           "CarliniWagnerL2", "DeepFool", "FixedBudgetAttack", "HighConfidenceAttack", "MinNormAttack",
           "PathAttack", "SampleRNG", "Square",
           "TorchattacksBudget", "TorchattacksMinNorm", "model_state_guard"]
