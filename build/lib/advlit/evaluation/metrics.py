"""Min-norm radii as a torchmetrics object, so that DDP reduction is exact.

A min-norm attack gives every test point a *radius* (:class:`~advlit.evaluation.suite.AttackSuite`):
0 if it is misclassified clean, the norm of the smallest adversarial perturbation found, or
+inf if none was found. One run then yields the whole robust-accuracy curve: a point is robust
at eps iff radius > eps.
"""

from __future__ import annotations

import torch
from torchmetrics import CatMetric, Metric


def _ordered_mean(values: torch.Tensor) -> float:
    """Mean summed in sorted order (float64): independent of how processes split the data."""
    return values.double().sort().values.sum().item() / values.numel()


class RadiusStatistics(Metric):
    """Collects per-sample radii and relative norms ||r|| / ||x|| of one min-norm attack.

    ``compute()`` returns: ``robust_acc`` at each eps of ``eps_grid``; ``median_norm`` and
    ``mean_norm`` over points correctly classified and successfully attacked;
    ``success_rate`` (attacked successfully / correctly classified); ``rho_adv`` = mean
    ||r|| / ||x|| over correctly classified points with an adversarial example (thesis eq.
    3.20 / 4.9). All values are gathered from every process before reduction.
    """

    full_state_update = False

    def __init__(self, eps_grid: list[float]) -> None:
        super().__init__()
        self.eps_grid = list(eps_grid)
        self.radius = CatMetric(nan_strategy="disable")
        self.relative = CatMetric(nan_strategy="disable")

    def update(self, radius: torch.Tensor, relative: torch.Tensor) -> None:
        self.radius.update(radius)
        self.relative.update(relative)

    def compute(self) -> dict[str, float]:
        radius = torch.as_tensor(self.radius.compute()).flatten()
        relative = torch.as_tensor(self.relative.compute()).flatten()
        correct = radius > 0
        attacked = correct & radius.isfinite()
        out = {f"robust_acc/eps={eps:g}": (radius > eps).float().mean().item() for eps in self.eps_grid}
        out["success_rate"] = (attacked.sum() / correct.sum().clamp_min(1)).item()
        if attacked.any():
            out["median_norm"] = radius[attacked].median().item()
            out["mean_norm"] = _ordered_mean(radius[attacked])
            out["rho_adv"] = _ordered_mean(relative[attacked])
        return out

    def reset(self) -> None:
        super().reset()
        self.radius.reset()
        self.relative.reset()
