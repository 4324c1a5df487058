"""One search for Fashion-MNIST (issue 20): ``store.data.fashion_mnist_search`` (the order) and
``fashion_mnist_location`` (the folder found). The loader reads what the search finds, the course's environment
check reports the same folder, $DDIM_LESSON_DATA is honoured, Debian's IDX files are found, and the not-found
error names the folders searched; no other module reads $DDIM_LESSON_DATA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from disk_datasets import write_idx_set

import ddim_lesson
from ddim_lesson.course import env
from ddim_lesson.course import exercises as E
from ddim_lesson.store import data
from ddim_lesson.store.data import (
    DataNotFoundError,
    fashion_mnist_location,
    fashion_mnist_search,
    from_uint8,
    load_images,
)

PKG = Path(ddim_lesson.__file__).resolve().parent
HAVE_DEBIAN = all((data.DEBIAN_DIR / (f + ".gz")).exists() for f in data.IDX_FILES)
PENDING: set[str] = set()  # modules with a search of their own, still to move onto this one (cli/gpu_run.py moved)


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No dataset in any of the default places: Debian's folder and the cache are empty tmp folders."""
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.skipif(not HAVE_DEBIAN, reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_idx_files_are_found_and_are_what_the_loader_reads(monkeypatch):
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    assert fashion_mnist_location() == data.DEBIAN_DIR
    assert env.check_environment()["dataset"] == data.DEBIAN_DIR  # the course's check reports the same folder
    x, y = load_images("fashion-mnist", train=False, with_labels=True)
    assert x.shape == (10_000, 1, 28, 28) and torch.equal(torch.bincount(y), torch.full((10,), 1000))


def test_ddim_lesson_data_with_fake_idx_files_is_found_and_loaded(nowhere, monkeypatch):
    folder = nowhere / "mine"
    arrays = write_idx_set(folder, 6, 4, gz=True)
    assert fashion_mnist_location() is None and E.fashion_mnist_location() is None
    monkeypatch.setenv("DDIM_LESSON_DATA", str(folder))
    assert fashion_mnist_search()[:2] == [folder, data.DEBIAN_DIR]
    assert fashion_mnist_location() == E.fashion_mnist_location() == env.check_environment()["dataset"] == folder
    x, y = load_images("fashion-mnist", train=False, with_labels=True)
    assert torch.equal(x[:, 0], from_uint8(torch.from_numpy(arrays["t10k-images-idx3-ubyte"])))
    assert torch.equal(y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())


def test_a_torchvision_root_is_found_in_its_raw_folder_and_read_in_place(nowhere, monkeypatch):
    raw = nowhere / "tv" / "FashionMNIST" / "raw"
    arrays = write_idx_set(raw, 5, 3, gz=False)
    monkeypatch.setenv("DDIM_LESSON_DATA", str(nowhere / "tv"))
    assert fashion_mnist_location() == raw
    x = load_images("fashion-mnist", train=True)
    assert torch.equal(x[:, 0], from_uint8(torch.from_numpy(arrays["train-images-idx3-ubyte"])))
    assert not (nowhere / "cache").exists()  # read where it lies: nothing unpacked


def test_the_root_argument_comes_first_and_an_incomplete_folder_is_passed_over(nowhere, monkeypatch):
    env_folder, arg_folder = nowhere / "env", nowhere / "arg"
    write_idx_set(env_folder, 5, 3, gz=True)
    write_idx_set(arg_folder, 7, 2, gz=True)
    monkeypatch.setenv("DDIM_LESSON_DATA", str(env_folder))
    assert fashion_mnist_location(arg_folder) == arg_folder and load_images(root=arg_folder).shape[0] == 7
    (arg_folder / "t10k-labels-idx1-ubyte.gz").unlink()  # three of four files: not a dataset
    assert fashion_mnist_location(arg_folder) == env_folder and load_images(root=arg_folder).shape[0] == 5


def test_the_not_found_error_names_every_folder_searched(nowhere):
    with pytest.raises(DataNotFoundError) as err:
        load_images("fashion-mnist", root=nowhere / "given")
    searched = fashion_mnist_search(nowhere / "given")
    assert searched == [nowhere / "given", nowhere / "debian", nowhere / "cache"]
    assert f"looked in: {', '.join(map(str, searched))})" in str(err.value)


def test_no_other_module_searches_for_the_dataset():
    found = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
             if re.search(r"environ[^\n]*DDIM_LESSON_DATA", p.read_text())}
    assert "store/data.py" in found
    assert found - {"store/data.py"} <= PENDING, f"a second search for the dataset in {found - {'store/data.py'}}"
    assert env.fashion_mnist_location is data.fashion_mnist_location is E.fashion_mnist_location
