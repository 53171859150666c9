"""LightningDataModules over in-memory uint8 images (float [0, 1] batches on the device),
label poisoning of any of them, and the Gaussian toy."""

from advlit.data.poisoning import PoisonedDataModule
from advlit.data.selection import (
    GaussianDensitySelection,
    GraphSelection,
    RandomSelection,
    ScoreSelection,
    SelectionStrategy,
)
from advlit.data.toy import GaussianToyDataModule
from advlit.data.vision import (
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MissingDataError,
    MNISTDataModule,
)

__all__ = ["CIFAR10DataModule", "DigitsDataModule", "FashionMNISTDataModule",
           "GaussianDensitySelection", "GaussianToyDataModule", "GraphSelection",
           "ImageDataModule", "MissingDataError", "MNISTDataModule", "ScoreSelection",
           "PoisonedDataModule", "RandomSelection", "SelectionStrategy"]
