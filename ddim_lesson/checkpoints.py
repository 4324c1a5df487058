"""Checkpoints: safetensors weights beside a JSON file of metadata. Never unpickles.

A checkpoint ``NAME`` is two files, ``NAME.safetensors`` and ``NAME.json``. The JSON holds the
model type and config, the noise schedule, the dataset, training steps, device, wall time,
the command and metrics, plus the SHA-256 of the weights so a mismatched pair is caught.
Both files are written atomically: to a temporary file first, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .models import build_model, model_type_of
from .schedules import NoiseSchedule

FORMAT = "ddim_lesson/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or does not match its config."""


def _paths(path: str | Path) -> tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json). A run folder gives its
    ``model`` files if present, else its ``checkpoint`` files."""
    p = Path(path)
    if p.is_dir():
        p = p / ("model" if (p / "model.json").exists() else "checkpoint")
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors (safetensors) and meta (JSON) atomically. Returns the .safetensors path."""
    st_path, js_path = _paths(path)
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    meta = {"format": FORMAT, **meta, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    _atomic_write(st_path, blob)
    _atomic_write(js_path, json.dumps(meta, indent=1).encode())
    return st_path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`. Raises CheckpointError with advice."""
    st_path, js_path = _paths(path)
    for p in (st_path, js_path):
        if not p.exists():
            raise CheckpointError(
                f"{p} does not exist: a checkpoint is NAME.safetensors with NAME.json beside it; "
                "pass NAME, NAME.safetensors or a run folder, and copy both files together"
            )
    try:
        meta = json.loads(js_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{js_path} is not valid JSON ({e}); restore it or retrain") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{js_path} is not a ddim_lesson checkpoint (no 'format': '{FORMAT}'); "
            "pass files written by `ddim-lesson train`, `ddim-lesson export` or save_model"
        )
    blob = st_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{st_path} does not match {js_path.name} (checksum differs): the file is truncated, corrupted, "
            "or from another run; copy both files again or retrain"
        )
    try:
        tensors = st_load(blob)  # safetensors: a JSON header and raw bytes; nothing is unpickled
    except Exception as e:  # SafetensorError, or anything a malformed header provokes
        raise CheckpointError(f"{st_path} is not a readable safetensors file ({e}); copy it again or retrain") from None
    return tensors, meta


def model_meta(model: nn.Module, schedule: NoiseSchedule) -> dict[str, Any]:
    """The metadata a model checkpoint needs to be rebuilt."""
    cfg = model.config  # type: ignore[attr-defined]
    return {"model": {"type": model_type_of(model), "config": cfg.to_dict()}, "schedule": schedule.to_dict()}


def save_model(path: str | Path, model: nn.Module, schedule: NoiseSchedule, **meta: Any) -> Path:
    """Save a model's weights with its config, schedule and any extra metadata."""
    return save_checkpoint(path, model.state_dict(), {**model_meta(model, schedule), **meta})


def model_from_meta(tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "") -> nn.Module:
    """Rebuild a model from checkpoint contents; tensors under ``prefix`` are its state dict."""
    try:
        spec = meta["model"]
        model = build_model(spec["type"], spec["config"])
    except (KeyError, TypeError) as e:
        msg = f"checkpoint metadata has no usable model spec ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None
    except ValueError as e:
        msg = f"checkpoint metadata holds a bad model config ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    shapes = [k for k in set(want) & set(state) if want[k].shape != state[k].shape]
    if missing or extra or shapes:
        raise CheckpointError(
            f"weights do not match the model config {spec['config']}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]}), "
            f"{len(shapes)} with another shape (e.g. {shapes[:2]}); the JSON and the weights are from different "
            "runs or models: copy the matching pair again or retrain"
        )
    model.load_state_dict(state)
    return model


def load_model(
    path: str | Path, device: str | torch.device = "cpu", prefix: str = ""
) -> tuple[nn.Module, NoiseSchedule, dict[str, Any]]:
    """Load (model in eval mode on ``device``, its noise schedule, the metadata)."""
    tensors, meta = load_checkpoint(path)
    if not prefix and is_training_checkpoint(tensors):
        prefix = "ema."  # a training checkpoint: sample with its EMA weights
    model = model_from_meta(tensors, meta, prefix)
    return model.to(device).eval(), schedule_from_meta(meta), meta


def is_training_checkpoint(tensors: dict[str, torch.Tensor]) -> bool:
    """True for ``checkpoint.*`` written during training (raw, EMA and optimizer state)."""
    return any(k.startswith("ema.") for k in tensors)


def schedule_from_meta(meta: dict[str, Any]) -> NoiseSchedule:
    try:
        return NoiseSchedule.from_dict(meta["schedule"])
    except (KeyError, TypeError, ValueError) as e:
        msg = f"checkpoint metadata has no usable noise schedule ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None


def export_ema(checkpoint: str | Path, out: str | Path, **extra: Any) -> Path:
    """Write the EMA weights of a training checkpoint as a model checkpoint (what ships)."""
    tensors, meta = load_checkpoint(checkpoint)
    if not is_training_checkpoint(tensors):
        raise CheckpointError(f"{checkpoint} holds no EMA weights: export needs a training checkpoint (checkpoint.*)")
    model = model_from_meta(tensors, meta, "ema.")
    schedule = schedule_from_meta(meta)
    keep = {k: v for k, v in meta.items() if k not in ("model", "schedule", "losses", "opt_groups", "format",
                                                        "weights_sha256")}
    losses = meta.get("losses", [])
    return save_model(out, model, schedule, **keep, loss_history=downsample_losses(losses), **extra)


def downsample_losses(losses: list[float], every: int = 25) -> list[float]:
    """Mean loss over consecutive windows of ``every`` steps, to keep a shipped JSON small."""
    return [round(sum(losses[i : i + every]) / len(losses[i : i + every]), 5) for i in range(0, len(losses), every)]
