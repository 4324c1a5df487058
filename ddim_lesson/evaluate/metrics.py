"""Classifier FID: the Fréchet distance between Gaussian fits of classifier features.

FID(P, Q) = ||μ_P - μ_Q||² + tr(C_P + C_Q - 2 (C_P C_Q)^{1/2}), with μ, C the mean and covariance
of the penultimate-layer features of the shipped Fashion-MNIST classifier (128-d), not Inception's.
Numbers are therefore comparable with each other, not with FIDs from papers.

The reference statistics of the test set ship beside the classifier
(``weights/classifier.test-stats.*``), so FID needs no dataset; other splits are computed once
and cached under ``cache_dir()/fid``, keyed by the classifier's SHA-256.
``python -m ddim_lesson.cli.fid_tool --floor 500`` prints the FID floor (test set vs held-out training images),
``--write-reference`` rewrites the shipped statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..nets.classifier import HOLDOUT
from ..store.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from ..store.classifier_io import CLASSIFIER_WEIGHTS, load_classifier
from ..store.data import cache_dir, from_uint8, to_uint8

SHIPPED_STATS = CLASSIFIER_WEIGHTS.with_name(CLASSIFIER_WEIGHTS.name + ".test-stats")
SPLITS = ("test", "train-holdout")


# -- the maths ---------------------------------------------------------------------------------
def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (D, D) by eigen-decomposition, in float64.

    Eigenvalues below zero (round-off) are set to zero, so the result is real and PSD.
    """
    a = _symmetric(a)
    w, v = torch.linalg.eigh(a)  # a = v diag(w) vᵀ
    return (v * w.clamp(min=0).sqrt()) @ v.T


def trace_sqrt_product(c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """tr((C1 C2)^{1/2}) for PSD C1, C2: (D, D), as tr((√C1 C2 √C1)^{1/2}), which is symmetric and stable."""
    s1 = sqrtm_psd(c1)
    m = _symmetric(s1 @ c2.double() @ s1)  # similar to C1 C2, so the same eigenvalues
    return torch.linalg.eigvalsh(m).clamp(min=0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2). mu: (D,), cov: (D, D). Returns a float ≥ 0."""
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or cov1.shape != (D, D) or cov2.shape != (D, D):
        raise ValueError(f"need mu (D,) and cov (D, D) for both; got {tuple(mu1.shape)}, {tuple(cov1.shape)}, "
                         f"{tuple(mu2.shape)}, {tuple(cov2.shape)}")
    diff = mu1 - mu2
    fd = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt_product(cov1, cov2)
    return max(float(fd), 0.0)  # round-off can give -1e-12 for identical inputs


@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,) and covariance (D, D) of n feature vectors, float64."""

    mu: torch.Tensor
    cov: torch.Tensor
    n: int

    @classmethod
    def of(cls, feats: torch.Tensor) -> FeatureStats:
        """Fit a Gaussian to features (N, D), N ≥ 2; the covariance is the unbiased one (divides by N-1)."""
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f"need features of shape (N >= 2, D), got {tuple(feats.shape)}")
        f = feats.double()
        return cls(f.mean(0), torch.cov(f.T), int(f.shape[0]))

    def distance(self, other: FeatureStats) -> float:
        """The Fréchet distance to another fit (symmetric)."""
        return frechet_distance(self.mu, self.cov, other.mu, other.cov)


def _symmetric(a: torch.Tensor) -> torch.Tensor:
    a = a.double()
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need a square matrix (D, D), got {tuple(a.shape)}")
    return (a + a.T) / 2


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared difference of two tensors, over every entry, in their units.

    a, b: any shape, the same for both, non-empty (a batch (B, C, H, W) or one image (C, H, W)); shapes that
    would only broadcast are refused. On images in [-1, 1] it is 4 times the MSE with pixels in [0, 1] (the
    scale of the DDIM paper's Table 2).
    """
    if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"a and b must be non-empty tensors of the same shape, got {tuple(getattr(a, 'shape', ()))} "
                         f"and {tuple(getattr(b, 'shape', ()))}")
    return float(((a - b) ** 2).mean())


# -- features ----------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _cached_classifier(path: str) -> tuple[nn.Module, str]:
    model, meta = load_classifier(path)
    return model, meta["weights_sha256"]


def classifier_and_sha(path: str | Path = CLASSIFIER_WEIGHTS) -> tuple[nn.Module, str]:
    """The feature classifier (eval mode, CPU; loaded once) and the SHA-256 of its weights."""
    return _cached_classifier(str(path))


@torch.no_grad()
def features(images: torch.Tensor, classifier: nn.Module | None = None, batch_size: int = 500,
             quantize: bool = True) -> torch.Tensor:
    """Penultimate-layer features of images (N, 1, 28, 28) in [-1, 1] -> (N, D) float32 on the CPU.

    With ``quantize`` the images are first rounded to 8-bit pixels, as real data is, so samples
    and data are compared at the same precision.
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images must be finite everywhere (allowed: finite values in [-1, 1])")
    clf = classifier if classifier is not None else classifier_and_sha()[0]
    device = next(clf.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device, torch.float32)
        if quantize:
            x = from_uint8(to_uint8(x))
        out.append(clf.features(x).float().cpu())  # (b, D)
    return torch.cat(out)


# -- reference statistics ----------------------------------------------------------------------
def split_images(split: str) -> torch.Tensor:
    """Real images of a split: "test" (10k) or "train-holdout" (the last 10k training images, unseen
    by the classifier). Needs the dataset. Returns (N, 1, 28, 28) in [-1, 1]."""
    from ..store.data import load_images

    if split == "test":
        return load_images("fashion-mnist", train=False)  # type: ignore[return-value]
    if split == "train-holdout":
        return load_images("fashion-mnist", train=True)[-HOLDOUT:]  # type: ignore[index]
    raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


def save_stats(path: str | Path, stats: FeatureStats, **meta: Any) -> Path:
    """Write stats as safetensors (mu, cov) + JSON."""
    return save_checkpoint(path, {"mu": stats.mu, "cov": stats.cov}, {"kind": "fid-stats", "n": stats.n, **meta})


def load_stats(path: str | Path, classifier_sha: str | None = None) -> FeatureStats:
    """Read stats written by :func:`save_stats`; with ``classifier_sha``, insist they came from that classifier."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "fid-stats" or set(tensors) != {"mu", "cov"}:
        raise CheckpointError(f"{path} does not hold FID statistics (mu, cov)")
    if classifier_sha is not None and meta.get("classifier_sha256") != classifier_sha:
        raise CheckpointError(f"{path} was computed with another classifier; recompute it")
    return FeatureStats(tensors["mu"].double(), tensors["cov"].double(), int(meta["n"]))


def reference_stats(split: str = "test", classifier_path: str | Path = CLASSIFIER_WEIGHTS) -> FeatureStats:
    """Feature statistics of a real split, keyed by the classifier's SHA-256.

    Looked up in the shipped file (test split), then the cache; otherwise computed from the
    dataset once and cached.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    clf, sha = classifier_and_sha(classifier_path)
    cached = cache_dir() / "fid" / f"{sha[:16]}-{split}"
    for path in ([SHIPPED_STATS] if split == "test" else []) + [cached]:
        try:
            return load_stats(path, sha)
        except CheckpointError:
            continue
    stats = FeatureStats.of(features(split_images(split), clf))
    save_stats(cached, stats, split=split, dataset="fashion-mnist", classifier_sha256=sha)
    return stats


def fid(images: torch.Tensor, ref: FeatureStats | None = None, classifier: nn.Module | None = None) -> float:
    """FID of images (N, 1, 28, 28) in [-1, 1] against ``ref`` (default: the test set's statistics)."""
    ref = ref if ref is not None else reference_stats("test")
    return FeatureStats.of(features(images, classifier)).distance(ref)


def fid_floor(n: int = HOLDOUT) -> float:
    """FID of the test set against n held-out training images: what real data scores at that sample count."""
    if not (2 <= n <= HOLDOUT):
        raise ValueError(f"n must be in [2, {HOLDOUT}], got {n}")
    return fid(split_images("train-holdout")[:n])


def write_reference(path: str | Path = SHIPPED_STATS) -> Path:
    """Recompute the test-set statistics with the shipped classifier and write them (what ships)."""
    clf, sha = classifier_and_sha()
    stats = FeatureStats.of(features(split_images("test"), clf))
    return save_stats(path, stats, split="test", dataset="fashion-mnist", classifier_sha256=sha,
                      command="python -m ddim_lesson.cli.fid_tool --write-reference")
