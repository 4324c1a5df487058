"""The models that ship inside the package (``ddim_lesson/weights/``), loaded by name.

How each was trained, with the exact command, is in ``ddim_lesson/weights/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..core.schedules import NoiseSchedule
from .checkpoints import CheckpointError, load_model

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
PRETRAINED = {  # name (its files are WEIGHTS_DIR/NAME.safetensors and NAME.json) -> what it is
    "fashion-mnist": "UNet, 28×28×1, linear schedule T=1000",
    "two-moons": "MLP for the 2-D toy set",
    "fashion-mnist-cond": "class-conditional UNet (10 classes + 'no label'), for guidance",
    # notebook 09's two-networks experiment: narrow UNets (base 16) on disjoint parts of the training set
    "fashion-mnist-half-a": "--subset 0/2: 30,000 images",
    "fashion-mnist-half-b": "--subset 1/2: the other 30,000",
    "fashion-mnist-n100-a": "--subset 0/2 --n-images 100: 100 images, memorised",
    "fashion-mnist-n100-b": "--subset 1/2 --n-images 100: 100 other images",
    "fashion-mnist-fm": "notebook 10's twin: the fashion-mnist recipe with the flow-matching objective (v(x_s, s))",
    "fashion-mnist-distilled": "notebook 11's 4-step student: fashion-mnist distilled 64 -> 4 DDIM steps (predicts v)",
}


def model_help() -> str:
    """``--model``'s help, for every command that takes one: each shipped model by name (read from ``PRETRAINED``,
    so a model added to it appears), then the paths :func:`load_any` also takes."""
    return f"a shipped model ({', '.join(PRETRAINED)}), a checkpoint NAME[.safetensors], or a run folder"


def weights_path(name: str) -> Path:
    """The checkpoint path (without suffix) of a shipped model. Raises ValueError for unknown names."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; allowed: {', '.join(PRETRAINED)}")
    path = WEIGHTS_DIR / name
    if not path.with_suffix(".json").exists() or not path.with_suffix(".safetensors").exists():
        raise CheckpointError(
            f"the shipped model {name!r} is missing from {WEIGHTS_DIR} (needs {path.name}.safetensors and "
            f"{path.name}.json); reinstall the package, or retrain it with the command in {WEIGHTS_DIR / 'README.md'}"
        )
    return path


def load_pretrained(name: str = "fashion-mnist") -> tuple[nn.Module, NoiseSchedule, dict[str, Any]]:
    """(model with EMA weights in eval mode on the CPU, its noise schedule, its JSON metadata)."""
    return load_model(weights_path(name), device="cpu")


def pretrained(name: str | Path = "fashion-mnist") -> tuple[nn.Module, NoiseSchedule]:
    """Load a shipped model (EMA weights, eval mode, CPU) and the schedule it was trained with.

    ``name``: one of ``PRETRAINED`` ("fashion-mnist", "two-moons", "fashion-mnist-cond", and notebook 09's
    "fashion-mnist-half-a"/"-half-b" and "fashion-mnist-n100-a"/"-n100-b"), or a path with a "/"
    (NAME[.safetensors] or a run folder), such as a round of ``ddim-lesson distill``. "fashion-mnist-cond" is
    class-conditional: ``model(x_t, t, y)``, wrapped by :func:`ddim_lesson.cfg` for guidance. Image models take
    x_t of shape (B, 1, 28, 28); the 2-D model takes (B, 2). Both return the ε prediction.
    """
    if isinstance(name, Path) or (name not in PRETRAINED and "/" in str(name)):
        model, schedule, _, _ = load_any(str(name))  # a run folder or NAME[.safetensors]
        return model, schedule
    model, schedule, _ = load_pretrained(name)
    return model, schedule


def pretrained_meta(name: str = "fashion-mnist") -> dict[str, Any]:
    """The JSON metadata of a shipped model: how it was trained, on what, for how long. Read from NAME.json
    alone; the weights are neither read nor checked (:func:`load_pretrained` does both)."""
    meta = json.loads(weights_path(name).with_suffix(".json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}.json in {WEIGHTS_DIR} is not a JSON object; reinstall the package")
    return meta


def load_any(spec: str, device: str | Any = "cpu") -> tuple[nn.Module, NoiseSchedule, dict[str, Any], str]:
    """The one loader for names and paths: a shipped model by name, or a checkpoint by path (NAME,
    NAME.safetensors or a run folder). Returns (model in eval mode on ``device``, schedule, meta, where)."""
    if spec in PRETRAINED:
        path = weights_path(spec)
    else:
        path = Path(spec)
        candidates = [path, path.with_name(path.name + ".json"), path.with_suffix(".json"),
                      path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".prev.safetensors")]
        if not any(p.exists() for p in candidates):
            raise CheckpointError(f"model {spec!r} is neither a shipped model ({', '.join(PRETRAINED)}) "
                                  "nor an existing checkpoint; pass a NAME[.safetensors] path or a run folder")
    model, schedule, meta = load_model(path, device=device)
    return model, schedule, meta, str(path)
