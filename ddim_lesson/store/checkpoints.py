"""Checkpoints: one safetensors file with its JSON metadata in the header. Never unpickles.

A checkpoint ``NAME`` is ``NAME.safetensors``: the tensors, and in the safetensors header
(``__metadata__``) the JSON metadata: model type and config, noise schedule, dataset, training
steps, device, wall time, command and metrics, with the SHA-256 of the weights and of the JSON
itself. One atomic rename publishes weights and metadata together, so a kill at any moment
leaves the old checkpoint or the new one. ``NAME.json`` is a readable copy written after it; the
loader trusts the header. Files of the older format (a ``.safetensors`` with its metadata in
``NAME.json`` beside it, as the shipped models are) still load.

Training writes with ``keep_previous``: the last checkpoint is kept as ``NAME.prev.safetensors``,
and :func:`load_newest` falls back to it (and says so) when ``NAME.safetensors`` is missing or
damaged. What a checkpoint may hold is checked in :mod:`ddim_lesson.store.checkpoint_checks`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..core.distill import EpsFromV
from ..core.schedules import NoiseSchedule
from ..nets.models import model_type_of
from .atomic import atomic_write, previous_path
from .checkpoint_checks import build_checked, check_finite, check_header_dtypes, check_schedule_dict
from .checkpoint_files import (
    META_KEY,
    CheckpointError,
    check_complete,
    embedded_meta,
    loads_json,
    read_header,
    read_regular,
    split_header,
    weights_sha256,
)

FORMAT = "ddim_lesson/2"  # metadata in the safetensors header
PAIR_FORMAT = "ddim_lesson/1"  # metadata in NAME.json beside NAME.safetensors (the shipped models)
META_SHA_KEY = META_KEY + ".sha256"
MAX_JSON_BYTES = 256 << 20

__all__ = ["CheckpointError", "FORMAT", "load_checkpoint", "load_model", "load_newest", "save_checkpoint"]


class CheckpointWarning(UserWarning):
    """A checkpoint was unusable and the previous one was loaded instead."""


@dataclass
class Loaded:
    """A checkpoint as read: its tensors and metadata, the file they came from, and files skipped on the way."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path
    skipped: list[str] = field(default_factory=list)

    def note(self) -> str:
        """One line that says which file was used (and why, when it is the previous one)."""
        step = f" (step {self.meta['steps']})" if "steps" in self.meta else ""
        if not self.skipped:
            return f"{self.path}{step}"
        return f"the previous checkpoint {self.path}{step}, because {'; '.join(self.skipped)}"


def _paths(path: str | Path) -> tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json). A run folder gives its
    ``model`` files if present, else its ``checkpoint`` files."""
    p = Path(path)
    if p.is_dir():
        has_model = any((p / f"model{s}").exists() for s in (".safetensors", ".json"))
        p = p / ("model" if has_model else "checkpoint")
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                    keep_previous: bool = False) -> Path:
    """Write tensors and meta as one safetensors file, atomically, plus a readable JSON copy.
    With ``keep_previous`` the file it replaces is kept as NAME.prev.safetensors. Returns the .safetensors path."""
    st_path, js_path = _paths(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": FORMAT, **meta, "weights_sha256": weights_sha256(tensors)}
    text = json.dumps(meta)
    header = {META_KEY: text, META_SHA_KEY: hashlib.sha256(text.encode()).hexdigest()}
    atomic_write(st_path, st_save(tensors, metadata=header), keep_previous)
    atomic_write(js_path, json.dumps(meta, indent=1).encode())
    return st_path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read one checkpoint file, with no fallback. Raises CheckpointError saying what is wrong and what to do."""
    st_path, js_path = _paths(path)
    if not st_path.exists():
        raise CheckpointError(f"{st_path} does not exist: pass NAME, NAME.safetensors or a run folder "
                              "(files of the older format also need NAME.json beside it)")
    blob = read_regular(st_path)
    header, start = split_header(blob, str(st_path))
    meta = embedded_meta(header, str(st_path))
    pair = meta is None
    if pair:
        meta = _pair_meta(js_path)
    elif hashlib.sha256(header["__metadata__"][META_KEY].encode()).hexdigest() != header["__metadata__"].get(
            META_SHA_KEY):
        raise CheckpointError(f"{st_path}: its metadata does not match its checksum: the file is corrupted; "
                              "copy it again or retrain")
    check_complete(header, blob, start, str(st_path))
    if pair and hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{st_path} does not match {js_path.name} (checksum differs): the file is truncated, corrupted, "
            "or from another run; copy both files again or retrain")
    check_header_dtypes(header, str(st_path))
    try:
        tensors = st_load(blob)  # safetensors: a JSON header and raw bytes; nothing is unpickled
    except Exception as e:  # SafetensorError, or anything a malformed header provokes
        raise CheckpointError(f"{st_path} is not a readable safetensors file ({e}); copy it again or retrain") from None
    if not pair and weights_sha256(tensors) != meta.get("weights_sha256"):
        raise CheckpointError(f"{st_path}: its weights do not match their checksum: the file is corrupted; "
                              "copy it again or retrain")
    check_finite(tensors, str(st_path))
    return tensors, meta


def _pair_meta(js_path: Path) -> dict[str, Any]:
    """The metadata of the older format, from NAME.json."""
    if not js_path.exists():
        raise CheckpointError(f"{js_path} does not exist: this checkpoint keeps its metadata in NAME.json beside "
                              "NAME.safetensors; copy both files together, or retrain")
    meta = loads_json(read_regular(js_path, MAX_JSON_BYTES), str(js_path))
    if not isinstance(meta, dict) or meta.get("format") not in (PAIR_FORMAT, FORMAT):
        raise CheckpointError(
            f"{js_path} is not a ddim_lesson checkpoint (no 'format': '{FORMAT}'); "
            "pass files written by `ddim-lesson train`, `ddim-lesson export` or save_model")
    return meta


def load_newest(path: str | Path) -> Loaded:
    """The newest complete checkpoint at ``path``: NAME.safetensors, or else the previous one that
    training keeps (NAME.prev.safetensors). ``Loaded.note()`` says which one was used."""
    st_path, _ = _paths(path)
    try:
        return Loaded(*read_checkpoint(path), st_path)
    except CheckpointError as e:
        prev = previous_path(st_path)
        if not prev.exists():
            raise
        try:
            tensors, meta = read_checkpoint(prev)
        except CheckpointError:
            raise e from None
        return Loaded(tensors, meta, prev, [str(e)])


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` (or the older pair). Raises CheckpointError
    with advice; warns (CheckpointWarning) when it had to fall back to the previous checkpoint."""
    loaded = load_newest(path)
    if loaded.skipped:
        warnings.warn(f"using {loaded.note()}", CheckpointWarning, stacklevel=2)
    return loaded.tensors, loaded.meta


def model_meta(model: nn.Module, schedule: NoiseSchedule) -> dict[str, Any]:
    """The metadata a model checkpoint needs to be rebuilt."""
    cfg = model.config  # type: ignore[attr-defined]
    return {"model": {"type": model_type_of(model), "config": cfg.to_dict()}, "schedule": schedule.to_dict()}


def save_model(path: str | Path, model: nn.Module, schedule: NoiseSchedule, **meta: Any) -> Path:
    """Save a model's weights with its config, schedule and any extra metadata."""
    return save_checkpoint(path, model.state_dict(), {**model_meta(model, schedule), **meta})


def model_from_meta(tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "") -> nn.Module:
    """Rebuild a model from checkpoint contents; tensors under ``prefix`` are its state dict. The config is
    bounded and compared with the weights before anything is allocated (see checkpoint_checks)."""
    try:
        spec = meta["model"]
        model_type, config = spec["type"], spec["config"]
    except (KeyError, TypeError) as e:
        msg = f"checkpoint metadata has no usable model spec ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model = build_checked(model_type, config, state)
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        msg = f"checkpoint metadata holds a bad model config ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None
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
    schedule = schedule_from_meta(meta)
    if meta.get("prediction") == "v":  # a distilled student (ddim-lesson distill): seen as model(x_t, t) -> eps
        model = EpsFromV(model, schedule)
    return model.to(device).eval(), schedule, meta


def is_training_checkpoint(tensors: dict[str, torch.Tensor]) -> bool:
    """True for ``checkpoint.*`` written during training (raw, EMA and optimizer state)."""
    return any(k.startswith("ema.") for k in tensors)


def schedule_from_meta(meta: dict[str, Any]) -> NoiseSchedule:
    try:
        check_schedule_dict(meta["schedule"], meta.get("train_config"))
        return NoiseSchedule.from_dict(meta["schedule"])
    except (KeyError, TypeError, ValueError) as e:
        msg = f"checkpoint metadata has no usable noise schedule ({e}); copy the files again or retrain"
        raise CheckpointError(msg) from None


def export_ema(checkpoint: str | Path, out: str | Path, **extra: Any) -> Path:
    """Write the EMA weights of a training checkpoint as a model checkpoint (what ships). Refuses an
    ``out`` that is the source, or any training checkpoint, so a run's resumable state is never replaced."""
    loaded = load_newest(checkpoint)
    if loaded.skipped:
        warnings.warn(f"exporting {loaded.note()}", CheckpointWarning, stacklevel=2)
    tensors, meta = loaded.tensors, loaded.meta
    if not is_training_checkpoint(tensors):
        raise CheckpointError(f"{checkpoint} holds no EMA weights: export needs a training checkpoint (checkpoint.*)")
    check_export_target(loaded.path, out)
    model = model_from_meta(tensors, meta, "ema.")
    schedule = schedule_from_meta(meta)
    keep = {k: v for k, v in meta.items() if k not in ("model", "schedule", "losses", "opt_groups", "format",
                                                        "weights_sha256")}
    losses = meta.get("losses", [])
    return save_model(out, model, schedule, **keep, loss_history=downsample_losses(losses), **extra)


def check_export_target(source: Path, out: str | Path) -> None:
    """Refuse a destination that is a folder, the source checkpoint (or its previous copy), or any file
    that holds a training checkpoint (raw + EMA weights and optimizer state)."""
    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"the destination {out} is a folder; export writes NAME.safetensors and NAME.json: "
                              f"pass a NAME such as {out / 'model'}")
    dst, _ = _paths(out)
    current = source.with_name(source.name.replace(".prev.", "."))
    if any(_same_file(dst, p) for p in (source, current, previous_path(current))):
        raise CheckpointError(f"the destination {out} is the training checkpoint being exported ({source}); "
                              "writing there would replace the run's resumable state: pass another NAME")
    for p in (dst, previous_path(dst)):
        if p.exists() and _holds_training_state(p):
            raise CheckpointError(f"the destination {p} is a training checkpoint (or unreadable); export never "
                                  "writes over one: pass another NAME, or delete it yourself first")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def is_training_state(path: str | Path) -> bool:
    """True when NAME (or NAME.safetensors / NAME.json) names a training checkpoint (raw + EMA weights and
    optimizer state), or a file that cannot be read (then nothing may write over it either)."""
    dst, _ = _paths(path)
    return dst.exists() and _holds_training_state(dst)


def _holds_training_state(path: Path) -> bool:
    try:
        return any(k.startswith("ema.") for k in read_header(path))
    except (CheckpointError, OSError):
        return True  # cannot tell what it is: do not overwrite it


def downsample_losses(losses: list[float], every: int = 25) -> list[float]:
    """Mean loss over consecutive windows of ``every`` steps, to keep a shipped JSON small."""
    return [round(sum(losses[i : i + every]) / len(losses[i : i + every]), 5) for i in range(0, len(losses), every)]
