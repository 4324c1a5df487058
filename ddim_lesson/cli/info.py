"""What ``ddim-lesson info`` prints about a model: fields read from untrusted metadata, made safe.

A checkpoint's JSON is data from wherever the file came from. Every value printed here passes
through :func:`safe_text`, which drops control characters (an escape sequence in a "command" field
must not reach the terminal), and a malformed optional field (``final_loss: "abc"``) is shown as
malformed instead of raising.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ..core.schedules import NoiseSchedule

# C0 and C1 control characters and DEL; tabs and newlines become spaces instead (one line per field)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_FIELD = 300  # characters shown per field


def safe_text(value: Any, limit: int = MAX_FIELD) -> str:
    """``str(value)`` on one line, without control characters, at most ``limit`` characters."""
    s = _CONTROL.sub("", re.sub(r"[\t\n\r]", " ", str(value)))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _number(v: Any) -> float | None:
    """v as a finite float if it is a real number (not a bool, not a string), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _field(compute: Callable[[], str]) -> str:
    """A field's text, or "malformed" when the metadata does not have the expected form."""
    try:
        return compute()
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError):
        return "? (malformed in the metadata)"


def _mapping(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _config(spec: dict[str, Any]) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in _mapping(spec.get("config")).items())


def _metrics(meta: dict[str, Any]) -> str:
    metrics = {}
    if "final_loss" in meta:
        loss = _number(meta["final_loss"])
        metrics["final_loss"] = round(loss, 5) if loss is not None else "? (malformed)"
    metrics |= _mapping(meta.get("metrics"))
    return ", ".join(f"{k}={v}" for k, v in metrics.items()) or "none recorded"


def _loss(meta: dict[str, Any]) -> str:
    losses = meta.get("loss_history") or meta.get("losses") or []
    if not isinstance(losses, list) or not losses:
        return "no history"
    first, last = _number(losses[0]), _number(losses[-1])
    if first is None or last is None:
        return f"? (malformed: {len(losses)} points)"
    return f"{first:.4f} -> {last:.4f} ({len(losses)} points)"


def _wall(meta: dict[str, Any]) -> str:
    wall = _number(meta.get("wall_time_s"))
    return f"{wall:g} s ({wall / 60:.1f} min)" if wall is not None else "?"


def info_lines(meta: dict[str, Any], params: int, schedule: NoiseSchedule, where: str,
               training: bool) -> list[tuple[str, str]]:
    """The (field, value) pairs ``ddim-lesson info`` prints, each value safe to print (:func:`safe_text`)."""
    meta = _mapping(meta)
    spec = _mapping(meta.get("model"))
    sched = " ".join(f"{k}={v}" for k, v in schedule.to_dict().items() if k != "kind")
    rows = [
        ("file", lambda: where),
        ("kind", lambda: "training checkpoint (raw + EMA weights + optimizer state: resume it, or export it)"
         if training else "model (EMA weights, ready to sample)"),
        ("type", lambda: str(spec.get("type", "?"))),
        ("params", lambda: f"{params:,}"),
        ("config", lambda: _config(spec)),
        ("schedule", lambda: f"{schedule.kind} {sched}"),
        ("dataset", lambda: str(meta.get("dataset", "?"))),
        ("steps", lambda: str(meta.get("steps", "?"))),
        ("device", lambda: f"{meta.get('device', '?')} (world size {meta.get('world_size', 1)})"),
        ("wall time", lambda: _wall(meta)),
        ("command", lambda: str(meta.get("command", "?"))),
        ("metrics", lambda: _metrics(meta)),
        ("loss", lambda: _loss(meta)),
        ("torch", lambda: str(meta.get("torch", "?"))),
    ]
    return [(key, safe_text(_field(compute))) for key, compute in rows]
