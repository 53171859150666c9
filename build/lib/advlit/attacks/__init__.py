"""Adversarial attacks in pure torch: ``attack(model, x, y) -> x_adv``."""

from advlit.attacks.apgd import APGD, APGDT
from advlit.attacks.base import Attack, FixedBudgetAttack, MinNormAttack, NormAttack, model_state_guard
from advlit.attacks.combinators import RandomOf, WithinEps, WorstOf
from advlit.attacks.confidence import HighConfidenceAttack
from advlit.attacks.cw import CarliniWagnerL2
from advlit.attacks.ddn import DDN
from advlit.attacks.deepfool import DeepFool
from advlit.attacks.fab import FABT
from advlit.attacks.fmn import FMN
from advlit.attacks.kl_pgd import KLPGD
from advlit.attacks.path import AdversarialPath, FlipSteps, PathAttack
from advlit.attacks.pdgd import PDGD, PDPGD
from advlit.attacks.peers import FoolboxMinNorm, TorchattacksBudget, TorchattacksMinNorm
from advlit.attacks.pgd import FGSM, PGD
from advlit.attacks.randomness import SampleRNG
from advlit.attacks.square import Square
from advlit.attacks.virtual import VirtualAdversarial

__all__ = ["APGD", "APGDT", "DDN", "FABT", "FGSM", "FMN", "KLPGD", "PDGD", "PDPGD", "PGD", "AdversarialPath",
           "Attack", "CarliniWagnerL2", "DeepFool", "FixedBudgetAttack", "FlipSteps", "FoolboxMinNorm",
           "HighConfidenceAttack", "MinNormAttack", "NormAttack", "PathAttack", "RandomOf", "SampleRNG",
           "Square", "TorchattacksBudget", "TorchattacksMinNorm", "VirtualAdversarial", "WithinEps",
           "WorstOf", "model_state_guard"]
