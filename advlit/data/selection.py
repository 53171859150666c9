"""Which training points to mislabel: the selection strategies of Crafting Label Noise
(section 4). Each strategy sees the candidate pool (float images in [0, 1], labels and the
label each point would get) and returns ``budget`` distinct positions into that pool."""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import nn

from advlit.checkpoints import load_network

Features = Literal["pixels", "pca", "model"]


class SelectionStrategy:
    """Base class. ``select`` returns a long tensor of ``budget`` distinct pool positions."""

    def select(self, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor, budget: int,
               generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class RandomSelection(SelectionStrategy):
    """Uniformly random points (the baseline of every label-noise study)."""

    def select(self, x, y, targets, budget, generator):
        return torch.randperm(len(y), generator=generator)[:budget]


def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Inputs of the model's last ``nn.Linear`` layer (its penultimate-layer features)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            for chunk in x.split(batch_size):
                model(chunk)
    finally:
        handle.remove()
    return torch.cat(captured)


class _FeatureStrategy(SelectionStrategy):
    """Shared feature extraction: raw pixels, a PCA projection (scikit-learn) or the
    penultimate-layer features of a clean ``model`` loaded from ``checkpoint``."""

    def __init__(self, features: Features = "pixels", pca_components: int = 50,
                 model: nn.Module | None = None, checkpoint: str | None = None) -> None:
        if features not in ("pixels", "pca", "model"):
            raise ValueError(f"features must be 'pixels', 'pca' or 'model', got {features!r}")
        if features == "model" and model is None:
            raise ValueError("features='model' needs a clean `model` (and its `checkpoint`)")
        self.features, self.pca_components = features, pca_components
        self.model, self.checkpoint = model, checkpoint

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.features == "model":
            return penultimate_features(load_network(self.model, self.checkpoint), x)
        flat = x.flatten(1)
        if self.features == "pixels":
            return flat
        from sklearn.decomposition import PCA

        components = min(self.pca_components, *flat.shape)
        projected = PCA(n_components=components, random_state=0).fit_transform(flat.double().numpy())
        return torch.from_numpy(projected).float()


class GraphSelection(_FeatureStrategy):
    """Density heuristics on class graphs: points of one class are joined when closer than
    ``gamma`` (in ``norm``, on the chosen features). ``method="degree"`` greedily takes the
    highest-degree point and removes it from the graph (degrees updated); ``"dominating"``
    is the greedy dominating-set approximation: take the point whose closed neighbourhood
    covers the most points not yet covered.

    Parameters
    ----------
    gamma : float
        Distance below which two points of a class are joined, > 0.
    method : {"degree", "dominating"}, default "dominating"
        The greedy rule (see above).
    norm : {"l2", "linf", "l1"}, default "l2"
        The distance's norm.
    features : {"pixels", "pca", "model"}, default "pixels"
        What the distances or densities are computed on.
    pca_components : int, default 50
        Components of the PCA projection (``features="pca"``).
    model : nn.Module, optional
        A clean classifier whose penultimate-layer features are used (``features="model"``).
    checkpoint : str, optional
        Its weights.
    """

    def __init__(self, gamma: float, method: Literal["degree", "dominating"] = "dominating",
                 norm: Literal["l2", "linf", "l1"] = "l2", features: Features = "pixels",
                 pca_components: int = 50, model: nn.Module | None = None,
                 checkpoint: str | None = None) -> None:
        super().__init__(features, pca_components, model, checkpoint)
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        if method not in ("degree", "dominating"):
            raise ValueError(f"method must be 'degree' or 'dominating', got {method!r}")
        if norm not in ("l2", "linf", "l1"):
            raise ValueError(f"norm must be 'l2', 'linf' or 'l1', got {norm!r}")
        self.gamma, self.method, self.norm = gamma, method, norm

    def class_graphs(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(pool positions of a class, its boolean adjacency matrix without self-loops)."""
        features = self.embed(x)
        p = {"l2": 2.0, "linf": float("inf"), "l1": 1.0}[self.norm]
        graphs = []
        for label in y.unique():
            idx = (y == label).nonzero().squeeze(1)
            adjacency = torch.cdist(features[idx], features[idx], p=p) < self.gamma
            adjacency.fill_diagonal_(False)
            graphs.append((idx, adjacency))
        return graphs

    def select(self, x, y, targets, budget, generator):
        return greedy_selection(self.class_graphs(x, y), len(y), budget, self.method)


def greedy_selection(graphs: list[tuple[torch.Tensor, torch.Tensor]], n: int, budget: int,
                     method: str) -> torch.Tensor:
    """Greedy picks over disjoint graphs (positions, adjacency); see :class:`GraphSelection`."""
    gain = torch.zeros(n)
    block = torch.zeros(n, dtype=torch.long)
    local = torch.zeros(n, dtype=torch.long)
    covered = []
    for b, (idx, adjacency) in enumerate(graphs):
        # degree, plus the point itself for the closed neighbourhood of the dominating set
        gain[idx] = adjacency.sum(1).float() + (method == "dominating")
        block[idx], local[idx] = b, torch.arange(len(idx))
        covered.append(torch.zeros(len(idx), dtype=torch.bool))
    picked = []
    for _ in range(budget):
        v = int(gain.argmax())
        picked.append(v)
        idx, adjacency = graphs[block[v]]
        row = adjacency[local[v]].clone()
        if method == "degree":
            gain[idx] -= row.float()
        else:
            row[local[v]] = True
            newly = row & ~covered[block[v]]
            covered[block[v]] |= newly
            closed = adjacency[:, newly].float().sum(1) + newly.float()
            gain[idx] -= closed
        gain[v] = -float("inf")
    return torch.tensor(picked, dtype=torch.long)


def split_budget(y: torch.Tensor, budget: int) -> dict[int, int]:
    """Budget per class, proportional to class sizes (largest remainder)."""
    labels, counts = y.unique(return_counts=True)
    shares = counts.double() * budget / len(y)
    base = shares.floor().long()
    order = (shares - base).argsort(descending=True)
    base[order[: budget - int(base.sum())]] += 1
    return dict(zip(labels.tolist(), base.tolist()))


class GaussianDensitySelection(_FeatureStrategy):
    """Per-class Gaussian density (full covariance, scikit-learn) on the chosen features; the
    budget is split over classes by size and each class gives its highest-density points
    (``highest=False``: lowest).

    Parameters
    ----------
    highest : bool, default True
        Pick the highest-density points (False: the lowest).
    features : {"pixels", "pca", "model"}, default "pca"
        What the distances or densities are computed on.
    pca_components : int, default 20
        Components of the PCA projection (``features="pca"``).
    model : nn.Module, optional
        A clean classifier whose penultimate-layer features are used (``features="model"``).
    checkpoint : str, optional
        Its weights.
    """

    def __init__(self, highest: bool = True, features: Features = "pca", pca_components: int = 20,
                 model: nn.Module | None = None, checkpoint: str | None = None) -> None:
        super().__init__(features, pca_components, model, checkpoint)
        self.highest = highest

    def select(self, x, y, targets, budget, generator):
        from sklearn.mixture import GaussianMixture

        features = self.embed(x).double().numpy()
        picked = []
        for label, share in split_budget(y, budget).items():
            idx = (y == label).nonzero().squeeze(1)
            density = GaussianMixture(1, reg_covar=1e-4, random_state=0).fit(features[idx]).score_samples(
                features[idx])
            order = torch.from_numpy(density).argsort(descending=self.highest)
            picked.append(idx[order[:share]])
        return torch.cat(picked)


class PointScore(Protocol):
    """Anything that scores pool points, one number each, from their images, labels and flip
    labels (e.g. :class:`advlit.attacks.FlipSteps`)."""

    def scores(self, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


class ScoreSelection(SelectionStrategy):
    """Picks ``budget`` points at random among those whose score lies in [``min_score``,
    ``max_score``]. ``score.scores(x, y, targets)`` gives one number per pool point, e.g.
    :class:`advlit.attacks.FlipSteps` (the adversarial-path length of Crafting Label Noise),
    so the data package needs no attack of its own.

    Parameters
    ----------
    score : PointScore
        Scores the pool points.
    min_score, max_score : float, default -inf, +inf
        The bucket of scores to pick from.
    """

    def __init__(self, score: PointScore, min_score: float = float("-inf"),
                 max_score: float = float("inf")) -> None:
        if min_score > max_score:
            raise ValueError(f"min_score={min_score} > max_score={max_score}")
        self.score, self.min_score, self.max_score = score, min_score, max_score

    def select(self, x, y, targets, budget, generator):
        scores = self.score.scores(x, y, targets)
        bucket = ((scores >= self.min_score) & (scores <= self.max_score)).nonzero().squeeze(1)
        if len(bucket) < budget:
            raise ValueError(f"only {len(bucket)} points have a score in [{self.min_score:g}, "
                             f"{self.max_score:g}], fewer than the budget {budget}; widen the bucket")
        return bucket[torch.randperm(len(bucket), generator=generator)[:budget]]
