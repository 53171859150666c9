"""Attacks made of attacks: the union of threat models of mixed-norm adversarial training
(MAT-Max and MAT-Rand, Maini et al. 2020, "Adversarial robustness against the union of
multiple perturbation models") as plain attacks, so ``AdversarialTraining`` trains on them;
and :class:`WithinEps`, a min-norm attack as a fixed-budget stage of an evaluation suite.

Each sub-attack runs under its own guard (its ``model_mode``) with per-sample keys forked from
the combinator's (:meth:`~advlit.attacks.randomness.SampleRNG.fork`), so the combination is as
reproducible as its parts. In an evaluation suite, list the attacks themselves instead: the
suite already takes the pointwise worst case per norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import Attack, FixedBudgetAttack, MinNormAttack
from advlit.attacks.geometry import batch_view
from advlit.attacks.norms import lp_norm
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
    every attack plus one forward pass each.

    Parameters
    ----------
    attacks : list of Attack
        At least two non-differentiable attacks.
    **kwargs
        ``model_mode`` of :class:`~advlit.attacks.Attack`.
    """

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        candidates = torch.stack([self.run(j, model, x, y, rng) for j in range(len(self.attacks))])
        with torch.no_grad():
            losses = torch.stack([F.cross_entropy(model(c), y, reduction="none") for c in candidates])
        return candidates[losses.argmax(dim=0), torch.arange(x.shape[0], device=x.device)]


class RandomOf(_Combinator):
    """One attack per batch, drawn uniformly (MAT-Rand): the cost of one attack. The draw comes
    from the first sample's key, so a keyed call repeats exactly.

    Parameters
    ----------
    attacks : list of Attack
        At least two non-differentiable attacks.
    **kwargs
        ``model_mode`` of :class:`~advlit.attacks.Attack`.
    """

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        j = int(rng[:1].integers(0, len(self.attacks)).item())  # one host sync per batch
        return self.run(j, model, x, y, rng)


class WithinEps(FixedBudgetAttack):
    """A min-norm ``attack`` as a fixed-budget one: per sample, the point it found where that
    is within ``eps`` of x, else x. In a cascaded suite it therefore runs only on the points
    still standing (the standard suite's min-norm stage, AutoAttack's FAB-T in kind), at the
    cost of the radius statistics a min-norm attack listed on its own would give. Its search
    leaves the ball, so the suite's silent-success check does not read its path, and where it
    fails it returns x, so the suite's gradient and extra-steps probes do not start there.

    Parameters
    ----------
    attack : MinNormAttack
        The min-norm attack (its norm is this attack's norm).
    eps : float
        The budget, in [0, 1] pixel scale.
    **kwargs
        ``model_mode`` of :class:`~advlit.attacks.Attack`.
    """

    stays_in_ball = False
    returns_search_end = False

    def __init__(self, *, attack: MinNormAttack, eps: float, **kwargs) -> None:
        super().__init__(norm=getattr(attack, "norm", "l2"), eps=eps, **kwargs)
        self.attack = attack

    def validate(self) -> None:
        if not isinstance(self.attack, MinNormAttack):
            raise ValueError(f"WithinEps wraps a min-norm attack (PDGD, PDPGD, FMN, ...), got "
                             f"{type(self.attack).__name__}; list fixed-budget attacks directly")
        super().validate()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        attack = self.attack if self.attack.targeted == self.targeted else self.attack.replace(
            targeted=self.targeted)
        x_adv = attack.guarded(attack.perturb, model, x, y, rng=rng.fork(0)).detach()
        within = lp_norm(x_adv - x, self.norm) <= self.eps
        return torch.where(batch_view(within, x), x_adv, x)
