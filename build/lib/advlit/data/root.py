"""Where the dataset files are: one rule for every datamodule and script."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ADVLIT_DATA"  # overrides the default data root
DEFAULT_ROOT = "data"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$ADVLIT_DATA``, else ``data``; ``~`` is expanded and a
    relative root is taken from the current directory (where ``advlit`` runs), not from the
    config file's folder."""
    return Path(root if root is not None else os.environ.get(DATA_ENV) or DEFAULT_ROOT).expanduser()
