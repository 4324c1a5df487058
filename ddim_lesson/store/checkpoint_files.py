"""The files a checkpoint is made of: read only regular files of bounded size (written with
:func:`~ddim_lesson.store.atomic.atomic_write`).

A checkpoint is one safetensors file whose header carries the JSON metadata (``__metadata__``),
so one rename publishes weights and metadata together. Reading opens regular files only (a FIFO
or a device such as /dev/zero is refused before a byte is read) and refuses files larger than
:data:`MAX_FILE_BYTES`, so a crafted path can neither hang the loader nor exhaust memory.

The checksum a checkpoint records of its weights, ``weights_sha256``, is :func:`weights_sha256`: the one
hash of weights in the package (a results file's model hash is the same function).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

MAX_FILE_BYTES = 4 << 30  # 4 GiB: a checkpoint of a GPU-sized UNet with its optimizer state is well below
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its JSON header
META_KEY = "ddim_lesson"  # the __metadata__ entry that holds the checkpoint's JSON


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or does not match its config."""


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the tensors serialised as safetensors without metadata, each detached, contiguous and
    on the CPU: a checkpoint's ``weights_sha256``. ``weights_sha256(model.state_dict())`` hashes a model."""
    return hashlib.sha256(st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})).hexdigest()


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else CheckpointError.

    Opened without blocking, so a FIFO is refused at once rather than waited on; the checks are
    made on the opened file (fstat), so a link swapped in between cannot slip past them.
    """
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CheckpointError(f"{path} is {_size(size)}, more than a checkpoint may be ({_size(limit)}); "
                                  "it is not a ddim_lesson checkpoint")
        data = f.read(size + 1)  # what fstat says, not the limit: f.read(n) reserves n bytes up front
        while len(data) > size and len(data) <= limit:  # it grew meanwhile: read on, 1 MiB at a time
            more = f.read(min(1 << 20, limit + 1 - len(data)))
            if not more:
                break
            data += more
    if len(data) > limit:
        raise CheckpointError(f"{path} grew past {_size(limit)} while being read; it is not a ddim_lesson checkpoint")
    return data


def _open_regular(path: Path) -> int:
    """A file descriptor of ``path`` if it is a regular file, else CheckpointError (checked on the open file)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:  # Windows; elsewhere a folder opens and fstat tells
        raise CheckpointError(f"{path} is not a regular file (it is a folder)") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CheckpointError(f"{path} is not a regular file (it is {_kind(mode)}); "
                              "a checkpoint must be a plain file: pass NAME.safetensors as written by ddim-lesson")
    return fd


def loads_json(text: str | bytes, where: str) -> Any:
    """json.loads with one clear error for bad JSON, including JSON nested too deep to parse."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{where} nests its JSON deeper than can be read (a crafted file?); "
                              "restore the file or retrain") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{where} is not valid JSON ({e}); restore it or retrain") from None


def split_header(blob: bytes, where: str) -> tuple[dict[str, Any], int]:
    """The safetensors header of ``blob`` (its JSON, parsed) and where the tensor data starts."""
    if len(blob) < 8:
        raise CheckpointError(f"{where} is truncated ({len(blob)} bytes): copy it again or retrain")
    n = int.from_bytes(blob[:8], "little")
    if n > min(MAX_HEADER_BYTES, len(blob) - 8):
        raise CheckpointError(f"{where} is truncated or not a safetensors file (its header claims {n} bytes of "
                              f"{len(blob) - 8}): copy it again or retrain")
    header = loads_json(blob[8 : 8 + n], f"{where} (safetensors header)")
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is not a safetensors file (its header is not a JSON object); "
                              "copy it again or retrain")
    return header, 8 + n


def check_complete(header: dict[str, Any], blob: bytes, start: int, where: str) -> None:
    """Refuse a file whose tensor data ends before the header says it does (a truncated copy)."""
    ends = [info["data_offsets"][1] for k, info in header.items() if k != "__metadata__" and isinstance(info, dict)
            and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2]
    need = max([e for e in ends if isinstance(e, int)], default=0)
    if len(blob) - start < need:
        raise CheckpointError(f"{where} is truncated ({len(blob)} bytes, its header needs {start + need}): "
                              "the copy or the write was cut short; copy it again or retrain")


def embedded_meta(header: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The checkpoint metadata stored in the header, or None for a file without it (the older pair format)."""
    stored = header.get("__metadata__")
    if not isinstance(stored, dict) or META_KEY not in stored:
        return None
    meta = loads_json(stored[META_KEY], f"{where} (metadata in the header)")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} holds metadata that is not a JSON object; restore it or retrain")
    return meta


def read_header(path: Path) -> dict[str, Any]:
    """Only the safetensors header of ``path`` (a regular file), without reading the tensors."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        start = f.read(8)
        n = int.from_bytes(start, "little") if len(start) == 8 else 0
        body = f.read(min(n, MAX_HEADER_BYTES, max(0, size - 8)))
    return split_header(start + body, str(path))[0]


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
