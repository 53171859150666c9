"""Noise-injection layers: Gaussian input noise at inference (Araujo et al. 2020, "Advocating
for multiple defense strategies against adversarial examples") and Parametric Noise Injection
(Rakin, He & Fan 2019, "Parametric noise injection", eq. 2-3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class NoisyInput(nn.Module):
    """f(x + eta), eta ~ N(0, sigma^2 I), with the logits averaged over ``num_samples`` draws
    (one batched pass). Noise is added at inference (``at_inference``) and, with
    ``at_training``, also in train mode. ``model`` builds the wrapped classifier from
    ``num_classes`` (a class such as ``LeNet5`` or a callable), so the CLI link to
    ``num_classes`` reaches it.

    Parameters
    ----------
    num_classes : int
        Output classes (the CLI links it from the data).
    model : Callable[[int], nn.Module]
        Builds the wrapped classifier from ``num_classes`` (a class path in YAML).
    sigma : float, default 0.1
        Standard deviation of the Gaussian input noise, in [0, 1] pixel scale.
    num_samples : int, default 1
        Noise draws averaged per forward pass.
    at_training : bool, default True
        Add noise in train mode.
    at_inference : bool, default True
        Add noise in eval mode.
    """

    def __init__(self, num_classes: int, model: Callable[[int], nn.Module], sigma: float = 0.1,
                 num_samples: int = 1, at_training: bool = True, at_inference: bool = True) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        if not (isinstance(num_samples, int) and num_samples >= 1):
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        self.model = model(num_classes)
        self.sigma, self.num_samples = sigma, num_samples
        self.at_training, self.at_inference = at_training, at_inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.at_training if self.training else self.at_inference) or self.sigma == 0:
            return self.model(x)
        k = self.num_samples
        noisy = x.repeat(k, *([1] * (x.dim() - 1)))
        logits = self.model(noisy + self.sigma * torch.randn_like(noisy))
        return logits.view(k, x.shape[0], -1).mean(dim=0)

    def extra_repr(self) -> str:
        return (f"sigma={self.sigma}, num_samples={self.num_samples}, "
                f"at_training={self.at_training}, at_inference={self.at_inference}")


class ParametricNoise(nn.Module):
    """Adds alpha * eta to a tensor t, eta ~ N(0, std(t)^2) with std(t) not differentiated
    (PNI eq. 2); ``alpha`` is a trainable scalar per layer (init 0.25, as the paper). Noise
    is on in train mode, and in eval mode when ``inference_noise`` (the paper keeps it on).

    Parameters
    ----------
    alpha : float, default 0.25
        Initial noise scale (trainable).
    inference_noise : bool, default True
        Keep the noise on in eval mode.
    """

    def __init__(self, alpha: float = 0.25, inference_noise: bool = True) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.inference_noise = inference_noise

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not (self.training or self.inference_noise):
            return t
        return t + self.alpha * t.detach().std() * torch.randn_like(t)


class PNIConv2d(nn.Conv2d):
    """Conv2d whose weight gets parametric noise at every forward pass (PNI-W)."""

    def __init__(self, *args, inference_noise: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight_noise = ParametricNoise(inference_noise=inference_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight_noise(self.weight), self.bias)


class PNILinear(nn.Linear):
    """Linear layer whose weight gets parametric noise at every forward pass (PNI-W)."""

    def __init__(self, *args, inference_noise: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight_noise = ParametricNoise(inference_noise=inference_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_noise(self.weight), self.bias)


def conv_layer(pni: bool) -> type[nn.Conv2d]:
    """The convolution class of a network: ``PNIConv2d`` for NoiseNet variants."""
    return PNIConv2d if pni else nn.Conv2d


def linear_layer(pni: bool) -> type[nn.Linear]:
    return PNILinear if pni else nn.Linear
