"""What every result file records, and how it is written: provenance (machine, git commit, the
model's SHA-256), a header with the resume key, and atomic JSON + Markdown saves.

Every string a results file holds (a model spec, a command, a machine name) is escaped with :func:`md_safe`
before it is interpolated into Markdown, so a crafted file cannot put HTML or script into a notebook that
renders it.

A resumable run opens its results with :func:`open_results` (the previous cells are kept only if
every setting that moves a number matches) and saves after every cell with :func:`save_results`.
A notebook reads a committed result with :func:`load_results`: its JSON and its Markdown by section, the
provenance lines (machine, commit, load) left out unless asked for (:func:`hide_provenance` does the same for a
table rendered live).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn

from ..core.schedules import NoiseSchedule
from ..store.atomic import atomic_write
from ..store.checkpoint_files import weights_sha256
from ..store.device import machine

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "benchmarks" / "results"  # the committed results (a clone of the course repository has them)


def model_sha256(model: nn.Module) -> str:
    """SHA-256 of the model's weights serialised as safetensors: store's :func:`weights_sha256` of its state dict,
    so it equals the weights_sha256 of a checkpoint saved from it."""
    return weights_sha256(model.state_dict())


def git_commit() -> str | None:
    """The repository's HEAD commit, with "+dirty" when tracked files are modified; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def header(kind: str, cfg: Any, model: nn.Module, schedule: NoiseSchedule, meta: dict[str, Any],
           extra_key: dict[str, Any]) -> dict[str, Any]:
    """The record's head: table kind, config, model (spec, sha256, schedule), machine, commit, resume key."""
    sha = model_sha256(model)
    return {
        "table": kind,
        "config": {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
                   for k, v in asdict(cfg).items()},
        "model": {"spec": cfg.model, "sha256": sha, "schedule": schedule.to_dict() if schedule.kind != "custom"
                  else "custom", "train_steps": meta.get("steps"), "command": meta.get("command")},
        "machine": machine(),
        "git_commit": git_commit(),
        "resume_key": {"model_sha256": sha, **extra_key},
    }


def open_results(path: Path, head: dict[str, Any]) -> dict[str, Any]:
    """Previous results if they match this run's model, classifier and settings, else a fresh record."""
    if path.exists():
        old = json.loads(path.read_text())
        old_key = {**old.get("config", {}), **old.get("resume_key", {})}  # a key added later: the old run's config
        mismatch = [k for k in head["resume_key"] if old_key.get(k) != head["resume_key"][k]]
        if mismatch:
            raise ValueError(f"{path} holds results for other settings ({', '.join(mismatch)} differ); "
                             "pass another --out or delete it")
        config = _merge_config(old.get("config", {}), head["config"])  # a run over fewer settings narrows nothing
        old.update({k: v for k, v in head.items() if k != "cells"} | {"config": config})
        old.setdefault("sessions", []).append(_session(head))
        return old
    return {**head, "cells": {}, "sessions": [_session(head)]}


def _merge_config(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The settings of a record after one more run: list settings are the union (old order, then new)."""
    merged = dict(old)
    for k, v in new.items():
        o = old.get(k)
        merged[k] = (list(o) + [x for x in v if x not in o]) if isinstance(o, list) and isinstance(v, list) else v
    return merged


# What a run records about itself rather than measures: a run that measured nothing leaves the file as it was.
PROVENANCE = ("updated", "sessions", "machine", "git_commit", "config", "model", "threads", "resume_key", "table")


def measured(res: dict[str, Any]) -> str:
    """The measured part of a record (everything but :data:`PROVENANCE`), as canonical JSON, for comparison."""
    return json.dumps({k: v for k, v in res.items() if k not in PROVENANCE}, sort_keys=True, default=str)


def _session(head: dict[str, Any]) -> dict[str, Any]:
    """One invocation of a (resumable) run: when, where, and at which commit."""
    return {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": head["git_commit"],
            "machine": head["machine"]}


def with_suffix(out: str | Path, ext: str) -> Path:
    return Path(f"{out}{ext}")  # not Path.with_suffix: "/tmp/table1.small" must keep its ".small"


def save_results(out: Path, res: dict[str, Any], markdown: Callable[[dict[str, Any]], str]) -> None:
    """Write OUT.json and OUT.md atomically, stamped with the time; nothing when no number changed since the
    file on disk (a run with nothing left to do rewrites neither its settings nor its provenance)."""
    path = with_suffix(out, ".json")
    if path.exists():
        try:
            if measured(json.loads(path.read_text())) == measured(json.loads(json.dumps(res, default=str))):
                return
        except ValueError:
            pass
    res["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write(with_suffix(out, ".json"), json.dumps(res, indent=1).encode())
    atomic_write(with_suffix(out, ".md"), markdown(res).encode())


# Characters that let text leave a Markdown code span, open an HTML tag or a link, or split a table cell:
# each becomes its HTML entity, which Markdown shows as the character itself and never acts on.
MD_ACTIVE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;", "|": "&#124;",
             "[": "&#91;", "]": "&#93;", "\\": "&#92;", "\n": " ", "\r": " "}
_MD_TABLE = str.maketrans(MD_ACTIVE)


def md_text(value: Any) -> str:
    """``str(value)`` safe to interpolate into Markdown or HTML: no tag, code-span break, link or new line."""
    return str(value).translate(_MD_TABLE)


def md_safe(obj: Any) -> Any:
    """A copy of a results record with every string (keys too) escaped by :func:`md_text`; numbers kept."""
    if isinstance(obj, str):
        return md_text(obj)
    if isinstance(obj, dict):
        return {md_text(k) if isinstance(k, str) else k: md_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [md_safe(v) for v in obj]
    return obj


def machine_line(res: dict[str, Any]) -> str:
    """The Markdown line that says where and when a result file was measured."""
    res = md_safe(res)
    m = res["machine"]
    gpu = f", {m['cuda']}" if "cuda" in m else ""
    load = f"; load average {m['load_avg_1min']} when the run last started" if "load_avg_1min" in m else ""
    return (f"Machine: {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}{gpu}; device `{res['config']['device']}`{load}. Git commit `{res['git_commit']}`. "
            f"Updated {res.get('updated', '?')}.")


# --------------------------------------------------------------------------------------
# Reading a committed result, for a notebook
# --------------------------------------------------------------------------------------
class MarkdownText(str):
    """A string that a notebook renders as Markdown (as a cell's last value, or through ``display``)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def is_provenance(line: str) -> bool:
    """A line that says where and when a result was measured (:func:`machine_line`'s, or a header's that holds
    "Machine:" with the commit and load average), rather than what was measured."""
    return "Machine: " in line


def hide_provenance(md: str) -> MarkdownText:
    """A results Markdown (say a table rendered live) without its provenance lines, for a notebook to show."""
    return MarkdownText("\n".join(line for line in md.splitlines() if not is_provenance(line)).strip())


@dataclass(frozen=True)
class CommittedResults:
    """One committed result file: ``data`` (its JSON), ``sections`` (its Markdown: "" for the part above the first
    "## " heading, then each heading's body, provenance lines left out), ``provenance`` (those lines)."""

    name: str
    data: dict[str, Any]
    sections: dict[str, str]
    provenance: tuple[str, ...]

    def markdown(self, section: str | None = None, provenance: bool = False) -> MarkdownText:
        """The Markdown to show: the whole file (``section`` None) or one section's body (its heading left to the
        notebook); ``provenance`` appends the machine/commit/load lines. An unknown section is a ValueError."""
        if section is None:
            parts = [self.sections[""]] + [f"## {k}\n\n{v}" for k, v in self.sections.items() if k]
            text = "\n\n".join(p for p in parts if p)
        elif section in self.sections:
            text = self.sections[section]
        else:
            raise ValueError(f"{self.name} has no section {section!r}; allowed: "
                             + ", ".join(repr(k) for k in self.sections if k))
        return MarkdownText(text + ("\n\n" + "\n\n".join(self.provenance) if provenance and self.provenance else ""))


def split_sections(md: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """(sections, provenance lines) of a results Markdown file: see :class:`CommittedResults`."""
    sections, provenance, key, body = {}, [], "", []
    for line in md.splitlines():
        if line.startswith("## "):
            sections[key] = "\n".join(body).strip()
            key, body = line[3:].strip(), []
        elif is_provenance(line):
            provenance.append(line.strip())
        else:
            body.append(line)
    sections[key] = "\n".join(body).strip()
    return sections, tuple(provenance)


def load_results(name: str, folder: str | Path | None = None) -> CommittedResults | None:
    """The committed result ``name`` (``benchmarks/results/NAME.json`` and ``.md``, or in ``folder``), or None
    when it is not generated yet (or this is an install without the repository's ``benchmarks/``).

    ``name``: a file stem such as "table1", "table2", "guidance"; a path is refused (ValueError).
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"name must be the stem of a file in benchmarks/results (such as 'table1'), got {name!r}")
    base = Path(folder) if folder is not None else RESULTS_DIR
    path, md = base / f"{name}.json", base / f"{name}.md"
    if not path.exists():
        return None
    sections, provenance = split_sections(md.read_text()) if md.exists() else ({"": ""}, ())
    return CommittedResults(name, json.loads(path.read_text()), sections, provenance)
