"""Attack base classes and the guard that leaves the attacked model exactly as it was.

Contract (docs/design.md): ``attack(model, x, y) -> x_adv`` with the shape, dtype and device of
``x``; images live in [0, 1]; ``targeted=True`` makes ``y`` the target class. The model's
training flags, parameters, ``.grad`` and BatchNorm running statistics are unchanged
afterwards, and the model runs in eval mode unless ``model_mode="train"``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advlit.attacks.geometry import batch_view
from advlit.attacks.losses import adversarial
from advlit.attacks.norms import Norm, get_norm
from advlit.attacks.randomness import SampleRNG

ModelMode = Literal["eval", "train"]


@contextlib.contextmanager
def model_state_guard(model: nn.Module, mode: ModelMode = "eval", freeze: bool = True) -> Iterator[None]:
    """Run ``model`` in ``mode`` and restore every module's own training flag afterwards.

    With ``freeze=True`` parameters stop requiring gradients for the duration, so no graph
    is built over them and their ``.grad`` cannot change. In train mode the BatchNorm
    running statistics that the forward passes update are restored on exit.

    Parameters
    ----------
    model : nn.Module
        The model to guard.
    mode : {"eval", "train"}, default "eval"
        The mode it runs in inside the block.
    freeze : bool, default True
        Parameters stop requiring gradients inside the block.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"unknown model mode {mode!r}; use 'eval' or 'train'")
    flags = [(m, m.training) for m in model.modules()]
    frozen = [p for p in model.parameters() if p.requires_grad] if freeze else []
    saved_stats = []
    if mode == "train":
        saved_stats = [(b, b.detach().clone()) for m in model.modules()
                       if isinstance(m, nn.modules.batchnorm._NormBase) for b in m.buffers()]
    model.train(mode == "train")
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for buf, value in saved_stats:
                buf.copy_(value)


def check_images(x: torch.Tensor, box: bool = True) -> None:
    """Attack inputs must be floating-point images in [0, 1] (``box``) without NaN (one host
    sync)."""
    if not x.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got dtype {x.dtype}; convert uint8 "
                         "batches with x.float() / 255")
    if x.numel() == 0:
        return
    nan, low, high = torch.stack([x.isnan().any(), x.min() < 0, x.max() > 1]).tolist()
    low, high = low and box, high and box
    if nan:
        raise ValueError("images contain NaN pixels; clean the data before attacking")
    if low or high:
        raise ValueError(f"images must lie in [0, 1], got values in [{x.min().item():g}, "
                         f"{x.max().item():g}]; divide 0-255 images by 255 and keep any "
                         "mean/std normalization inside the model")


@dataclass(frozen=True)
class Range:
    """The interval a real hyper-parameter must lie in: ``low``/``high`` (None: unbounded on
    that side), ``bounds`` "()", "[)", "(]" or "[]" (open or closed ends); ``optional``: None
    is allowed too (a default chosen by the attack)."""

    low: float | None = None
    high: float | None = None
    bounds: str = "()"
    optional: bool = False

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {self.bounds[0]}{self.low:g}, {self.high:g}{self.bounds[1]}"
        elif self.low is not None:
            text = f"{'>=' if self.bounds[0] == '[' else '>'} {self.low:g}"
        else:
            text = f"{'<=' if self.bounds[1] == ']' else '<'} {self.high:g}"
        return text + (" or None" if self.optional else "")

    def check(self, name: str, value) -> None:
        if value is None and self.optional:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if ok and self.low is not None:
            ok = value >= self.low if self.bounds[0] == "[" else value > self.low
        if ok and self.high is not None:
            ok = value <= self.high if self.bounds[1] == "]" else value < self.high
        if not ok:
            raise ValueError(f"{name} must be {self}, got {value!r}")


POSITIVE = Range(0)
NON_NEGATIVE = Range(0, bounds="[)")
FRACTION = Range(0, 1, "(]")  # in (0, 1]
OPEN_UNIT = Range(0, 1)  # in (0, 1)


@functools.cache
def literal_options(cls: type) -> dict[str, tuple]:
    """The enumerated (``Literal``) constructor parameters of ``cls`` and its parents: name ->
    allowed values (None among them where the annotation allows None)."""
    options: dict[str, tuple] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for name, hint in typing.get_type_hints(inspect.unwrap(init)).items():
            args = [hint] if typing.get_origin(hint) is Literal else [
                a for a in typing.get_args(hint) if typing.get_origin(a) is Literal or a is type(None)]
            if any(typing.get_origin(a) is Literal for a in args):
                options[name] = tuple(v for a in args for v in (typing.get_args(a) if a is not type(None)
                                                              else (None,)))
    return options


class Attack:
    """Base class: validates the hyper-parameters once constructed and wraps :meth:`perturb`
    in the guard.

    Subclasses implement ``perturb(model, x, y, rng)`` and may assume gradients are enabled,
    inference mode is off and ``x`` is an ordinary (autograd-capable) tensor. ``rng`` is a
    :class:`~advlit.attacks.randomness.SampleRNG`, the only source of an attack's randomness.
    A subclass's constructor stores its hyper-parameters and passes the rest to its parent as
    ``**kwargs``; :meth:`validate` runs once, after the most-derived constructor, so no
    constructor calls it.

    Calling ``attack(model, x, y, index=idx, seed=s)`` with the samples' dataset indices keys
    that randomness per sample, so the result for a sample never depends on its batch or on
    the number of processes, and the attack draws nothing from the global RNG (a randomized
    model still draws its own noise from it; the evaluation engine restores it afterwards).
    Without ``index`` (inside training) the keys are one draw from the global RNG, on first
    use, so every training step gets fresh randomness.

    Parameters
    ----------
    targeted : bool, default False
        ``y`` is the target class: succeed when the model predicts it.
    model_mode : {"eval", "train"}, default "eval"
        The mode the model runs in during the attack (restored afterwards).
    differentiable : bool, default False
        Keep the graph from the model's parameters to ``x_adv`` (for defenses that
        back-propagate through their attack).
    """

    supports_targeted = True  # ``targeted=True`` makes y the target class
    boxed = True  # inputs and outputs are images in [0, 1]
    single_step = False  # one gradient step (FGSM): the suite checks it is not the strongest
    gradient_free = False  # uses no gradients (Square): the suite's check against masking
    stays_in_ball = True  # every point it queries is within its eps (the silent-success check)
    returns_search_end = True  # an unbroken point is where its search ended (the suite probes there)
    counts: tuple[str, ...] = ()  # hyper-parameters that must be integers >= 1 (with the parents')
    ranges: dict[str, Range] = {}  # real hyper-parameters and their intervals (with the parents')

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__ and getattr(cls.__init__, "validates", False):
            return  # inherits a constructor that already validates
        init = cls.__init__

        @functools.wraps(init)
        def validated_init(self, *args, **kw):
            init(self, *args, **kw)
            if type(self).__init__ is validated_init:  # the most-derived constructor is done
                self.validate()

        validated_init.validates = True
        cls.__init__ = validated_init

    def __init__(self, *, targeted: bool = False, model_mode: ModelMode = "eval",
                 differentiable: bool = False) -> None:
        self.targeted = targeted
        self.model_mode = model_mode
        self.differentiable = differentiable

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: SampleRNG) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        x_adv = self.guarded(self.perturb, model, x, y, index, seed)
        return x_adv if self.differentiable else x_adv.detach()

    def guarded(self, run: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                index: torch.Tensor | None = None, seed: int = 0, rng: SampleRNG | None = None):
        """``run(model, x, y, rng)`` with checked inputs, autograd on and the model guarded:
        the one way every attack touches a model. ``rng`` (a combinator's fork of its own)
        replaces the keys from ``index`` and ``seed``; such a nested call skips the input check
        (and its host sync), which the outer call has made."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if index is not None and index.shape[0] != x.shape[0]:
            raise ValueError(f"index has {index.shape[0]} entries for {x.shape[0]} samples")
        if rng is None:
            check_images(x, box=self.boxed)
            rng = (SampleRNG(n=x.shape[0], device=x.device) if index is None
                   else SampleRNG.from_index(index.to(x.device), seed))
        # Lightning evaluates under inference mode; attacks need autograd, so switch it
        # off here (and clone, since inference tensors cannot be saved for backward).
        with torch.inference_mode(False), torch.enable_grad():
            if not self.differentiable:
                x, y = x.detach().clone(), y.clone()
            with model_state_guard(model, self.model_mode, freeze=not self.differentiable):
                return run(model, x, y, rng)

    def is_adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample: classified as the target ``y`` (targeted), else not as ``y``."""
        return adversarial(logits, y, self.targeted)

    def replace(self, **changes) -> Attack:
        """A copy of this attack with some hyper-parameters changed (validated again)."""
        new = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(self, key):
                raise ValueError(f"{type(self).__name__} has no hyper-parameter {key!r}")
            setattr(new, key, value)
        new.validate()
        return new

    def validate(self) -> None:
        """Check hyper-parameters; raise ValueError naming the bad value. Subclasses extend it
        (calling ``super().validate()``)."""
        for name, allowed in literal_options(type(self)).items():
            if hasattr(self, name) and getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.targeted and not self.supports_targeted:
            raise ValueError(f"{type(self).__name__} has no targeted mode; use targeted: false")
        for cls in reversed(type(self).__mro__):
            for name in vars(cls).get("counts", ()):
                check_positive_int(name, getattr(self, name))
            for name, interval in vars(cls).get("ranges", {}).items():
                interval.check(name, getattr(self, name))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class NormAttack(Attack):
    """An attack in a ``norm`` (a name from :mod:`advlit.attacks.norms`). ``norms`` lists the
    norms the algorithm is written for (None: any norm with the ``hooks`` it calls).

    Parameters
    ----------
    norm : str
        The norm's name ("linf", "l2", "l1", ...).
    **kwargs
        The parameters of :class:`Attack`.
    """

    norms: tuple[str, ...] | None = None
    hooks: tuple[str, ...] = ()

    def __init__(self, *, norm: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm = norm

    @property
    def geometry(self) -> Norm:
        """The :class:`~advlit.attacks.norms.Norm` object of ``norm``."""
        return get_norm(self.norm)

    def validate(self) -> None:
        super().validate()
        geometry = self.geometry.require(*self.hooks, by=type(self).__name__)
        if self.norms is not None and geometry.name not in self.norms:
            raise ValueError(f"{type(self).__name__} supports norm in {self.norms}, got {self.norm!r}")


class FixedBudgetAttack(NormAttack):
    """An attack that searches inside the ``norm`` ball of radius ``eps`` around x.

    Parameters
    ----------
    norm : str, default "linf"
        The threat model's norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    **kwargs
        The parameters of :class:`Attack`.
    """

    hooks = ("project",)

    def __init__(self, *, norm: str = "linf", eps: float, **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)
        self.eps = eps

    def validate(self) -> None:
        super().validate()
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")


class MinNormAttack(NormAttack):
    """An attack that looks for the smallest ``norm`` perturbation that changes the decision.

    Returns, per sample, the smallest adversarial example it found and ``x`` unchanged where
    it found none. ``norms`` lists the norms a subclass supports.

    Parameters
    ----------
    norm : str, default "l2"
        The norm whose smallest perturbation is sought.
    **kwargs
        The parameters of :class:`Attack`.
    """

    norms: tuple[str, ...] | None = ("l2",)

    def __init__(self, *, norm: str = "l2", **kwargs) -> None:
        super().__init__(norm=norm, **kwargs)

    def validate(self) -> None:
        super().validate()
        refine = getattr(self, "refine_steps", 0)  # the final bisection's forward passes
        if not (isinstance(refine, int) and refine >= 0):
            raise ValueError(f"refine_steps must be an integer >= 0, got {refine!r}")

    def boundary_search(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        x_adv: torch.Tensor, found: torch.Tensor, steps: int) -> torch.Tensor:
        """Bisection on the path from x to each ``found`` x_adv along which the norm shrinks
        (``steps`` forward passes; :meth:`Norm.towards_zero`: the segment, in L0 the largest
        entries kept): the closest point of the path still adversarial. The path stays in the
        box and bisection only moves to points checked adversarial, so the result is never worse."""
        low = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        high = torch.ones_like(low)
        r, towards_zero = x_adv - x, self.geometry.towards_zero
        with torch.no_grad():
            for _ in range(steps):
                mid = (low + high) / 2
                adversarial = self.is_adversarial(model(x + towards_zero(r, mid)), y)
                high = torch.where(adversarial, mid, high)
                low = torch.where(adversarial, low, mid)
        return torch.where(batch_view(found, x), x + towards_zero(r, high), x_adv)


def check_positive_int(name: str, value) -> None:
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
