"""CIFAR-10's python batches, read through an unpickler that can build nothing but numpy arrays.

The official files (``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5``, ``test_batch``) are pickles
of a dict {"data": uint8 array (N, 3072), "labels": N ints, ...}. torchvision's ``CIFAR10`` unpickles them
with ``pickle.load`` once their MD5 sums match the official ones; a pickle can run any code it names, so
this reader refuses every class but the three a numpy array needs (``_reconstruct``, ``ndarray``,
``dtype``), whatever the file's checksum. torchvision is still what downloads them.

    x, y = read_cifar10(root, train=True)   # (N, 3, 32, 32) uint8, (N,) int64
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
PIXELS = 3 * 32 * 32
MAX_BATCH_BYTES = 64 * 2**20  # an official batch is 31 MB


class CifarFileError(ValueError):
    """A CIFAR-10 batch that is damaged, not a batch, or a pickle that names anything but a numpy array."""


class _ArraysOnly(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; any other class is refused before it is built.

    ``_codecs.encode`` (str -> bytes) is how Python 3's protocol 2 writes bytes; it runs nothing else.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],  # numpy 1 wrote numpy.core
               ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        raise pickle.UnpicklingError(f"it names {module}.{name}; a CIFAR-10 batch holds only dicts, lists, strings "
                                     "and numpy arrays")


def read_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """One batch file -> (data (N, 3072) uint8, labels: N ints in [0, 9]); CifarFileError naming the file."""
    size = path.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise CifarFileError(f"the CIFAR-10 file {path} is {size} bytes, more than a batch (about 31 MB)")
    try:
        entry = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CifarFileError(f"the CIFAR-10 file {path} cannot be read ({e}); replace it with the official file "
                             "(torchvision's download)") from None
    data, labels = (entry.get("data"), entry.get("labels")) if isinstance(entry, dict) else (None, None)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == PIXELS):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CifarFileError(f"the CIFAR-10 file {path} is not a batch: 'data' must be uint8 of shape (N, {PIXELS}), "
                             f"got {got}")
    if not (isinstance(labels, list) and len(labels) == data.shape[0] and all(
            isinstance(v, int) and 0 <= v <= 9 for v in labels)):
        raise CifarFileError(f"the CIFAR-10 file {path} is not a batch: 'labels' must be {data.shape[0]} integers "
                             "in [0, 9]")
    return data, labels


def cifar10_present(root: str | Path) -> bool:
    """Whether ``root/cifar-10-batches-py`` holds all six batch files (not whether they are whole)."""
    return all((Path(root) / FOLDER / n).is_file() for n in TRAIN_BATCHES + TEST_BATCHES)


def read_cifar10(root: str | Path, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The training (50k) or test (10k) images under ``root/cifar-10-batches-py``: (N, 3, 32, 32) uint8 and
    labels (N,) int64. FileNotFoundError naming the missing files."""
    folder = Path(root) / FOLDER
    names = TRAIN_BATCHES if train else TEST_BATCHES
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}")
    parts = [read_batch(folder / n) for n in names]
    x = torch.from_numpy(np.concatenate([d for d, _ in parts])).view(-1, 3, 32, 32)  # (N, 3, 32, 32): rows are CHW
    y = torch.tensor([v for _, labels in parts for v in labels], dtype=torch.int64)  # (N,)
    return x, y
