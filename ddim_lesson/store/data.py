"""Datasets, offline by default: Fashion-MNIST (real), MNIST, CIFAR-10, and 2-D toy sets.

Images come back as float tensors in [-1, 1] of shape (N, C, H, W); use :func:`to_unit` or
:func:`to_uint8` to go back. Fashion-MNIST is looked up in this order:

1. ``$DDIM_LESSON_DATA`` (or the ``root`` argument): a torchvision root holding ``FashionMNIST/raw``,
   or a folder with the four IDX ``.gz`` files;
2. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``);
3. the copy unpacked earlier under :func:`cache_dir`;
4. torchvision's download, if ``download=True`` and a network exists.

:func:`fashion_mnist_search` is that order and :func:`fashion_mnist_location` the folder it finds: the one search,
used by the loader and by the course's environment check alike.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import torch

from ..core.seeds import toy_data_generator
from .cifar import cifar10_present, read_cifar10

IMAGE_DATASETS = ("fashion-mnist", "mnist", "cifar10")
TOY_DATASETS = ("two-moons", "swiss-roll", "8-gaussians", "checkerboard")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


CLASS_NAMES = {"fashion-mnist": FASHION_CLASSES}


def class_label(dataset: str | None, text: str, num_classes: int) -> int:
    """A class label from the command line: a number in [0, num_classes] (num_classes is "no label"), or, for a
    dataset with class names, a name in any case with "-", "_" or " " between words ("dress", "ankle-boot")."""
    names = CLASS_NAMES.get(dataset or "", ())
    if text.strip().isdigit() and int(text) <= num_classes:
        return int(text)
    key = text.strip().lower().replace("_", " ").replace("-", " ")
    for i, name in enumerate(names):
        if key in {n.lower().replace("-", " ") for n in (name, *name.split("/"))}:
            return i
    named = f" or a class name ({', '.join(names)})" if names else ""
    raise ValueError(f"label must be an integer in [0, {num_classes}] ({num_classes}: no label){named}, got {text!r}")


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is in none of the places it is looked for."""


class DataFileError(ValueError):
    """A dataset file that is truncated, damaged, or not the IDX file its name says."""


def _damaged(path: Path, why: str) -> DataFileError:
    fix = ("reinstall it: sudo apt-get install --reinstall dataset-fashion-mnist" if DEBIAN_DIR in path.parents
           else "replace it with a complete copy, or delete it so that the next place in the search order is used")
    return DataFileError(f"the dataset file {path} is damaged ({why}); {fix}")


def check_idx(path: Path, source: Path | None = None) -> None:
    """Raise :class:`DataFileError` naming ``source`` (default ``path``) unless ``path`` is a whole IDX file.

    An IDX file is 0x00 0x00 0x08 ndim, ndim big-endian sizes, then exactly their product in bytes.
    """
    with open(path, "rb") as f:
        head = f.read(4)
        ok = len(head) == 4 and head[:3] == bytes([0, 0, 8]) and 1 <= head[3] <= 4
        raw_dims = f.read(4 * head[3]) if ok else b""
    if not ok or len(raw_dims) != 4 * head[3]:
        raise _damaged(source or path, f"not an IDX file: it starts with bytes {head.hex() or 'none'}")
    dims = struct.unpack(f">{head[3]}I", raw_dims)
    want, size = 4 + 4 * len(dims) + math.prod(dims), path.stat().st_size
    if size != want:
        raise _damaged(source or path, f"{size} bytes where its header promises {want}: truncated or padded")


def cache_dir() -> Path:
    """Where unpacked data is kept: ``$DDIM_LESSON_CACHE`` or ``~/.cache/ddim_lesson``."""
    return Path(os.environ.get("DDIM_LESSON_CACHE", Path.home() / ".cache" / "ddim_lesson"))


def _not_found(name: str, looked: list[Path]) -> DataNotFoundError:
    where = ", ".join(str(p) for p in looked) or "nowhere"
    return DataNotFoundError(
        f"{name} not found (looked in: {where}). Get it one of three ways: "
        f"(1) set DDIM_LESSON_DATA to a folder with the IDX .gz files or a torchvision root; "
        f"(2) on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist; "
        f"(3) with a network: pass download=True (torchvision downloads it)."
    )


def fashion_mnist_search(root: str | Path | None = None) -> list[Path]:
    """The folders Fashion-MNIST is looked for in, in order: ``root``, ``$DDIM_LESSON_DATA``, Debian's, the cache."""
    return [Path(p) for p in (root, os.environ.get("DDIM_LESSON_DATA")) if p] + [DEBIAN_DIR, cache_dir()]


def _find_fashion(root: str | Path | None) -> tuple[Path, Path] | None:
    """(candidate, folder holding the IDX files) for the first candidate that has them: its torchvision layout
    ``FashionMNIST/raw`` (uncompressed, as torchvision reads them), or the four ``.gz`` or four plain files."""
    for c in fashion_mnist_search(root):
        if all((c / "FashionMNIST" / "raw" / f).exists() for f in IDX_FILES):
            return c, c / "FashionMNIST" / "raw"
        if all((c / (f + ".gz")).exists() for f in IDX_FILES) or all((c / f).exists() for f in IDX_FILES):
            return c, c
    return None


def fashion_mnist_location(root: str | Path | None = None) -> Path | None:
    """The folder holding the Fashion-MNIST IDX files that :func:`load_images` would read, or None.

    Only looks; unlike loading, it never unpacks anything."""
    found = _find_fashion(root)
    return None if found is None else found[1]


def _fashion_root(root: str | Path | None) -> Path | None:
    """Find a torchvision root holding FashionMNIST/raw, unpacking IDX .gz files if needed."""
    found = _find_fashion(root)
    if found is None:
        return None
    c, folder = found
    if folder == c:
        return _lay_out_raw(c)
    for f in IDX_FILES:
        check_idx(folder / f)
    return c


def _lay_out_raw(src: Path) -> Path:
    """Copy or gunzip the IDX files of ``src`` into torchvision's layout; returns the root to pass it.

    Each source folder gets its own root under ``cache_dir()/sources/``, keyed by the folder's path
    and its files' sizes and mtimes, so a second source (or changed files) never reuses another's copy.
    """
    root = cache_dir() / "sources" / _source_key(src)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        dst = raw / f
        if dst.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{f}.", suffix=".tmp")  # unique: safe if run concurrently
        try:
            source = src / f if (src / f).exists() else src / (f + ".gz")
            with os.fdopen(fd, "wb") as fout:
                if source.suffix != ".gz":
                    with open(source, "rb") as fin:
                        shutil.copyfileobj(fin, fout)
                else:
                    try:
                        with gzip.open(source, "rb") as fin:
                            shutil.copyfileobj(fin, fout)
                    except (EOFError, OSError, zlib.error) as e:  # truncated, or not gzip at all
                        raise _damaged(source, f"cannot gunzip it: {e}") from None
            check_idx(Path(tmp), source)  # a damaged copy never gets the real name
            os.replace(tmp, dst)  # atomic: a half-written file is never seen under the real name
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return root


def _source_key(src: Path) -> str:
    """A short hash of a source folder's path and its IDX files' sizes and mtimes."""
    h = hashlib.sha1(str(src.resolve()).encode())
    for f in IDX_FILES:
        p = src / f if (src / f).exists() else src / (f + ".gz")
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_images(
    name: str = "fashion-mnist",
    train: bool = True,
    root: str | Path | None = None,
    download: bool = False,
    with_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Load a whole image dataset as float32 in [-1, 1], shape (N, C, H, W).

    With ``with_labels`` also returns the int64 labels, shape (N,).
    """
    from torchvision import datasets

    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; allowed: {', '.join(IMAGE_DATASETS)}")
    if name == "fashion-mnist":
        found = _fashion_root(root)
        if found is None and not download:
            raise _not_found("Fashion-MNIST", fashion_mnist_search(root))
        ds = datasets.FashionMNIST(str(found or cache_dir()), train=train, download=download and found is None)
        x, y = ds.data[:, None], ds.targets  # (N, 1, 28, 28) uint8
    else:
        r = str(root or os.environ.get("DDIM_LESSON_DATA") or cache_dir())
        try:
            if name == "mnist":
                ds = datasets.MNIST(r, train=train, download=download)
                x, y = ds.data[:, None], ds.targets
            else:  # torchvision downloads (MD5-checked); store.cifar reads, building nothing but numpy arrays
                if download and not cifar10_present(r):
                    c = datasets.CIFAR10
                    datasets.utils.download_and_extract_archive(c.url, r, filename=c.filename, md5=c.tgz_md5)
                x, y = read_cifar10(r, train)  # (N, 3, 32, 32) uint8
        except (RuntimeError, FileNotFoundError) as e:
            msg = f"{name} not found under {r} ({e}); pass download=True where a network exists"
            raise DataNotFoundError(msg) from None
    x = from_uint8(x)
    return (x, y.long()) if with_labels else x


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1]. Any shape."""
    return x.float() / 127.5 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped for display. Any shape."""
    return ((x + 1) / 2).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 in [0, 255]. Any shape."""
    return (to_unit(x) * 255).round().to(torch.uint8)


def toy_2d(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n points of a 2-D toy distribution, scaled to roughly unit variance. Returns (n, 2)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    g = generator

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    if name == "two-moons":
        u = rand(n) * math.pi
        upper = rand(n) < 0.5
        x = torch.where(upper, torch.cos(u), 1 - torch.cos(u))
        y = torch.where(upper, torch.sin(u), 0.5 - torch.sin(u))
        pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.4 + 0.05 * randn(n, 2)
    elif name == "swiss-roll":
        u = 1.5 * math.pi * (1 + 2 * rand(n))
        pts = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 7.0 + 0.05 * randn(n, 2)
    elif name == "8-gaussians":
        k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
        pts = 1.4 * torch.stack([torch.cos(k), torch.sin(k)], 1) + 0.1 * randn(n, 2)
    elif name == "checkerboard":
        x1 = rand(n) * 4 - 2
        x2 = rand(n) - torch.randint(0, 2, (n,), generator=g).float() * 2
        x2 = x2 + (torch.floor(x1) % 2)
        pts = torch.stack([x1, x2], 1) * 0.9
    else:
        raise ValueError(f"unknown toy dataset {name!r}; allowed: {', '.join(TOY_DATASETS)}")
    return pts.float()


def load_dataset(name: str, train: bool = True, n_toy: int = 20000, seed: int = 0) -> torch.Tensor:
    """Any dataset by name: images as (N, C, H, W) in [-1, 1], toy sets as (n_toy, 2)."""
    if name in TOY_DATASETS:
        return toy_2d(name, n_toy, toy_data_generator(seed, train))
    return load_images(name, train=train)  # type: ignore[return-value]
