"""Readers for the datasets' standard on-disk files, straight into uint8 tensors."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> torch.Tensor:
    """An idx file (LeCun's MNIST format, gzipped or not): images -> (N, 1, H, W) uint8,
    labels -> (N,) int64. Header: big-endian magic (2051 images, 2049 labels) and sizes."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[:4], "big")
    if magic == IDX_IMAGES_MAGIC:
        n, rows, cols = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if data.size != n * rows * cols:
            raise ValueError(f"{path}: header says {n}x{rows}x{cols} images, found {data.size} bytes")
        return torch.from_numpy(data.copy()).view(n, 1, rows, cols)
    if magic == IDX_LABELS_MAGIC:
        n = int.from_bytes(raw[4:8], "big")
        data = np.frombuffer(raw, dtype=np.uint8, offset=8)
        if data.size != n:
            raise ValueError(f"{path}: header says {n} labels, found {data.size}")
        return torch.from_numpy(data.astype(np.int64))
    raise ValueError(f"{path} is not an idx file (magic number {magic}, expected 2051 or 2049)")


def read_cifar_batches(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 python pickle batches -> (N, 3, 32, 32) uint8 images and (N,) int64 labels."""
    images, labels = [], []
    for path in paths:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
