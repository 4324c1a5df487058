"""Data: Fashion-MNIST from the Debian files and from $DDIM_LESSON_DATA, the missing-data error,
the 2-D toy sets against their closed-form statistics, and the pixel-scaling helpers."""

import gzip
import math
import struct

import pytest
import torch

from ddim_lesson.store import data
from ddim_lesson.store.data import (
    DataNotFoundError,
    from_uint8,
    load_dataset,
    load_images,
    to_uint8,
    to_unit,
    toy_2d,
)

HAVE_DEBIAN = all((data.DEBIAN_DIR / (f + ".gz")).exists() for f in data.IDX_FILES)


def write_fake_idx(folder, n_train=5, n_test=3, seed=0):
    """Write the four Fashion-MNIST files in the IDX format (big-endian header, then uint8 data), gzipped."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x00000803, n, 28, 28) + images.numpy().tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x00000801, n) + labels.numpy().tobytes())
        out[split] = (images, labels)
    return out


@pytest.mark.slow  # reads all 70,000 images (a few seconds on 2 cores)
@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({data.DEBIAN_DIR})")
def test_fashion_mnist_from_debian_files(monkeypatch):
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    x, y = load_images("fashion-mnist", train=True, with_labels=True)
    xt, yt = load_images("fashion-mnist", train=False, with_labels=True)
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    assert y.dtype == torch.int64 and sorted(y.unique().tolist()) == list(range(10))
    # the dataset is balanced: 6000 training and 1000 test images per class
    assert torch.bincount(y).tolist() == [6000] * 10 and torch.bincount(yt).tolist() == [1000] * 10
    # the published per-pixel mean of the training set is 0.2860 on [0, 1], i.e. 2·0.2860 - 1 on [-1, 1]
    assert abs(float(x.mean()) - (2 * 0.2860 - 1)) < 2e-3


def test_ddim_lesson_data_folder_is_found_first(tmp_path, monkeypatch):
    fake = write_fake_idx(tmp_path / "mine")
    monkeypatch.setenv("DDIM_LESSON_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    x, y = load_images("fashion-mnist", train=True, with_labels=True)
    xt, yt = load_images("fashion-mnist", train=False, with_labels=True)
    assert x.shape == (5, 1, 28, 28) and xt.shape == (3, 1, 28, 28)
    assert torch.equal(x[:, 0], from_uint8(fake["train"][0])) and torch.equal(y, fake["train"][1].long())
    assert torch.equal(xt[:, 0], from_uint8(fake["t10k"][0])) and torch.equal(yt, fake["t10k"][1].long())


def test_a_second_data_folder_does_not_reuse_the_first_ones_cache(tmp_path, monkeypatch):
    """Unpacked copies are kept per source folder, so switching folders never serves stale images."""
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    for name, seed in (("a", 1), ("b", 2)):
        fake = write_fake_idx(tmp_path / name, seed=seed)
        monkeypatch.setenv("DDIM_LESSON_DATA", str(tmp_path / name))
        assert torch.equal(load_images("fashion-mnist", train=True)[:, 0], from_uint8(fake["train"][0]))
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_missing_data_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError) as err:
        load_images("fashion-mnist")
    msg = str(err.value)
    assert "DDIM_LESSON_DATA" in msg  # 1: a folder of your own
    assert "apt-get install dataset-fashion-mnist" in msg  # 2: Debian's package
    assert "download=True" in msg  # 3: torchvision's download
    assert str(tmp_path / "debian") in msg
    assert isinstance(err.value, FileNotFoundError)


def test_unknown_image_dataset():
    with pytest.raises(ValueError, match="unknown image dataset 'svhn'; allowed: fashion-mnist, mnist, cifar10"):
        load_images("svhn")


def test_two_moons_matches_closed_form_statistics():
    """Before the noise: x = ±(cos u - 1/2), y = ±(sin u - 1/4), u ~ U[0, π], scaled by 1.4.
    So E = 0, Var x = 1.4²(1/2 + 1/4) + 0.05², Var y = 1.4²(1/2 - 1/π + 1/16) + 0.05²."""
    pts = toy_2d("two-moons", 40000, torch.Generator().manual_seed(0)).double()
    assert pts.shape == (40000, 2)
    var_x = 1.96 * 0.75 + 0.0025
    var_y = 1.96 * (0.5 - 1 / math.pi + 1 / 16) + 0.0025
    assert pts.mean(0).abs().max() < 0.02
    assert abs(float(pts[:, 0].var()) - var_x) < 0.03 and abs(float(pts[:, 1].var()) - var_y) < 0.015


def test_toy_sets_shapes_and_geometry():
    g = torch.Generator().manual_seed(1)
    for name in data.TOY_DATASETS:
        pts = toy_2d(name, 1000, g)
        assert pts.shape == (1000, 2) and pts.dtype == torch.float32 and torch.isfinite(pts).all()
    r = toy_2d("8-gaussians", 4000, g).norm(dim=1)
    assert abs(float(r.mean()) - 1.4) < 0.02  # 8 modes on the circle of radius 1.4, σ = 0.1
    roll = toy_2d("swiss-roll", 4000, g).norm(dim=1) * 7  # radius = angle/7, angle in [1.5π, 4.5π]
    assert roll.min() > 1.5 * math.pi - 1.5 and roll.max() < 4.5 * math.pi + 1.5
    board = toy_2d("checkerboard", 4000, g) / 0.9
    assert torch.all((board.floor().sum(1) % 2) == 0)  # only the "black" squares are filled


def test_toy_sets_are_reproducible_and_validated():
    a = toy_2d("two-moons", 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, toy_2d("two-moons", 10, torch.Generator().manual_seed(3)))
    assert load_dataset("two-moons", n_toy=7, seed=0).shape == (7, 2)
    train, test = load_dataset("two-moons", train=True, n_toy=7), load_dataset("two-moons", train=False, n_toy=7)
    assert not torch.equal(train, test)
    with pytest.raises(ValueError, match="unknown toy dataset 'spiral'"):
        toy_2d("spiral", 10)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        toy_2d("two-moons", 0)


def test_uint8_round_trip():
    every = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = from_uint8(every)
    assert x.dtype == torch.float32 and float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.equal(to_uint8(x), every)
    assert torch.equal(to_unit(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0])), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
