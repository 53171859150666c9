"""Image-classification LightningDataModules: MNIST, Fashion-MNIST, CIFAR-10 read from their
standard files, and scikit-learn's embedded 8x8 digits (offline default).

Images are kept in memory as uint8 and turned into float [0, 1] batches on the training
device (``on_after_batch_transfer``), where training batches are also augmented.
"""

from __future__ import annotations

from typing import Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, DistributedSampler

from advlit.data.formats import find_file, read_cifar_batches, read_idx
from advlit.data.loading import TensorImageDataset, UnpaddedDistributedSampler, keep_batch, random_crop_flip
from advlit.data.root import data_root


class MissingDataError(FileNotFoundError):
    """Dataset files are not where the datamodule looked."""


class ImageDataModule(LightningDataModule):
    """Base class: seeded train/val split of in-memory uint8 tensors, batched loading.

    Subclasses implement :meth:`load` returning ``(train_x, train_y, test_x, test_y)``.
    ``classes`` keeps a subset of labels, renumbered 0..k-1 in the order given (e.g. [0, 1]
    for MNIST 0-vs-1); ``train_size`` keeps a seeded subset of the training split (for
    memorization studies). ``num_classes`` is linked into the model by the CLI. This is the one
    constructor: a dataset changes only its own defaults, by keyword, and passes the rest on as
    ``**kwargs`` (LightningCLI follows them, so ``--help`` lists every argument).

    Parameters
    ----------
    root : str, optional
        The data folder (default ``$ADVLIT_DATA``, else ``./data``; :func:`~advlit.data.root.data_root`).
    batch_size : int, default 128
        Training batch size.
    eval_batch_size : int, optional
        Validation and test batch size (default ``batch_size``).
    val_size : int, default 0
        Training images held out for validation, chosen by ``seed``.
    seed : int, default 0
        Seeds the validation split, the training subset and the shuffling.
    download : bool, default False
        Fetch missing files first (needs network access and torchvision).
    num_workers : int, default 0
        DataLoader worker processes.
    classes : list of int, optional
        Keep these labels only, renumbered 0..k-1 in the order given.
    train_size : int, optional
        Keep a seeded subset of this many training images.
    """

    num_classes: int = 10
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __init__(self, *, root: str | None = None, batch_size: int = 128,
                 eval_batch_size: int | None = None, val_size: int = 0, seed: int = 0,
                 download: bool = False, num_workers: int = 0,
                 classes: list[int] | None = None, train_size: int | None = None) -> None:
        super().__init__()
        if train_size is not None and train_size < 1:
            raise ValueError(f"train_size must be >= 1 or None, got {train_size}")
        if classes is not None and (len(classes) < 2 or len(set(classes)) != len(classes)):
            raise ValueError(f"classes must list at least 2 distinct labels, got {classes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.root = data_root(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.seed = seed
        self.download = download
        self.num_workers = num_workers
        self.classes = list(classes) if classes is not None else None
        self.train_size = train_size
        if self.classes is not None:
            self.num_classes = len(self.classes)
        self.train_set = self.val_set = self.test_set = None

    # -- subclasses -----------------------------------------------------------------
    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fetch(self) -> None:
        """Download the files (``download=True``); default: nothing to fetch."""

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Batched training augmentation on the device; default: none."""
        return x

    # -- Lightning hooks ------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.download:
            self.fetch()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_x, train_y, test_x, test_y = self.load()
        if self.classes is not None:
            train_x, train_y = self._select_classes(train_x, train_y)
            test_x, test_y = self._select_classes(test_x, test_y)
        if self.val_size >= len(train_y):
            raise ValueError(f"val_size={self.val_size} leaves no training data "
                             f"({len(train_y)} training images)")
        perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = perm[: self.val_size].sort().values, perm[self.val_size:]
        train_idx = train_idx[: self.train_size].sort().values
        self.train_set = TensorImageDataset(train_x[train_idx], train_y[train_idx])
        self.val_set = TensorImageDataset(train_x[val_idx], train_y[val_idx])
        self.test_set = TensorImageDataset(test_x, test_y)

    def split_tensors(self, split: Literal["train", "val", "test"] = "test",
                      limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images as float in [0, 1], labels) of a split, its first ``limit`` points, for
        evaluation outside a dataloader."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.setup()
        dataset = getattr(self, f"{split}_set")
        return dataset.images[:limit].float() / 255, dataset.labels[:limit]

    def _select_classes(self, x: torch.Tensor, y: torch.Tensor):
        """Keep only ``classes`` and relabel them 0..k-1 in the order given."""
        lookup = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
        known = [c for c in self.classes if c < len(lookup)]
        lookup[known] = torch.tensor([self.classes.index(c) for c in known])
        new = lookup[y]
        keep = new >= 0
        if int(keep.sum()) == 0:
            raise ValueError(f"none of the classes {self.classes} occur in the data")
        return x[keep], new[keep]

    def _replicas(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset, batch_size: int, sampler) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=keep_batch,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        world, rank = self._replicas()
        # Reshuffled by epoch from (seed, epoch): Lightning calls set_epoch, so resumed
        # runs see the same order as uninterrupted ones.
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank,
                                     shuffle=True, seed=self.seed)
        return self._loader(self.train_set, self.batch_size, sampler)

    def _eval_loader(self, dataset) -> DataLoader:
        world, rank = self._replicas()
        return self._loader(dataset, self.eval_batch_size,
                            UnpaddedDistributedSampler(dataset, world, rank))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = x.float().div_(255.0)
        if self.trainer is not None and self.trainer.training:
            x = self.augment(x)
        return x, y


def _torchvision_datasets():
    """torchvision.datasets, or a clear error; its import may raise RuntimeError when a
    CUDA build sits beside a CPU torch, so both errors are caught."""
    try:
        import torchvision.datasets as datasets
    except (ImportError, RuntimeError) as err:
        raise MissingDataError(
            f"download=True needs a working torchvision (pip install 'advlit[vision]'): {err}"
        ) from err
    return datasets


class _IdxDataModule(ImageDataModule):
    """MNIST-format datasets in torchvision's ``<root>/<folder>/raw`` layout."""

    folder = "MNIST"
    source = "http://yann.lecun.com/exdb/mnist/"
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

    def __init__(self, *, val_size: int = 10000, **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)

    def fetch(self) -> None:
        getattr(_torchvision_datasets(), self.folder)(str(self.root), download=True)

    def load(self):
        raw = self.root / self.folder / "raw"
        paths = [find_file(raw, name) for name in self.files]
        missing = [name for name, path in zip(self.files, paths) if path is None]
        if missing:
            raise MissingDataError(
                f"{type(self).__name__}: {', '.join(missing)} (or .gz) not found in "
                f"{raw.resolve()}. Put the four idx files from {self.source} there, or fetch them "
                f"with network access: python -m advlit.data.download {self.folder.lower()} "
                f"--root {self.root} (needs pip install 'advlit[vision]').")
        train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
        return train_x, train_y, test_x, test_y


class MNISTDataModule(_IdxDataModule):
    """MNIST (LeCun et al. 1998): 60k train (50k/10k train/val by seed), 10k test, read from
    ``<root>/MNIST/raw``.

    Parameters
    ----------
    val_size : int, default 10000
        Training images held out for validation, chosen by ``seed``.
    **kwargs
        ``root``, ``batch_size``, ``eval_batch_size``, ``seed``, ``download``, ``num_workers``,
        ``classes``, ``train_size`` of :class:`ImageDataModule`.
    """


class FashionMNISTDataModule(_IdxDataModule):
    """Fashion-MNIST (Xiao et al. 2017), same format and sizes as MNIST, read from
    ``<root>/FashionMNIST/raw``; the parameters of :class:`MNISTDataModule`."""

    folder = "FashionMNIST"
    source = "https://github.com/zalandoresearch/fashion-mnist"


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 from the python pickle batches in ``<root>/cifar-10-batches-py``;
    training batches get a random 32x32 crop of the 4-padded image and a horizontal flip.

    Parameters
    ----------
    val_size : int, default 5000
        Training images held out for validation, chosen by ``seed``.
    augment_padding : int, default 4
        Padding before the random crop (0: no crop).
    augment_flip : bool, default True
        Random horizontal flips.
    **kwargs
        ``root``, ``batch_size``, ``eval_batch_size``, ``seed``, ``download``, ``num_workers``,
        ``classes``, ``train_size`` of :class:`ImageDataModule`.
    """

    input_shape = (3, 32, 32)

    def __init__(self, *, val_size: int = 5000, augment_padding: int = 4, augment_flip: bool = True,
                 **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.augment_padding = augment_padding
        self.augment_flip = augment_flip

    def fetch(self) -> None:
        _torchvision_datasets().CIFAR10(str(self.root), download=True)

    def load(self):
        folder = self.root / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise MissingDataError(
                f"CIFAR10DataModule: {', '.join(missing)} not found in {folder.resolve()}. "
                "Extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
                f"into {self.root.resolve()}, or fetch it with network access: python -m "
                f"advlit.data.download cifar10 --root {self.root} (needs pip install 'advlit[vision]').")
        train_x, train_y = read_cifar_batches([folder / n for n in names[:5]])
        test_x, test_y = read_cifar_batches([folder / names[5]])
        return train_x, train_y, test_x, test_y

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(x, self.augment_padding, self.augment_flip)


class DigitsDataModule(ImageDataModule):
    """scikit-learn's embedded 8x8 handwritten digits (1797 images): needs no network.

    A fixed stratified 80/20 train/test split (independent of ``seed``), then ``val_size``
    training images held out by ``seed``. Pixel values 0..16 are scaled to 0..255.

    Parameters
    ----------
    batch_size : int, default 64
        Training batch size.
    val_size : int, default 180
        Training images held out for validation, chosen by ``seed``.
    eval_batch_size : int, optional
        Validation and test batch size (default ``batch_size``).
    seed, num_workers, classes, train_size
        As in :class:`ImageDataModule`.
    """

    input_shape = (1, 8, 8)

    def __init__(self, *, batch_size: int = 64, val_size: int = 180, eval_batch_size: int | None = None,
                 seed: int = 0, num_workers: int = 0, classes: list[int] | None = None,
                 train_size: int | None = None) -> None:
        super().__init__(root="data", batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_size=val_size, seed=seed, num_workers=num_workers, classes=classes,
                         train_size=train_size)

    def load(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.from_numpy((digits.images * (255.0 / 16.0)).round()).to(torch.uint8)
        images = images.unsqueeze(1)
        labels = torch.from_numpy(digits.target).long()
        train_idx, test_idx = train_test_split(torch.arange(len(labels)).numpy(), test_size=0.2,
                                               stratify=labels.numpy(), random_state=0)
        return (images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
