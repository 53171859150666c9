"""The inner maximization of TRADES (Zhang et al. 2019): PGD on KL(f(x) || f(x'))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.geometry import clamp_to_box
from advlit.attacks.pgd import PGD, Objective
from advlit.attacks.randomness import SampleRNG


class KLPGD(PGD):
    """PGD that maximizes KL(softmax f(x) || softmax f(x')) over x' in the ball, started at
    x + ``init_std`` * N(0, I) (TRADES uses 0.001). Labels are not used.

    Parameters
    ----------
    norm : {"linf", "l2"}, default "linf"
        The threat model's norm.
    eps : float
        The budget, in [0, 1] pixel scale.
    steps : int, default 10
        Gradient steps.
    step_size : float, optional
        Length of each step (default 2.5 * eps / steps).
    init_std : float, default 0.001
        Standard deviation of the Gaussian start around x.
    **kwargs
        The other parameters of :class:`~advlit.attacks.PGD` (``restarts``, ``model_mode``, ...).
    """

    supports_targeted = False

    def __init__(self, *, norm: str = "linf", eps: float, steps: int = 10,
                 step_size: float | None = None, init_std: float = 0.001, **kwargs) -> None:
        super().__init__(norm=norm, eps=eps, steps=steps, step_size=step_size, random_start=True, **kwargs)
        self.init_std = init_std

    def _start(self, x: torch.Tensor, rng: SampleRNG, restart: int) -> torch.Tensor:
        return clamp_to_box(x + self.init_std * rng.normal(restart, tuple(x.shape[1:]), x.dtype))

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Objective:
        with torch.no_grad():
            clean = F.log_softmax(model(x), dim=1)
        return lambda points: F.kl_div(F.log_softmax(model(points), dim=1), clean, log_target=True,
                                       reduction="none").sum(dim=1)
