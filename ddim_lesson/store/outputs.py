"""Output paths are checked before the work that fills them, not after.

``check_writable`` is called by every command that writes (train, sample, invert, eval) before it
loads data or samples, so an ``--out`` that cannot be written fails in a second, not after the run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(path: str | Path, *, folder: bool = False, what: str = "--out") -> Path:
    """``path`` if it can be written (a file, or with ``folder`` a folder), else ValueError naming why.

    Nothing is created: the nearest existing folder on the way is probed with a temporary file,
    which is removed at once.
    """
    p = Path(path)
    if not str(path):
        raise ValueError(f"{what} is empty; pass a {'folder' if folder else 'file name'}")
    if folder and p.exists() and not p.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file; pass a folder")
    if not folder and p.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; pass a file name")
    if not folder and p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{what} {str(path)!r} exists and cannot be written; pass another {what}")
    anc = (p if folder else p.parent).absolute()
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be created: {anc} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".ddim-lesson-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what} {str(path)!r} cannot be written ({e.strerror} in {anc}); "
                         f"pass another {what}") from None
    return p
