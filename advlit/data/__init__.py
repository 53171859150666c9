"""LightningDataModules over in-memory uint8 images (float [0, 1] batches on the device)."""

from advlit.data.vision import (
                                CIFAR10DataModule,
                                DigitsDataModule,
                                FashionMNISTDataModule,
                                ImageDataModule,
                                MissingDataError,
                                MNISTDataModule,
)

__all__ = ["CIFAR10DataModule", "DigitsDataModule", "FashionMNISTDataModule",
           "ImageDataModule", "MissingDataError", "MNISTDataModule"]
