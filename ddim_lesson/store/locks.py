"""One command at a time per output: an advisory lock on a run folder or a results file.

Two ``train`` runs on one ``--out`` would mix their checkpoints, and two ``eval`` runs on one ``--out``
would each save over the other's cells. :func:`out_lock` takes an exclusive ``flock`` on a small lock
file; a second command on the same output is refused at once with one line naming the holder. The
kernel releases the lock when its process ends, however it ends, so a folder a killed run left
behind never blocks the next start. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".ddim-lesson.lock"


def lock_path(out: str | Path, folder: bool) -> Path:
    """The lock file of a run folder (inside it) or of a results prefix OUT (``.OUT.lock`` beside it)."""
    p = Path(out)
    return p / LOCK_NAME if folder else p.with_name(f".{p.name}.lock")


@contextmanager
def out_lock(out: str | Path, *, folder: bool, what: str = "--out") -> Iterator[Path | None]:
    """Hold an exclusive lock on ``out`` while the block runs; ValueError (one line) if another command holds it.

    ``folder``: ``out`` is a run folder (created if missing, and removed again if the lock was all it
    ever held); else a file prefix whose parent folder must exist. The lock file is removed on exit.
    """
    if fcntl is None:
        yield None
        return
    path = lock_path(out, folder)
    created = folder and not Path(out).exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, out, what)
    try:
        os.ftruncate(fd, 0)
        cmd = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv[:6]))
        os.write(fd, f"pid {os.getpid()} ({cmd}), since {time.strftime('%H:%M:%S')}".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # before the lock goes: a waiter re-checks the inode (see _acquire)
        os.close(fd)
        if created:
            try:
                Path(out).rmdir()  # only if empty: the run wrote nothing
            except OSError:
                pass


def _acquire(path: Path, out: str | Path, what: str) -> int:
    """An open, locked descriptor of ``path`` that is still the file at ``path`` (not one unlinked meanwhile)."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise ValueError(f"{what} {out} is in use by another ddim-lesson command ({holder or 'running'}); "
                             f"wait for it to finish, or pass another {what}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed it as we opened it: take the new one
    raise ValueError(f"{what} {out}: could not take its lock file {path}; pass another {what}")


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
