"""A small Fashion-MNIST classifier whose penultimate layer gives the features for FID.

Inception weights cannot be downloaded offline, and Inception features are a poor fit for
28×28 grey images anyway; a small classifier trained on the dataset itself is the usual
practice. It ships in ``ddim_lesson/weights/classifier.*`` (safetensors + JSON).
Retrain it with ``python benchmarks/train_classifier.py`` (the exact command is in the JSON).
Loading, and where its files are (``store.classifier_io.CLASSIFIER_WEIGHTS``), live in ``store.classifier_io``;
training in ``train.classifier_train``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

HOLDOUT = 10_000  # the last HOLDOUT training images are never seen by the classifier (the FID floor uses them)


@dataclass
class ClassifierConfig:
    """Size of the CNN: three conv + max-pool stages (28 → 14 → 7 → 3), then two linear layers."""

    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 64)
    feature_dim: int = 128  # width of the penultimate layer: the FID features
    num_classes: int = 10

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three positive ints, got {self.channels}")
        if self.feature_dim < 1 or self.num_classes < 2:
            raise ValueError(f"need feature_dim >= 1 and num_classes >= 2, got {self.feature_dim}, {self.num_classes}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class FashionClassifier(nn.Module):
    """x: (B, 1, 28, 28) in [-1, 1] -> logits (B, num_classes); :meth:`features` gives (B, feature_dim)."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ClassifierConfig()
        c1, c2, c3 = cfg.channels

        def stage(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU())

        self.conv = nn.Sequential(
            stage(cfg.in_channels, c1), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            stage(c1, c2), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            stage(c2, c3), nn.MaxPool2d(2), nn.Flatten(),  # (B, c3 * 3 * 3)
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(c3 * 9, cfg.feature_dim), nn.ReLU())
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (after ReLU). x: (B, 1, 28, 28) -> (B, feature_dim)."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of x: (N, 1, 28, 28) classified as y: (N,)."""
    model.eval()
    hits = sum(int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
               for i in range(0, len(x), batch_size))
    return hits / len(x)
