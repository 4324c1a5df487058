"""The real Fashion-MNIST images that ship with the package."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from ddim_lesson.course.exercises import fashion_mnist_location
from ddim_lesson.store.assets import N_SAMPLES, SAMPLES_FILE, sample_images


def test_sample_images_shape_range_and_labels():
    x, y = sample_images(with_labels=True)
    assert x.shape == (N_SAMPLES, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # real images have black background
    assert torch.equal(y, torch.arange(10).repeat_interleave(2))  # two per class, ordered by class
    assert torch.equal(sample_images(4), x[:4])
    for bad in (0, 21, 2.0, True):
        with pytest.raises(ValueError, match=r"\[1, 20\]"):
            sample_images(bad)


def test_assets_are_small_and_licensed():
    assert SAMPLES_FILE.stat().st_size < 20_000
    with np.load(SAMPLES_FILE, allow_pickle=False) as f:
        assert set(f.files) == {"images", "labels", "test_index"}
    text = (SAMPLES_FILE.parent / "LICENSE-fashion-mnist.txt").read_text()
    assert "Copyright © [2017] Zalando SE" in text and "MIT License" in text


def _read_idx(folder: Path, name: str, offset: int) -> np.ndarray:
    path = folder / name
    raw = path.read_bytes() if path.exists() else gzip.decompress((folder / (name + ".gz")).read_bytes())
    return np.frombuffer(raw, np.uint8, offset=offset)


@pytest.mark.skipif(fashion_mnist_location() is None, reason="full Fashion-MNIST not installed")
def test_samples_are_the_test_images_they_claim():
    folder = fashion_mnist_location()
    images = _read_idx(folder, "t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28)
    labels = _read_idx(folder, "t10k-labels-idx1-ubyte", 8)
    with np.load(SAMPLES_FILE, allow_pickle=False) as f:
        idx = f["test_index"]
    x, y = sample_images(with_labels=True)
    assert np.array_equal(np.round((x[:, 0].numpy() + 1) * 127.5), images[idx])
    assert np.array_equal(y.numpy(), labels[idx])
    for c in range(10):  # the first two test images of each class
        assert list(idx[y.numpy() == c]) == list(np.flatnonzero(labels == c)[:2])
