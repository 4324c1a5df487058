"""Load the shipped FID classifier from its safetensors checkpoint (the network itself is in ``classifier``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..nets.classifier import WEIGHTS, ClassifierConfig, FashionClassifier
from .checkpoints import CheckpointError, load_checkpoint


def load_classifier(path: str | Path = WEIGHTS) -> tuple[FashionClassifier, dict[str, Any]]:
    """Load the classifier (eval mode, CPU) and its JSON metadata. Raises CheckpointError if unusable."""
    tensors, meta = load_checkpoint(path)
    try:
        model = FashionClassifier(ClassifierConfig(**meta["classifier"]["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a classifier checkpoint matching its config ({e})") from None
    return model.eval(), meta
