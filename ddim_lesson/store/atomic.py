"""Atomic writes, the package's general way to write a file: a temporary file beside the target, flushed to disk, then
renamed over it, so a crash or kill at any moment leaves the old file or the new one, never a mix. Checkpoints,
result files and images are written through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def previous_path(path: Path) -> Path:
    """Where the previous version of ``path`` is kept: checkpoint.safetensors -> checkpoint.prev.safetensors."""
    stem, dot, ext = path.name.rpartition(".")
    return path.with_name(f"{stem}.prev.{ext}" if dot else f"{path.name}.prev")


def atomic_write(path: Path, data: bytes, keep_previous: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    A crash or kill at any moment leaves either the old file or the new one, never a mix. With
    ``keep_previous`` the old file is first moved to :func:`previous_path`, so that a loader can
    fall back to it; between the two renames only that previous file exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the renames durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
