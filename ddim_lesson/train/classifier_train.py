"""Train the FID classifier on Fashion-MNIST (the network is in ``classifier``; the command is
``python benchmarks/train_classifier.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.seeds import classifier_order_generator, seed_global
from ..nets.classifier import HOLDOUT, FashionClassifier, accuracy
from ..store.checkpoints import save_checkpoint
from ..store.classifier_io import CLASSIFIER_WEIGHTS
from ..store.instruments import Stopwatch


def train_classifier(
    out: str | Path = CLASSIFIER_WEIGHTS,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Train on Fashion-MNIST train[:-HOLDOUT] with AdamW and a one-cycle learning rate.

    Saves ``out``.safetensors/.json and returns the metadata (test accuracy included).
    ``threads`` > 0 sets torch's CPU thread count for the run (0 leaves it as the caller set it).
    """
    from ..store.data import load_images

    if threads > 0:
        torch.set_num_threads(threads)
    seed_global(seed)
    x, y = load_images("fashion-mnist", train=True, with_labels=True)  # (60000, 1, 28, 28), (60000,)
    x_test, y_test = load_images("fashion-mnist", train=False, with_labels=True)
    x, y = x[:-HOLDOUT], y[:-HOLDOUT]
    model = FashionClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    g = classifier_order_generator(seed)
    sw = Stopwatch().start()
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
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, {sw.elapsed:.0f} s", flush=True)
    wall = sw.stop()
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
