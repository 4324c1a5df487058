"""The seed's two other systems end to end: ``--dataset mnist`` and ``--dataset cifar10`` (the "bigger GPU"
recipe's shape, with EMA) train a few steps, checkpoint, resume, sample, invert and export, on small data sets
written here in torchvision's own on-disk formats (MNIST's raw IDX files; CIFAR-10's pickled python batches).

The loaders are checked against an independent reader first: MNIST's files are read by torchvision itself;
CIFAR-10's are also read by torchvision's CIFAR10 class (its MD5 check, which only official files pass, turned
off), and our reader, which unpickles nothing but numpy arrays, must give the same pixels in the same order.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from disk_datasets import write_cifar10, write_mnist
from PIL import Image

from ddim_lesson.cli.main import main
from ddim_lesson.store.checkpoints import load_checkpoint
from ddim_lesson.store.cifar import CifarFileError, read_batch
from ddim_lesson.store.data import DataNotFoundError, from_uint8, load_images
from ddim_lesson.store.pretrained import load_any

TINY = {"mnist": ["--base-channels", "8", "--channel-mults", "1,2", "--num-res-blocks", "1"],
        # the README's CIFAR-10 recipe (mults 1,2,2,2, two res blocks, EMA), 16 times narrower
        "cifar10": ["--base-channels", "8", "--channel-mults", "1,2,2,2", "--num-res-blocks", "2"]}


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("DDIM_LESSON_DATA", str(root))
    return root


def test_mnist_files_load_as_written(data_root):
    written = write_mnist(data_root)
    x, y = load_images("mnist", train=True, with_labels=True)
    want = from_uint8(torch.from_numpy(written["train-images-idx3-ubyte"]))[:, None]  # (N, 1, 28, 28)
    assert torch.equal(x, want) and torch.equal(y, torch.from_numpy(written["train-labels-idx1-ubyte"]).long())
    test = load_images("mnist", train=False)
    assert torch.equal(test, from_uint8(torch.from_numpy(written["t10k-images-idx3-ubyte"]))[:, None])


def test_cifar10_batches_load_as_torchvision_reads_them(data_root, monkeypatch):
    images, ys = write_cifar10(data_root)
    x, y = load_images("cifar10", train=True, with_labels=True)  # (20, 3, 32, 32)
    assert torch.equal(x, from_uint8(torch.from_numpy(images))) and torch.equal(y, torch.from_numpy(ys))
    from torchvision.datasets import CIFAR10, cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)  # MD5 sums: only official files pass
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    ref = CIFAR10(str(data_root), train=True)
    theirs = from_uint8(torch.from_numpy(ref.data).permute(0, 3, 1, 2))  # torchvision: (N, H, W, C)
    assert torch.equal(x, theirs) and ref.targets == y.tolist()
    hwc = from_uint8(torch.from_numpy(images.reshape(len(images), -1)).view(-1, 32, 32, 3).permute(0, 3, 1, 2))
    assert not torch.equal(hwc, theirs), "a reader taking the rows as HWC must fail the same check"
    assert load_images("cifar10", train=False).shape == (6, 3, 32, 32)


def test_cifar10_reader_builds_nothing_but_arrays(tmp_path):
    """A batch that names any other callable (here os.system) is refused before it runs; a damaged one is named."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {marker}",))

    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({"data": Payload(), "labels": []}, protocol=2))
    with pytest.raises(CifarFileError, match=r"names posix\.system|names os\.system"):
        read_batch(bad)
    assert not marker.exists()
    bad.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, protocol=2))
    with pytest.raises(CifarFileError, match=r"'data' must be uint8 of shape \(N, 3072\), got float32"):
        read_batch(bad)
    bad.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, protocol=2))
    with pytest.raises(CifarFileError, match=r"'labels' must be 2 integers in \[0, 9\]"):
        read_batch(bad)
    bad.write_bytes(b"\x80\x02}q\x00")  # a truncated pickle
    with pytest.raises(CifarFileError, match="cannot be read"):
        read_batch(bad)


def test_missing_sets_say_where_they_were_looked_for(data_root):
    for name in ("mnist", "cifar10"):
        with pytest.raises(DataNotFoundError, match=f"{name} not found under {data_root}.*download=True"):
            load_images(name)


def _run(argv: list[str]) -> None:
    assert main(argv) == 0, argv


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_train_checkpoint_resume_sample_invert_export(dataset, data_root, tmp_path, capsys):
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    write_mnist(data_root) if dataset == "mnist" else write_cifar10(data_root)
    common = ["train", "--dataset", dataset, "--steps", "4", "--batch-size", "4", "--lr", "1e-3", "--warmup", "2",
              "--device", "cpu", "--ckpt-every", "2", "--no-progress", *TINY[dataset]]
    run, full = tmp_path / "run", tmp_path / "full"
    _run([*common, "--out", str(full)])
    _run([*common, "--out", str(run), "--stop-after", "2"])
    assert json.loads((run / "checkpoint.json").read_text())["steps"] == 2 and not (run / "model.json").exists()
    _run([*common, "--out", str(run), "--resume"])
    resumed, uninterrupted = load_checkpoint(run / "checkpoint"), load_checkpoint(full / "checkpoint")
    assert resumed[1]["steps"] == 4 and resumed[1]["losses"] == uninterrupted[1]["losses"]
    for k, v in uninterrupted[0].items():  # raw, EMA and optimizer state: the resumed run continued exactly
        assert torch.equal(resumed[0][k], v), k
    assert resumed[1]["dataset"] == dataset

    png = tmp_path / "samples.png"
    _run(["sample", "--model", str(run), "--n", "4", "--steps", "3", "--eta", "0.5", "--device", "cpu",
          "--no-progress", "--out", str(png)])
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)  # (H, W, 3)
    assert min(pixels.shape[:2]) > 2 * shape[1] and pixels.std() > 0  # a 2×2 grid of images, not a blank
    grey = (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert grey == (shape[0] == 1), "one channel is drawn grey, three in colour"
    _run(["invert", "--model", str(run), "--n", "2", "--steps", "3", "--device", "cpu", "--no-progress",
          "--out", str(tmp_path / "inversion.png")])
    assert "reconstruction MSE" in capsys.readouterr().out

    _run(["export", str(run), str(tmp_path / "model")])
    model, schedule, meta, _ = load_any(str(tmp_path / "model"))
    assert (model.config.in_channels, model.config.image_size) == (shape[0], shape[1]) and meta["dataset"] == dataset
    ema = {k[len("ema."):]: v for k, v in resumed[0].items() if k.startswith("ema.")}
    assert ema and all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
    assert not torch.equal(ema[next(iter(ema))], resumed[0]["model." + next(iter(ema))]), "EMA must not be raw"
    x = model(torch.randn(2, *shape), torch.tensor([10, 900]))
    assert x.shape == (2, *shape) and torch.isfinite(x).all()


def test_cifar10_download_fetches_once_then_reads_the_batches(data_root, monkeypatch):
    """download=True asks torchvision for the official archive (its URL and MD5) only while the batches are missing,
    then reads them through store.cifar; the fetch is faked here by writing the test set (no network)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets import utils as tv_utils

    calls = []

    def fake_fetch(url, root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        write_cifar10(Path(root))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_fetch)
    x = load_images("cifar10", download=True)
    assert calls == [(CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5)] and x.shape == (20, 3, 32, 32)
    assert torch.equal(load_images("cifar10", download=True), x) and len(calls) == 1
