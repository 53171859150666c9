"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path`` (same folder, so the
    rename is atomic), then move it to ``path``; if ``write`` fails the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The file to write (its folder is created).
    write : callable
        Writes the whole content to the path it is given.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
