"""Adversarial training: FGSM / fast-AT / PGD (Madry et al. 2018; Wong et al. 2020) with a
fraction of natural batches; with a combinator attack (``WorstOf``, ``RandomOf``) it is
mixed-norm training over several threat models (MAT-Max, MAT-Rand; Maini et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from advlit.attacks import Attack
from advlit.defenses.base import RobustClassifier


class AdversarialTraining(RobustClassifier):
    """Minimize cross-entropy on adversarial examples of ``attack`` (min-max training).

    ``natural_ratio`` is the probability that a batch is trained on clean inputs instead
    (e.g. 0.05). ``clean_weight`` alpha mixes the clean loss into every batch:
    alpha CE(x) + (1 - alpha) CE(x_adv), Goodfellow et al. 2015's objective with alpha = 0.5
    (one more forward+backward on the clean batch). The attack generates examples on the
    eval-mode model by default; set ``model_mode: train`` on the attack to use the
    training-mode model (BatchNorm batch statistics, dropout) — its running statistics are
    restored either way. ``eps_warmup_epochs`` ramps the attack's ``eps`` (and an explicit
    ``step_size``) linearly from 0 to its value over that many epochs, step by step (the
    eps curriculum that lets a small network learn at MNIST Linf 0.3).

    Parameters
    ----------
    model : nn.Module
        The network.
    attack : Attack
        Generates the training examples (e.g. ``PGD(eps=0.3, steps=10)``; Madry et al. 2018).
    natural_ratio : float, default 0.0
        Probability, in [0, 1], that a batch is trained clean.
    clean_weight : float, default 0.0
        alpha in [0, 1): weight of the clean loss in every batch.
    eps_warmup_epochs : float, default 0.0
        Epochs over which eps ramps up linearly from 0 (0: none).
    **kwargs
        The optimizer, scheduler and speed options of :class:`RobustClassifier`.
    """

    def __init__(self, model: nn.Module, attack: Attack, natural_ratio: float = 0.0,
                 clean_weight: float = 0.0, eps_warmup_epochs: float = 0.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        if not 0.0 <= natural_ratio <= 1.0:
            raise ValueError(f"natural_ratio must be in [0, 1], got {natural_ratio!r}")
        if not 0.0 <= clean_weight < 1.0:
            raise ValueError(f"clean_weight must be in [0, 1) (1 would be plain training), "
                             f"got {clean_weight!r}")
        if not eps_warmup_epochs >= 0:
            raise ValueError(f"eps_warmup_epochs must be >= 0, got {eps_warmup_epochs!r}")
        if eps_warmup_epochs > 0 and not hasattr(attack, "eps"):
            raise ValueError(f"eps_warmup_epochs needs an attack with an eps; "
                             f"{type(attack).__name__} has none")
        self.attack = attack
        self.natural_ratio = natural_ratio
        self.clean_weight = clean_weight
        self.eps_warmup_epochs = eps_warmup_epochs

    def warmup_fraction(self) -> float:
        """The fraction of the attack's eps used at this training step (1 after warm-up)."""
        if self.eps_warmup_epochs == 0 or self._trainer is None or not self.trainer.training:
            return 1.0
        steps_per_epoch = max(1, self.trainer.num_training_batches // self.trainer.accumulate_grad_batches)
        return min(1.0, (self.global_step + 1) / (self.eps_warmup_epochs * steps_per_epoch))

    def adversarial_examples(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fraction = self.warmup_fraction()
        if fraction == 1.0:
            return self.attack(self, x, y)
        changes = {"eps": self.attack.eps * fraction}
        if getattr(self.attack, "step_size", None) is not None:
            changes["step_size"] = self.attack.step_size * fraction
        return self.attack.replace(**changes)(self, x, y)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Drawn on the CPU generator: no device sync, and saved in checkpoints.
        natural = self.natural_ratio > 0 and torch.rand(()).item() < self.natural_ratio
        if natural:
            return super().training_loss(x, y)
        loss, logits = super().training_loss(self.adversarial_examples(x, y), y)
        if self.clean_weight > 0:
            clean_loss, _ = super().training_loss(x, y)
            loss = self.clean_weight * clean_loss + (1 - self.clean_weight) * loss
        return loss, logits
