"""Defenses as LightningModules, all subclassing :class:`RobustClassifier`."""

from advlit.defenses.adversarial import AdversarialTraining, MixedNormAdversarialTraining
from advlit.defenses.base import RobustClassifier

__all__ = ["AdversarialTraining", "MixedNormAdversarialTraining", "RobustClassifier"]
