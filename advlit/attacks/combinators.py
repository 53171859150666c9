"""Attacks made of attacks: the union of threat models of mixed-norm adversarial training
(MAT-Max and MAT-Rand, Maini et al. 2020, "Adversarial robustness against the union of
multiple perturbation models") as plain attacks, so ``AdversarialTraining`` trains on them.

Each sub-attack runs under its own guard (its ``model_mode``) with per-sample keys forked from
the combinator's (:meth:`~advlit.attacks.randomness.SampleRNG.fork`), so the combination is as
reproducible as its parts. In an evaluation suite, list the attacks themselves instead: the
suite already takes the pointwise worst case per norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import Attack
from advlit.attacks.randomness import SampleRNG


class _Combinator(Attack):
    supports_targeted = False  # the sub-attacks carry their own targeted flags

    def __init__(self, *, attacks: list[Attack], **kwargs) -> None:
        super().__init__(**kwargs)
        self.attacks = list(attacks)

    def validate(self) -> None:
        super().validate()
        if len(self.attacks) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 attacks, got {len(self.attacks)}")
        if any(a.differentiable for a in self.attacks):
            raise ValueError(f"{type(self).__name__} combines non-differentiable attacks only")

    def run(self, j: int, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        attack = self.attacks[j]
        return attack.guarded(attack.perturb, model, x, y, rng=rng.fork(j)).detach()


class WorstOf(_Combinator):
    """Per sample, the example of the attack with the highest cross-entropy (MAT-Max). Costs
    every attack plus one forward pass each."""

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        candidates = torch.stack([self.run(j, model, x, y, rng) for j in range(len(self.attacks))])
        with torch.no_grad():
            losses = torch.stack([F.cross_entropy(model(c), y, reduction="none") for c in candidates])
        return candidates[losses.argmax(dim=0), torch.arange(x.shape[0], device=x.device)]


class RandomOf(_Combinator):
    """One attack per batch, drawn uniformly (MAT-Rand): the cost of one attack. The draw comes
    from the first sample's key, so a keyed call repeats exactly."""

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        j = int(rng[:1].integers(0, len(self.attacks)).item())  # one host sync per batch
        return self.run(j, model, x, y, rng)
