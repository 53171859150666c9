"""Thin adapters that let an evaluation suite run another library's attacks as ordinary
advlit attacks, to cross-check advlit in one run. Optional: install the peer yourself
(``pip install --no-deps torchattacks``; its torchvision requirement would replace torch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlit.attacks.base import FixedBudgetAttack, MinNormAttack
from advlit.attacks.randomness import SampleRNG


def _torchattacks(name: str, model: nn.Module, **options):
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError("this attack needs torchattacks: pip install --no-deps torchattacks") from err
    if not hasattr(torchattacks, name):
        raise ValueError(f"torchattacks has no attack {name!r}")
    return getattr(torchattacks, name)(model, **options)


class TorchattacksBudget(FixedBudgetAttack):
    """A fixed-budget torchattacks attack (``name`` e.g. "PGD", "APGD", "PGDL2"), called with
    ``eps`` plus ``options``; ``norm`` says which eps grid of the evaluation it joins."""

    def __init__(self, *, name: str, norm: str = "linf", eps: float,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(norm=norm, eps=eps)
        self.name, self.options = name, dict(options or {})
        self.validate()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        return _torchattacks(self.name, model, eps=self.eps, **self.options)(x, y)


class TorchattacksMinNorm(MinNormAttack):
    """A min-norm torchattacks attack (``name`` e.g. "DeepFool", "CW", "FAB") with
    ``options``; points it does not break come back unchanged."""

    norms = ("linf", "l2", "l1")

    def __init__(self, *, name: str, norm: str = "l2", options: dict[str, Any] | None = None) -> None:
        super().__init__(norm=norm)
        self.name, self.options = name, dict(options or {})
        self.validate()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        x_adv = _torchattacks(self.name, model, **self.options)(x, y)
        with torch.no_grad():
            fooled = self.is_adversarial(model(x_adv), y)
        return torch.where(fooled.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
