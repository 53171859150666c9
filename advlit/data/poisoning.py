"""Label poisoning of any advlit datamodule (Sanyal et al. 2021; Crafting Label Noise):
flip the labels of a budget of training points chosen by a selection strategy; inputs,
validation and test data stay untouched."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.loggers import WandbLogger

from advlit.atomic import atomic_write
from advlit.data.loading import TensorImageDataset
from advlit.data.selection import RandomSelection, SelectionStrategy
from advlit.data.vision import ImageDataModule

FlipTarget = Literal["uniform", "next", "pair", "new_class"]


class PoisonedDataModule(LightningDataModule):
    """Wraps ``datamodule`` and flips ``fraction`` (or ``count``) of its candidate training
    points, chosen by ``strategy`` (default random), reproducibly from ``seed``.

    ``target``: ``uniform`` over the other classes, ``next`` class (cyclic), ``pair``
    (only ``source_class`` -> ``target_class``), or ``new_class`` (label k for a k-class
    dataset; ``num_classes`` becomes k + 1 and the CLI links it into the model head).
    Candidates are the training points of ``source_class`` when given, else all of them.
    The flips (index into the training set, old and new label) are written to
    ``<record_dir>/poison.csv`` (default: the trainer's log directory), logged to W&B as an
    artifact, and the count as ``data/poisoned``.

    Parameters
    ----------
    datamodule : ImageDataModule
        The clean data.
    fraction : float, optional
        Share of the candidates to flip, in (0, 1] (exactly one of ``fraction`` and ``count``).
    count : int, optional
        Number of candidates to flip.
    target : {"uniform", "next", "pair", "new_class"}, default "uniform"
        The new label (see above).
    source_class, target_class : int, optional
        Flip only points of ``source_class`` (to ``target_class`` with ``pair``).
    strategy : SelectionStrategy, optional
        Which candidates to flip (default: random).
    seed : int, default 0
        Seeds the selection and the new labels.
    record_dir : str, optional
        Where ``poison.csv`` goes (default: the trainer's log directory).
    """

    def __init__(self, datamodule: ImageDataModule, fraction: float | None = None,
                 count: int | None = None, target: FlipTarget = "uniform",
                 source_class: int | None = None, target_class: int | None = None,
                 strategy: SelectionStrategy | None = None, seed: int = 0,
                 record_dir: str | None = None) -> None:
        super().__init__()
        if (fraction is None) == (count is None):
            raise ValueError("give exactly one of fraction (e.g. 0.1) or count (e.g. 500)")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
        if count is not None and not (isinstance(count, int) and count >= 0):
            raise ValueError(f"count must be an integer >= 0, got {count!r}")
        if target not in ("uniform", "next", "pair", "new_class"):
            raise ValueError(f"target must be uniform, next, pair or new_class, got {target!r}")
        k = datamodule.num_classes
        for name, value in (("source_class", source_class), ("target_class", target_class)):
            if value is not None and not 0 <= value < k:
                raise ValueError(f"{name}={value} is not a class of a {k}-class dataset")
        if target == "pair" and (source_class is None or target_class is None
                                 or source_class == target_class):
            raise ValueError("target='pair' needs distinct source_class and target_class, e.g. 5 -> 6")
        self.datamodule = datamodule
        self.fraction, self.count, self.target = fraction, count, target
        self.source_class, self.target_class = source_class, target_class
        self.strategy = strategy or RandomSelection()
        self.seed, self.record_dir = seed, record_dir
        self.num_classes = k + 1 if target == "new_class" else k
        self.input_shape = datamodule.input_shape
        self.flips: dict[str, torch.Tensor] | None = None

    def flip_labels(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The label each candidate would get; never its own."""
        k = self.datamodule.num_classes
        if self.target == "uniform":
            return (y + torch.randint(1, k, y.shape, generator=generator)) % k
        if self.target == "next":
            return (y + 1) % k
        if self.target == "pair":
            return torch.full_like(y, self.target_class)
        return torch.full_like(y, k)

    def poison(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Choose and flip; returns {index, old, new} (indices into the training set)."""
        generator = torch.Generator().manual_seed(self.seed)
        source = self.source_class
        pool = (torch.arange(len(labels)) if source is None else (labels == source).nonzero().squeeze(1))
        budget = self.count if self.count is not None else round(self.fraction * len(pool))
        if budget > len(pool):
            where = "training points" if source is None else f"training points of class {source}"
            raise ValueError(f"poison budget {budget} exceeds the {len(pool)} {where}; lower count")
        y = labels[pool]
        targets = self.flip_labels(y, generator)
        chosen = self.strategy.select(images[pool].float() / 255, y, targets, budget, generator)
        if len(chosen) != budget or len(chosen.unique()) != budget:
            raise RuntimeError(f"{type(self.strategy).__name__} returned {len(chosen)} positions "
                               f"({len(chosen.unique())} distinct) for a budget of {budget}")
        index = pool[chosen].sort().values
        order = torch.searchsorted(pool, index)
        return {"index": index, "old": labels[index], "new": targets[order]}

    def prepare_data(self) -> None:
        self.datamodule.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.datamodule.trainer = self.trainer
        self.datamodule.setup(stage)
        if self.flips is not None:
            return
        train = self.datamodule.train_set
        self.flips = self.poison(train.images, train.labels)
        labels = train.labels.clone()
        labels[self.flips["index"]] = self.flips["new"]
        self.datamodule.train_set = TensorImageDataset(train.images, labels)
        if self.trainer is not None and stage == "fit":
            self._record()

    def _record(self) -> None:
        n = len(self.flips["index"])
        for logger in self.trainer.loggers:
            logger.log_metrics({"data/poisoned": float(n)}, step=0)
        if not self.trainer.is_global_zero:
            return
        folder = Path(self.record_dir or self.trainer.log_dir or self.trainer.default_root_dir)
        path = atomic_write(folder / "poison.csv", self._write_flips)
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                artifact = wandb.Artifact(f"poison-{logger.experiment.id}", type="poison",
                                          metadata={"poisoned": n, "seed": self.seed})
                artifact.add_file(str(path))
                logger.experiment.log_artifact(artifact)

    def _write_flips(self, path: Path) -> None:
        """The flips as CSV: index, old_label, new_label."""
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "old_label", "new_label"])
            writer.writerows(zip(*(self.flips[k].tolist() for k in ("index", "old", "new"))))

    def train_dataloader(self):
        return self.datamodule.train_dataloader()

    def val_dataloader(self):
        return self.datamodule.val_dataloader()

    def test_dataloader(self):
        return self.datamodule.test_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.datamodule.on_after_batch_transfer(batch, dataloader_idx)
