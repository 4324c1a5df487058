"""A few real Fashion-MNIST images that ship with the package, so lessons run without the dataset.

``fashion_mnist_samples.npz`` holds the first two test-set images of each of the 10 classes
(20 images, ordered by class), their labels and their test-set indices. It is read with
``allow_pickle=False``. Fashion-MNIST is MIT-licensed: see ``LICENSE-fashion-mnist.txt`` here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import from_uint8

SAMPLES_FILE = Path(__file__).parent / "fashion_mnist_samples.npz"
N_SAMPLES = 20


def sample_images(n: int | None = None, with_labels: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` shipped images (all 20 if None) as float32 in [-1, 1], shape (n, 1, 28, 28).

    With ``with_labels`` also returns the int64 class labels, shape (n,); names are in
    ``ddim_lesson.store.data.FASHION_CLASSES``.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= N_SAMPLES):
        raise ValueError(f"n must be an integer in [1, {N_SAMPLES}] or None, got {n!r}")
    with np.load(SAMPLES_FILE, allow_pickle=False) as f:
        images, labels = f["images"][:n], f["labels"][:n]  # (n, 28, 28) uint8, (n,) int64
    x = from_uint8(torch.from_numpy(images.copy())[:, None])  # (n, 1, 28, 28) in [-1, 1]
    return (x, torch.from_numpy(labels.copy()).long()) if with_labels else x
