"""Load the shipped FID classifier from its safetensors checkpoint (the network itself is in ``classifier``).

Its files are :data:`CLASSIFIER_WEIGHTS` (``.safetensors`` + ``.json``), in the shipped models' folder
:data:`~ddim_lesson.store.pretrained.WEIGHTS_DIR`: the one place the package looks for shipped weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..nets.classifier import ClassifierConfig, FashionClassifier
from .checkpoint_checks import check_matches, check_model_config
from .checkpoints import CheckpointError, load_checkpoint
from .pretrained import WEIGHTS_DIR

CLASSIFIER_WEIGHTS = WEIGHTS_DIR / "classifier"  # the shipped classifier's path without suffix


def load_classifier(path: str | Path = CLASSIFIER_WEIGHTS) -> tuple[FashionClassifier, dict[str, Any]]:
    """Load the classifier (eval mode, CPU) and its JSON metadata. Raises CheckpointError if unusable.

    The config's sizes are bounded, and the network is first built on the meta device and compared with the
    weights in the file, so a config that asks for gigabytes is refused instead of allocated."""
    tensors, meta = load_checkpoint(path)
    try:
        config = meta["classifier"]["config"]
        check_model_config("fashion-cnn", config)
        cfg = ClassifierConfig(**config)
        with torch.device("meta"):
            shell = FashionClassifier(cfg)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a classifier checkpoint with a usable config ({e})") from None
    check_matches(shell, config, tensors)
    model = FashionClassifier(cfg)
    model.load_state_dict(tensors)
    return model.eval(), meta
