"""Defenses as LightningModules, all subclassing :class:`RobustClassifier`."""

from advlit.defenses.adversarial import AdversarialTraining
from advlit.defenses.base import RobustClassifier
from advlit.defenses.critic import AdversaryCritic
from advlit.defenses.linear import RobustLinearClassifier
from advlit.defenses.margin import MarginMaximization
from advlit.defenses.trades import TRADES
from advlit.defenses.vat import VirtualAdversarialTraining

__all__ = ["TRADES", "AdversarialTraining", "AdversaryCritic", "MarginMaximization",
           "RobustClassifier", "RobustLinearClassifier", "VirtualAdversarialTraining"]
