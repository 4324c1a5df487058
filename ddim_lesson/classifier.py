"""A small Fashion-MNIST classifier whose penultimate layer gives the features for FID.

Inception weights cannot be downloaded offline, and Inception features are a poor fit for
28×28 grey images anyway; a small classifier trained on the dataset itself is the usual
practice. It ships in ``ddim_lesson/weights/classifier.*`` (safetensors + JSON).
Retrain it with ``python benchmarks/train_classifier.py`` (the exact command is in the JSON).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .env import pick_threads

WEIGHTS = Path(__file__).parent / "weights" / "classifier"
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


def load_classifier(path: str | Path = WEIGHTS) -> tuple[FashionClassifier, dict[str, Any]]:
    """Load the classifier (eval mode, CPU) and its JSON metadata. Raises CheckpointError if unusable."""
    tensors, meta = load_checkpoint(path)
    try:
        model = FashionClassifier(ClassifierConfig(**meta["classifier"]["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a classifier checkpoint matching its config ({e})") from None
    return model.eval(), meta


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of x: (N, 1, 28, 28) classified as y: (N,)."""
    model.eval()
    hits = sum(int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
               for i in range(0, len(x), batch_size))
    return hits / len(x)


def train_classifier(
    out: str | Path = WEIGHTS,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Train on Fashion-MNIST train[:-HOLDOUT] with AdamW and a one-cycle learning rate.

    Saves ``out``.safetensors/.json and returns the metadata (test accuracy included).
    ``threads`` > 0 sets torch's CPU thread count for the run.
    """
    from .data import load_images

    if threads > 0:
        torch.set_num_threads(threads)
    else:
        pick_threads()
    torch.manual_seed(seed)
    x, y = load_images("fashion-mnist", train=True, with_labels=True)  # (60000, 1, 28, 28), (60000,)
    x_test, y_test = load_images("fashion-mnist", train=False, with_labels=True)
    x, y = x[:-HOLDOUT], y[:-HOLDOUT]
    model = FashionClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])  # (B, 10) logits vs (B,) labels
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    acc = accuracy(model, x_test, y_test)
    meta = {
        "classifier": {"type": "fashion-cnn", "config": model.config.to_dict()},
        "dataset": "fashion-mnist",
        "train_images": f"train[:{len(x)}] (the last {HOLDOUT} are held out for the FID floor)",
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "params": sum(p.numel() for p in model.parameters()),
        "test_accuracy": round(acc, 4),
        "wall_time_s": round(wall, 1), "device": "cpu", "torch": torch.__version__,
        "command": command or f"python benchmarks/train_classifier.py --epochs {epochs} --seed {seed}",
    }  # fmt: skip
    save_checkpoint(out, model.state_dict(), meta)
    return meta

