"""The models that ship inside the package (``ddim_lesson/weights/``), loaded by name."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .checkpoints import load_model
from .schedules import NoiseSchedule

WEIGHTS_DIR = Path(__file__).parent / "weights"
PRETRAINED = {
    "fashion-mnist": "fashion-mnist",  # UNet, 28×28×1, linear schedule T=1000
    "two-moons": "two-moons",  # MLP for the 2-D toy set
}


def pretrained(name: str = "fashion-mnist") -> tuple[nn.Module, NoiseSchedule]:
    """Load a shipped model (EMA weights, eval mode, CPU) and the schedule it was trained with."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; allowed: {', '.join(PRETRAINED)}")
    model, schedule, _ = load_model(WEIGHTS_DIR / PRETRAINED[name], device="cpu")
    return model, schedule


def pretrained_meta(name: str = "fashion-mnist") -> dict:
    """The JSON metadata of a shipped model: how it was trained, on what, for how long."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; allowed: {', '.join(PRETRAINED)}")
    _, _, meta = load_model(WEIGHTS_DIR / PRETRAINED[name], device="cpu")
    return meta
