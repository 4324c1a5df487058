"""Small image data sets written in the on-disk formats the real ones come in, for tests that must not need
them: IDX files (MNIST and Fashion-MNIST, raw or gzipped) and CIFAR-10's pickled python batches.

The pixels are a pattern that tells rows, columns, channels and images apart, so a loader that reads
them in the wrong order fails an equality check rather than passing a shape check:
pixel (i, c, h, w) = (37 i + 101 c + 7 h + 3 w) mod 256.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pattern(n: int, c: int, h: int, w: int, offset: int = 0) -> np.ndarray:
    """(n, c, h, w) uint8 images whose every pixel depends on its image, channel, row and column."""
    i, ch, y, x = np.meshgrid(np.arange(n) + offset, np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((37 * i + 101 * ch + 7 * y + 3 * x) % 256).astype(np.uint8)


def labels(n: int, offset: int = 0) -> np.ndarray:
    return ((np.arange(n) + offset) * 3 % 10).astype(np.uint8)


def idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file: 0, 0, 8 (unsigned byte), ndim, then the sizes big-endian, then the bytes."""
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    """The four IDX files of an MNIST-like set of 28×28 images in ``folder``; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": pattern(n_train, 1, 28, 28)[:, 0],
              "train-labels-idx1-ubyte": labels(n_train),
              "t10k-images-idx3-ubyte": pattern(n_test, 1, 28, 28, offset=1000)[:, 0],
              "t10k-labels-idx1-ubyte": labels(n_test, offset=1000)}
    for name, a in arrays.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(a)))
        else:
            (folder / name).write_bytes(idx_bytes(a))
    return arrays


def write_mnist(root: Path, n_train: int = 24, n_test: int = 8) -> dict[str, np.ndarray]:
    """torchvision's MNIST layout: root/MNIST/raw/ with the four uncompressed IDX files."""
    return write_idx_set(root / "MNIST" / "raw", n_train, n_test, gz=False)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's CIFAR-10 layout: root/cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta,
    each a pickled dict as the official files are ('data': (N, 3072) uint8, rows in channel-major order,
    'labels': a list of ints). Returns the training images (5·per_batch, 3, 32, 32) and their labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    images, ys = pattern(5 * per_batch, 3, 32, 32), labels(5 * per_batch)

    def dump(name: str, x: np.ndarray, y: np.ndarray) -> None:
        entry = {"batch_label": name, "labels": [int(v) for v in y], "data": x.reshape(len(x), -1),
                 "filenames": [f"{name}_{k}.png" for k in range(len(x))]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))

    for b in range(5):
        s = slice(b * per_batch, (b + 1) * per_batch)
        dump(f"data_batch_{b + 1}", images[s], ys[s])
    dump("test_batch", pattern(n_test, 3, 32, 32, offset=1000), labels(n_test, offset=1000))
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return images, ys.astype(np.int64)
