"""Resumable evaluation: every finished chunk's per-sample results go to a results folder, one
file per chunk, named by a fingerprint of everything that decides them (the suite, the model's
class and weights, the target, the chunk's images, labels and dataset indices). A second run of
the same evaluation loads the chunks that are there and computes the rest; a changed suite,
model or dataset has other fingerprints, so old results are never mixed in (nor deleted)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from advlit.atomic import atomic_write
from advlit.evaluation.result import SuiteResult


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the model's class and every parameter and buffer (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


class ResultStore:
    """The chunk files of one evaluation setting (``setting``: a fingerprint of the suite, model
    and target) in ``folder``; each chunk file is written atomically (a temporary file, then a
    rename), so a killed run leaves whole files only."""

    def __init__(self, folder: str | Path, setting: str) -> None:
        self.folder, self.setting = Path(folder), setting

    def key(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> str:
        digest = hashlib.sha256(self.setting.encode())
        for tensor in (index, y, x):
            digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(_tensor_bytes(tensor))
        return digest.hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.folder / f"chunk-{key}.pt"

    def load(self, key: str) -> SuiteResult | None:
        path = self.path(key)
        if not path.is_file():
            return None
        return SuiteResult.from_state(torch.load(path, weights_only=True))

    def save(self, key: str, result: SuiteResult) -> None:
        atomic_write(self.path(key), lambda tmp: torch.save(result.to("cpu").state(), tmp))
