"""Any trained network from a file, to evaluate (or fine-tune) models trained elsewhere."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from advlit.checkpoints import CheckpointError, load_network


class Pretrained(nn.Module):
    """The network in ``path``: an advlit checkpoint or a plain PyTorch state_dict loaded into
    ``architecture`` (safely, ``weights_only=True``), or, with no ``architecture``, a
    TorchScript file (``torch.jit.save``). Like every advlit network it maps [0, 1] images to
    logits, so normalization must be inside it. ``num_classes`` only receives the CLI's link
    from the data; the file decides the outputs.

    Parameters
    ----------
    path : str
        The checkpoint, state_dict or TorchScript file.
    architecture : nn.Module, optional
        The network to load a checkpoint or state_dict into (None: TorchScript).
    num_classes : int, optional
        Receives the CLI's link from the data; the file decides the outputs.
    """

    def __init__(self, path: str, architecture: nn.Module | None = None, num_classes: int | None = None) -> None:
        super().__init__()
        if not Path(path).is_file():
            raise CheckpointError(f"model file {path!r} does not exist")
        if architecture is None:
            try:
                self.network = torch.jit.load(path, map_location="cpu")
            except RuntimeError as err:
                raise CheckpointError(f"{path!r} is not a TorchScript file ({str(err).splitlines()[0]}); "
                                      f"for a state_dict or checkpoint, name its architecture") from None
        else:
            self.network = load_network(architecture, path)
        self.network.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
