"""Batched in-memory datasets, samplers and on-device augmentation.

Images stay uint8 in memory; a whole batch is gathered with one indexing operation
(``__getitems__``) instead of per-sample collation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler


class TensorImageDataset(Dataset):
    """(uint8 images (N, C, H, W), int64 labels (N,)) fetched a whole batch at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images[index], self.labels[index]


def keep_batch(batch):
    """Collate function for :class:`TensorImageDataset`: the batch is already stacked."""
    return batch


class UnpaddedDistributedSampler(DistributedSampler):
    """Deterministic sharding for evaluation: rank r gets indices r, r+W, r+2W, ...

    Unlike DistributedSampler it never pads, so no sample is counted twice and the sum
    over ranks equals the dataset exactly (shards may differ in size by one).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Batched random crop after zero padding, and random horizontal flip, on x's device."""
    n, _, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding,) * 4)
        oy = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
        ox = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
        rows = (oy + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, channels, rows, cols]
    if flip:
        flipped = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    return x
