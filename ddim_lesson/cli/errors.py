"""How the command line turns a failure into one line: which errors are the user's, and what they say.

``ddim-lesson`` prints a user error as one line on stderr and exits with status 2, never with a
traceback. :func:`error_line` decides which exceptions are user errors and words them;
:func:`check_common_args` checks the device every subcommand shares before any work;
:func:`silence_stdout` handles a reader that went away (``ddim-lesson info fashion-mnist | head -1``);
:func:`run_one_line` gives a benchmark script the same one-line errors; :func:`one_line_warnings` prints the
package's own warnings (a fall-back to ``checkpoint.prev``) as one line, without Python's file and source line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator

import torch

from ..store.device import announce_threads
from .info import safe_text

MEMORY_HINT = ("ask for less (a smaller --batch-size or --n), check that a checkpoint is one this course wrote, "
               "or use a machine with more memory")


def error_line(e: BaseException) -> str | None:
    """The one line to print for a user error, or None for a bug (which keeps its traceback).

    User errors: ValueError (and CheckpointError, DataFileError, NonFiniteError, which derive from
    it), OSError (a missing file, an unwritable --out), FloatingPointError, the CLI's own CLIError
    (anything named so), running out of memory, and input nested too deeply to read.
    """
    text = safe_text(" ".join(str(e).split()), limit=2000)
    named = f"{type(e).__name__}: {text}" if text else type(e).__name__
    text = text or type(e).__name__
    if isinstance(e, RecursionError):
        return f"the input is nested too deeply to read ({named}); is it a file this course wrote?"
    if isinstance(e, MemoryError) or _is_allocation_failure(e):
        return f"out of memory ({named}); {MEMORY_HINT}"
    if isinstance(e, (ValueError, OSError, FloatingPointError)) or type(e).__name__ == "CLIError":
        return text
    return None


def _is_allocation_failure(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(e, oom):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("can't allocate memory" in msg or "out of memory" in msg)


def check_common_args(args: argparse.Namespace, pick_device: object = None) -> None:
    """Check the flag several subcommands share, before any work: the device.

    ``--device`` must be a device this machine has (``pick_device`` is the CLI's device check, which also
    bounds cuda:N by the devices present). Seeds and η are checked once, each by its field's check in the
    subcommand's config (``core.fields``: ``SampleArgs``, ``Table1Config``, ...), which is built before any work too.
    """
    if callable(pick_device) and isinstance(getattr(args, "device", None), str):
        pick_device(args.device)


def check_cuda_index(dev: torch.device, name: str) -> torch.device:
    """``dev`` unless it is cuda:N for a GPU this machine does not have (ValueError naming those it has)."""
    n = torch.cuda.device_count()
    if dev.type == "cuda" and dev.index is not None and dev.index >= n:
        raise ValueError(f"device {name!r}: this machine has {n} CUDA device(s); allowed: auto, cpu"
                         + "".join(f", cuda:{i}" for i in range(n)))
    return dev


def say_threads(args: argparse.Namespace) -> None:
    """Announce main's thread note (store.device.pick_threads' reason) with the one announcement,
    store.device.announce_threads (stderr, with the progress output), once
    the flags and the model are checked, so that a user error stays the only line printed."""
    note = getattr(args, "thread_note", None)
    if note and getattr(args, "progress", True):
        announce_threads(note)


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so that Python's flush at exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a real file: nothing to flush
        pass


def run_one_line(prog: str, command: Callable[[], object]) -> None:
    """Run a benchmark script's ``command``; a user error (:func:`error_line`) is printed as the one line
    ``PROG: error: ...`` on stderr and exits with status 2, a bug keeps its traceback."""
    try:
        command()
    except Exception as e:
        line = error_line(e)
        if line is None:
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.contextmanager
def one_line_warnings(prog: str = "ddim-lesson") -> Iterator[None]:
    """Within: a warning of the package's own (CheckpointWarning: the previous checkpoint was used) is printed as
    ``PROG: warning: ...`` on one line of stderr, not as Python's two lines (file, line number, source line);
    any other warning is shown as Python shows it."""
    from ..store.checkpoints import CheckpointWarning

    with warnings.catch_warnings():
        python_show = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: object = None, line: str | None = None) -> None:
            if not issubclass(category, CheckpointWarning):
                return python_show(message, category, filename, lineno, file, line)  # type: ignore[arg-type]
            print(f"{prog}: warning: {safe_text(message, 4000)}", file=sys.stderr if file is None else file)

        warnings.showwarning = show
        yield
