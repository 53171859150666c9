"""Safe checkpoint loading: tensors and plain containers only (``torch.load(weights_only=True)``).

A checkpoint is a pickle, and an arbitrary pickle can run code when loaded. advlit never
unpickles arbitrary objects: Lightning checkpoints, plain state_dicts and the RNG states advlit
stores all load under ``weights_only=True``. A file that needs more is refused, with the way
to convert it if you trust it. TorchScript files hold TorchScript programs, not Python pickles.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint file is missing, empty, truncated or not safe to load."""


RUN_PREFIX = "run_"  # every ``advlit fit`` checkpoints into <dirpath>/run_N


def run_folders(folder: str | Path) -> dict[int, Path]:
    """The ``run_N`` folders of a checkpoint folder, by N."""
    return {int(p.name[len(RUN_PREFIX):]): p for p in Path(folder).glob(f"{RUN_PREFIX}*")
            if p.name[len(RUN_PREFIX):].isdigit()}


def latest_checkpoint(path: str | Path, name: str = "last.ckpt") -> Path:
    """``path`` itself if it is a file; for a checkpoint folder, ``name`` in its newest
    ``run_N`` folder that has one (or directly in it, as older advlit versions saved)."""
    path = Path(path)
    if not path.is_dir():
        return path
    runs = [run / name for _, run in sorted(run_folders(path).items()) if (run / name).is_file()]
    return runs[-1] if runs else path / name


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict stored in ``path`` (a file, or a checkpoint folder: its newest run's
    ``last.ckpt``), loaded with ``weights_only=True``; one-line errors."""
    path = latest_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): an interrupted save? "
                              f"use another checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds objects beyond tensors and plain containers, which "
            f"advlit will not unpickle (loading could run code: {first}). If you trust the file, "
            f"convert it once: torch.save(torch.load(path, weights_only=False)['state_dict'], "
            f"'weights.pt')") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a PyTorch file "
                              f"({type(err).__name__}); use another checkpoint") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a dict")
    return state


def network_state_dict(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The classifier network's weights: the ``model.*`` entries of a Lightning checkpoint of a
    RobustClassifier, or a plain state_dict as it is."""
    if "state_dict" in state:
        return {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    return state


def load_network(model: nn.Module, path: str | Path | None) -> nn.Module:
    """``model`` with the weights of an advlit checkpoint or a plain state_dict (a file, or a
    checkpoint folder: its newest run's last.ckpt), in eval mode; as it is when ``path`` is
    None (a model already trained)."""
    if path is None:
        return model.eval()
    weights = network_state_dict(load_checkpoint(path))
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit {type(model).__name__}: "
                              f"{str(err).splitlines()[0]} (is the architecture in the config the "
                              f"one that was trained?)") from None
    return model.eval()
