"""Training a class-conditional denoiser: labels, label dropout, and starting from an unconditional model.

Classifier-free guidance needs one network that is both conditional and unconditional. Training
gets there by replacing each label with the "no label" token (``num_classes``) with probability
``p`` (Ho & Salimans 2022, Algorithm 1), so the same weights learn ε(x_t, t, y) and ε(x_t, t, ∅).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..store.checkpoints import load_model


def drop_labels(y: torch.Tensor, p: float, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the "no label" token ``num_classes`` with probability p. y: (B,) int64 -> (B,)."""
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p  # (B,) bool
    return torch.where(drop, torch.full_like(y, num_classes), y)


def init_from_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Copy the weights of a saved model (a shipped name or a checkpoint path) into ``model``; returns
    the names ``model`` has that the source lacked.

    The one allowed difference is the label embedding, which keeps its own initialisation: its
    "no label" row is zero, so at step 0 the conditional UNet given no label computes exactly what
    the unconditional model does. Any other mismatch raises ValueError.
    """
    from ..store.pretrained import PRETRAINED, weights_path

    source, _, _ = load_model(weights_path(str(path)) if str(path) in PRETRAINED else path, device="cpu")
    want, have = model.state_dict(), source.state_dict()
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if want[k].shape != have[k].shape)
    if extra or shapes or any(not k.startswith("label_emb.") for k in missing):
        raise ValueError(
            f"--init-from {path}: its weights do not fit this model ({len(missing)} missing e.g. {missing[:2]}, "
            f"{len(extra)} unexpected e.g. {extra[:2]}, {len(shapes)} of another shape e.g. {shapes[:2]}); "
            "allowed: a model of the same size, differing at most by the label embedding"
        )
    model.load_state_dict(have, strict=False)
    return missing
