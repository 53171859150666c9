"""Thin adapters that let an evaluation suite run another library's attacks as ordinary
advlit attacks, to cross-check advlit in one run. Optional: install the peer yourself
(``pip install --no-deps torchattacks``; its torchvision requirement would replace torch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlit.attacks.base import FixedBudgetAttack, MinNormAttack
from advlit.attacks.geometry import batch_view
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
    ``eps`` plus ``options``; ``norm`` says which eps grid of the evaluation it joins.

    Parameters
    ----------
    name : str
        The torchattacks class.
    norm : str, default "linf"
        Its norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    options : dict, optional
        Further keyword arguments of the torchattacks class.
    """

    supports_targeted = False

    def __init__(self, *, name: str, norm: str = "linf", eps: float,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(norm=norm, eps=eps)
        self.name, self.options = name, dict(options or {})

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        return _torchattacks(self.name, model, eps=self.eps, **self.options)(x, y)


class _PeerMinNorm(MinNormAttack):
    """A peer library's min-norm attack ``name`` with ``options``; points it does not break
    come back unchanged (the min-norm contract)."""

    norms = ("linf", "l2", "l1", "l0")
    supports_targeted = False

    def __init__(self, *, name: str, norm: str = "l2", options: dict[str, Any] | None = None) -> None:
        super().__init__(norm=norm)
        self.name, self.options = name, dict(options or {})

    def run_peer(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        x_adv = self.run_peer(model, x, y)
        with torch.no_grad():
            fooled = self.is_adversarial(model(x_adv), y)
        return torch.where(batch_view(fooled, x), x_adv, x)


class TorchattacksMinNorm(_PeerMinNorm):
    """A min-norm torchattacks attack (``name`` e.g. "DeepFool", "CW", "FAB") with ``options``.

    Parameters
    ----------
    name : str
        The torchattacks class.
    norm : str, default "l2"
        The norm its radii are measured in.
    options : dict, optional
        Keyword arguments of the torchattacks class.
    """

    def run_peer(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _torchattacks(self.name, model, **self.options)(x, y)


class FoolboxMinNorm(_PeerMinNorm):
    """A min-norm Foolbox 3 attack (``name`` e.g. "L2FMNAttack", "LInfFMNAttack",
    "L1FMNAttack", "L0FMNAttack", "DDNAttack") with ``options``. ``pip install --no-deps foolbox eagerpy
    GitPython``.

    Parameters
    ----------
    name : str
        The Foolbox attack class.
    norm : str, default "l2"
        The norm its radii are measured in.
    options : dict, optional
        Keyword arguments of the Foolbox class.
    """

    def run_peer(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        try:
            import foolbox
        except ImportError as err:
            raise ImportError("this attack needs foolbox: "
                              "pip install --no-deps foolbox eagerpy GitPython gitdb smmap") from err
        if not hasattr(foolbox.attacks, self.name):
            raise ValueError(f"foolbox has no attack {self.name!r}")
        attack = getattr(foolbox.attacks, self.name)(**self.options)
        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        return attack.run(fmodel, x, foolbox.criteria.Misclassification(y))


AUTOATTACK_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}  # advlit's norm names -> AutoAttack's


def autoattack_adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str = "linf",
                           eps: float, version: str = "standard", batch_size: int = 500) -> torch.Tensor:
    """The adversarial examples of the AutoAttack reference (Croce & Hein 2020,
    ``pip install --no-deps pyautoattack``), run on ``x``'s device; the model is put in eval mode."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as err:
        raise ImportError("the AutoAttack reference needs: pip install --no-deps pyautoattack") from err
    if norm not in AUTOATTACK_NORMS:
        raise ValueError(f"AutoAttack supports norm in {tuple(AUTOATTACK_NORMS)}, got {norm!r}")
    model.eval()
    reference = AutoAttack(model, norm=AUTOATTACK_NORMS[norm], eps=eps, version=version, device=x.device,
                           seed=0)
    x_adv, _ = reference.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv


def autoattack_robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str = "linf",
                      eps: float, version: str = "standard", batch_size: int = 500) -> torch.Tensor:
    """Per-sample robustness under the AutoAttack reference (:func:`autoattack_adversarial`)."""
    x_adv = autoattack_adversarial(model, x, y, norm=norm, eps=eps, version=version, batch_size=batch_size)
    with torch.no_grad():
        return torch.cat([model(part).argmax(1) for part in x_adv.split(batch_size)]) == y
