"""GPU speed levers for any classifier: channels_last memory format and ``torch.compile``."""

from __future__ import annotations

import torch
from torch import nn


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4
                 else a for a in args)


def accelerate(model: nn.Module, channels_last: bool = False, compile: bool | str = False) -> nn.Module:
    """Return ``model`` (the same object) with NHWC weights and inputs and/or compiled.

    ``channels_last`` converts the 4-d weights and, through a forward pre-hook, every 4-d
    input. ``compile`` (``True`` or a ``torch.compile`` backend name, e.g. ``"aot_eager"``)
    compiles the forward in place (``nn.Module.compile``), so ``state_dict`` keys do not
    change. Input gradients (the attacks) flow through both.
    """
    if not isinstance(compile, (bool, str)):
        raise ValueError(f"compile must be true/false or a torch.compile backend name, got {compile!r}")
    if channels_last:
        model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_to_channels_last)
    if compile:
        model.compile(**({} if compile is True else {"backend": compile}))
    return model
