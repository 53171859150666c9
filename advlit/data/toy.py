"""The Gaussian toy of Crafting Label Noise (sections 4.2-4.5): D(d, mu, sigma^2) with two
classes N(-mu 1, sigma^2 I) and N(+mu 1, sigma^2 I), label [x^T 1 >= 0], plus ``b`` poisons
per class placed at distance ``r`` from its class mean and labelled with the opposite class
or a third class. Points are shifted by 0.5 in every coordinate (into the [0, 1] box the
attacks work in; distances and labels are unchanged) and shaped (1, 1, d)."""

from __future__ import annotations

from typing import Literal

import torch

from advlit.data.vision import ImageDataModule

CENTER = 0.5


class GaussianToyDataModule(ImageDataModule):
    """``train_per_class`` / ``test_per_class`` clean points per class (labels by the rule
    [sum(x - 0.5) >= 0]), ``poisons_per_class`` poisons at distance ``poison_distance`` from
    each class mean in a uniformly random direction, labelled ``opposite`` (the other class)
    or ``third`` (a new class 2; ``num_classes`` becomes 3). Data are float, not uint8.

    Parameters
    ----------
    dim : int, default 16
        Dimension of the points.
    mu : float, default 0.05
        Distance of each class mean from 0.5 along the diagonal, per coordinate.
    sigma : float, default 0.02
        Per-coordinate standard deviation of the clean points.
    train_per_class, test_per_class : int, default 500
        Clean points per class in each split.
    poisons_per_class : int, default 0
        Poisoned training points per class.
    poison_distance : float, default 0.1
        Their distance from the class mean.
    poison_label : {"opposite", "third"}, default "opposite"
        Their label.
    batch_size : int, default 100
        Training batch size.
    eval_batch_size : int, optional
        Validation and test batch size (default ``batch_size``).
    val_size : int, default 0
        Training points held out for validation.
    seed : int, default 0
        Seeds the data and the split.
    """

    def __init__(self, dim: int = 16, mu: float = 0.05, sigma: float = 0.02,
                 train_per_class: int = 500, test_per_class: int = 500, poisons_per_class: int = 0,
                 poison_distance: float = 0.1, poison_label: Literal["opposite", "third"] = "opposite",
                 batch_size: int = 100, eval_batch_size: int | None = None, val_size: int = 0,
                 seed: int = 0) -> None:
        super().__init__(root="data", batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_size=val_size, seed=seed)
        if dim < 1 or mu <= 0 or sigma <= 0:
            raise ValueError(f"need dim >= 1, mu > 0 and sigma > 0, got {dim}, {mu}, {sigma}")
        if poisons_per_class < 0 or poison_distance < 0:
            raise ValueError(f"poisons_per_class and poison_distance must be >= 0, got "
                             f"{poisons_per_class}, {poison_distance}")
        if poison_label not in ("opposite", "third"):
            raise ValueError(f"poison_label must be 'opposite' or 'third', got {poison_label!r}")
        self.dim, self.mu, self.sigma = dim, mu, sigma
        self.train_per_class, self.test_per_class = train_per_class, test_per_class
        self.poisons_per_class, self.poison_distance = poisons_per_class, poison_distance
        self.poison_label = poison_label
        self.num_classes = 3 if poison_label == "third" else 2
        self.input_shape = (1, 1, dim)

    def _clean(self, per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        means = torch.tensor([-self.mu, self.mu]).repeat_interleave(per_class)[:, None]
        x = means + self.sigma * torch.randn(2 * per_class, self.dim, generator=generator)
        return x, (x.sum(dim=1) >= 0).long()

    def _poisons(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.poisons_per_class
        direction = torch.randn(2 * b, self.dim, generator=generator)
        direction = direction / direction.norm(dim=1, keepdim=True)
        source = torch.tensor([0, 1]).repeat_interleave(b)
        x = (2 * source[:, None] - 1) * self.mu + self.poison_distance * direction
        label = 1 - source if self.poison_label == "opposite" else torch.full_like(source, 2)
        return x, label

    def load(self):
        generator = torch.Generator().manual_seed(self.seed)
        train_x, train_y = self._clean(self.train_per_class, generator)
        test_x, test_y = self._clean(self.test_per_class, generator)
        poison_x, poison_y = self._poisons(generator)
        train_x, train_y = torch.cat([train_x, poison_x]), torch.cat([train_y, poison_y])
        shape = (-1, *self.input_shape)
        return (train_x + CENTER).view(shape), train_y, (test_x + CENTER).view(shape), test_y

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return batch   # already float
