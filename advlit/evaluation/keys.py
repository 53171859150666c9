"""The typed key of every number an evaluation reports, and the one function that turns a key
into a metric name for a logger. Names are only ever formatted, never parsed back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Metric = Literal[
    "clean_acc",  # share of points classified correctly
    "robust_acc",  # of an attack (``attack``) or the worst case of a norm (``attack`` None) at ``eps``
    "deployed_clean_acc", "deployed_robust_acc",  # a randomized model's single passes
    "indicator",  # share of points a per-sample check (``check``) found
    "sanity",  # 1 if the check (``check``) fired, else 0
    "success_rate", "median_norm", "mean_norm", "rho_adv",  # a min-norm attack's radii
    "grads_per_image", "forwards_per_image", "seconds",  # an attack's cost
]
_BARE = {"clean_acc": "clean_acc", "deployed_clean_acc": "deployed/clean_acc",
         "deployed_robust_acc": "deployed/robust_acc"}


@dataclass(frozen=True)
class Key:
    """One number of an evaluation: ``metric`` of an ``attack`` (of norm ``norm``) at ``eps``,
    or of a ``check``. The worst case over the attacks of a norm has ``attack`` None."""

    metric: Metric
    attack: str | None = None
    norm: str | None = None
    eps: float | None = None
    check: str | None = None

    @property
    def subject(self) -> str:
        """What the number is about: the attack, ``worst_{norm}`` or the check."""
        if self.check is not None:
            return self.check
        return self.attack if self.attack is not None else f"worst_{self.norm}"

    def name(self, prefix: str = "", tag: str = "") -> str:
        """The metric name under which loggers see this number, e.g.
        ``test/robust_acc/apgd_ce_eot8/eps=0.3`` for prefix ``test/`` and tag ``_eot8``."""
        if self.metric in _BARE:
            return f"{prefix}{_BARE[self.metric]}{tag}"
        name = f"{prefix}{self.metric}/{self.subject}{tag}"
        return name if self.eps is None else f"{name}/eps={self.eps:g}"
