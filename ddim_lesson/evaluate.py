"""Replicas of the DDIM paper's Table 1 (FID vs steps S and η) and Table 2 (inversion error vs S),
and the seed-to-seed spread that tells which differences in Table 1 are real.

Each table is run by a function with a dataclass config. Results go to ``OUT.json`` after
every cell (so a long run can stop and resume: finished cells are kept) and to ``OUT.md``,
with the machine, the git commit, the sample counts and the SHA-256 of the model.

    ddim-lesson eval table1 --n 1000 --out benchmarks/results/table1
    ddim-lesson eval table2 --n 500 --out benchmarks/results/table2
    ddim-lesson eval spread --n 500          # how far Table 1's FID moves with the seed alone

Default ``--out``: runs/eval/. benchmarks/results/ (committed) is written only when named, and only by
a run whose resume key (every setting that moves a number, n included) matches the file's.

Every cell of Table 1 starts from the same x_T (one seed per batch), so cells differ only by
the sampler. Samples are rounded to 8-bit pixels before their features are taken, like the data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from .checkpoints import _atomic_write, load_model
from .env import pick_threads
from .inversion import ddim_invert
from .metrics import FeatureStats, classifier_and_sha, features, fid_floor, reference_stats
from .outputs import check_writable
from .samplers import ddim_progressive, ddim_sample, ddpm_progressive
from .schedules import DEFAULT_SPACING, NoiseSchedule

SIGMA_HAT = "sigma_hat"  # the row of Table 1 that samples with σ² = β (ddpm_sample(variance="beta"))
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Table1Config:
    """FID for every (η, S), plus the σ̂ row. ``n`` samples per cell; ``n_at`` overrides n for some S."""

    model: str = "fashion-mnist"  # a shipped model's name, or a checkpoint path
    steps: tuple[int, ...] = (10, 20, 50, 100, 1000)
    etas: tuple[float, ...] = (0.0, 0.2, 0.5, 1.0)
    sigma_hat: bool = True
    n: int = 1000
    n_at: dict[int, int] = field(default_factory=dict)  # e.g. {1000: 500}: fewer samples for the costly S
    batch_size: int = 250
    seed: int = 0
    spacing: str = DEFAULT_SPACING
    floor: bool = True  # also the FID of held-out real images at the same n (needs the dataset)
    device: str = "cpu"
    out: str = "runs/eval/table1"  # benchmarks/results/table1 holds the committed table: named explicitly

    def __post_init__(self) -> None:
        self.steps = tuple(int(s) for s in self.steps)
        self.etas = tuple(float(e) for e in self.etas)
        self.n_at = {int(k): int(v) for k, v in self.n_at.items()}
        for name, v in [("n", self.n), ("batch_size", self.batch_size)] + [(f"n_at[{k}]", v) for k, v in
                                                                            self.n_at.items()]:
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an integer >= 2 (FID needs a covariance), got {v!r}")
        if not self.steps or not (self.etas or self.sigma_hat):
            raise ValueError("need at least one S in steps and one row (an eta, or sigma_hat)")
        if any(e < 0 or e != e for e in self.etas):
            raise ValueError(f"etas must be finite numbers >= 0, got {self.etas}")

    def n_for(self, steps: int) -> int:
        return self.n_at.get(steps, self.n)


@dataclass
class Table2Config:
    """Mean squared error of ddim_sample(ddim_invert(x0)) against x0, for real test images, per S."""

    model: str = "fashion-mnist"
    steps: tuple[int, ...] = (10, 20, 50, 100, 200)
    n: int = 500  # the first n test images
    batch_size: int = 250
    spacing: str = DEFAULT_SPACING
    clip_x0: bool = False  # the exact reverse of the inversion; clipping x0_pred at high noise breaks it
    device: str = "cpu"
    out: str = "runs/eval/table2"

    def __post_init__(self) -> None:
        self.steps = tuple(int(s) for s in self.steps)
        for name, v in (("n", self.n), ("batch_size", self.batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.steps:
            raise ValueError("need at least one S in steps")


@dataclass
class SpreadConfig:
    """How far Table 1's FID moves with the seed alone: some cells re-sampled with other seeds.

    With ``real``, also the FID of disjoint sets of n held-out real images (one per seed), so the
    noise of the floor is measured the same way.
    """

    model: str = "fashion-mnist"
    cells: tuple[tuple[float | str, int], ...] = ((0.0, 10), (1.0, 10), (0.0, 50), (1.0, 50))  # (η or σ̂, S)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n: int = 500
    batch_size: int = 250
    spacing: str = DEFAULT_SPACING
    real: bool = True
    device: str = "cpu"
    out: str = "runs/eval/fid_spread"

    def __post_init__(self) -> None:
        self.cells = tuple((r if r == SIGMA_HAT else float(r), int(s)) for r, s in self.cells)
        self.seeds = tuple(int(s) for s in self.seeds)
        for name, v in (("n", self.n), ("batch_size", self.batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an integer >= 2 (FID needs a covariance), got {v!r}")
        if len(set(self.seeds)) < 2:
            raise ValueError(f"seeds must hold at least 2 different seeds to measure a spread, got {self.seeds}")
        if not self.cells:
            raise ValueError("cells must hold at least one (eta, S) pair")


# -- what every result file records ------------------------------------------------------------
def model_sha256(model: nn.Module) -> str:
    """SHA-256 of the model's weights serialised as safetensors (equals a checkpoint's weights_sha256)."""
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})
    return hashlib.sha256(blob).hexdigest()


def machine() -> dict[str, Any]:
    """Where a result was measured."""
    dev = {"cuda": torch.cuda.get_device_name()} if torch.cuda.is_available() else {}
    load = {"load_avg_1min": round(os.getloadavg()[0], 2)} if hasattr(os, "getloadavg") else {}  # shared CPU?
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), **dev, **load}


def git_commit() -> str | None:
    """The repository's HEAD commit, with "+dirty" when tracked files are modified; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def load_for_eval(spec: str, device: str = "cpu") -> tuple[nn.Module, NoiseSchedule, dict[str, Any]]:
    """A shipped model by name, or a checkpoint path; (model, schedule, meta)."""
    from .pretrained import PRETRAINED, WEIGHTS_DIR

    path = WEIGHTS_DIR / PRETRAINED[spec] if spec in PRETRAINED else Path(spec)
    return load_model(path, device=device)


def _open_results(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Previous results if they match this run's model, classifier and settings, else a fresh record."""
    if path.exists():
        old = json.loads(path.read_text())
        old_key = {**old.get("config", {}), **old.get("resume_key", {})}  # a key added later: the old run's config
        mismatch = [k for k in header["resume_key"] if old_key.get(k) != header["resume_key"][k]]
        if mismatch:
            raise ValueError(f"{path} holds results for other settings ({', '.join(mismatch)} differ); "
                             "pass another --out or delete it")
        old.update({k: v for k, v in header.items() if k != "cells"})
        old.setdefault("sessions", []).append(_session(header))
        return old
    return {**header, "cells": {}, "sessions": [_session(header)]}


def _session(header: dict[str, Any]) -> dict[str, Any]:
    """One invocation of a (resumable) run: when, where, and at which commit."""
    return {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": header["git_commit"],
            "machine": header["machine"]}


def _with(out: str | Path, ext: str) -> Path:
    return Path(f"{out}{ext}")  # not with_suffix: "/tmp/table1.small" must keep its ".small"


def _save(out: Path, res: dict[str, Any], markdown: Callable[[dict[str, Any]], str]) -> None:
    res["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _atomic_write(_with(out, ".json"), json.dumps(res, indent=1).encode())
    _atomic_write(_with(out, ".md"), markdown(res).encode())


def _header(kind: str, cfg: Any, model: nn.Module, schedule: NoiseSchedule, meta: dict[str, Any],
            extra_key: dict[str, Any]) -> dict[str, Any]:
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


# -- Table 1 -----------------------------------------------------------------------------------
def cell_key(eta: float | str, steps: int) -> str:
    return f"{SIGMA_HAT} S={steps}" if eta == SIGMA_HAT else f"eta={float(eta)} S={steps}"


@torch.no_grad()
def sample_cell(model: nn.Module, schedule: NoiseSchedule, eta: float | str, steps: int, n: int,
                batch_size: int, seed: int, spacing: str, device: str = "cpu",
                classifier: nn.Module | None = None,
                on_step: Callable[[int], object] | None = None) -> tuple[torch.Tensor, float]:
    """Draw n samples for one cell; returns (their classifier features (n, D), sampling seconds).

    Batch b starts from x_T drawn with seed (seed, b), the same in every cell; the noise of
    η > 0 and σ̂ comes from a second generator with seed (seed, b, 1). ``on_step(1)`` is called
    after every model call (for a progress bar).
    """
    shape = _data_shape(model)
    feats, seconds = [], 0.0
    with channels_last(model):
        for b, start in enumerate(range(0, n, batch_size)):
            x0, secs = _sample_batch(model, schedule, eta, steps, (min(batch_size, n - start), *shape),
                                     seed * 100_003 + b, spacing, device, on_step)
            seconds += secs
            feats.append(features(x0.cpu(), classifier))
    return torch.cat(feats), seconds


def _sample_batch(model: nn.Module, schedule: NoiseSchedule, eta: float | str, steps: int,
                  shape: tuple[int, ...], seed: int, spacing: str, device: str,
                  on_step: Callable[[int], object] | None = None) -> tuple[torch.Tensor, float]:
    """One batch of a cell: x0 of ``shape`` from x_T seeded by ``seed``, and the sampling seconds."""
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    g = torch.Generator(device=device).manual_seed(seed + 1_000_000_007)
    t0 = time.perf_counter()
    if eta == SIGMA_HAT:
        walk = ddpm_progressive(model, schedule, x_T, generator=g, variance="beta", steps=steps, spacing=spacing)
    else:
        walk = ddim_progressive(model, schedule, x_T, steps=steps, eta=float(eta), spacing=spacing, generator=g)
    for step in walk:  # the same steps as ddim_sample / ddpm_sample, one model call each
        x0 = step.x
        if on_step is not None:
            on_step(1)
    if x0.device.type == "cuda":
        torch.cuda.synchronize()
    return x0, time.perf_counter() - t0


@contextmanager
def channels_last(model: nn.Module) -> Iterator[nn.Module]:
    """Hold the model's 4-D weights in channels_last inside the block, then give them back contiguous.

    Convolutions run about 20 % faster so on a CPU (measured: 1.05 s vs 1.38 s per call of the
    shipped UNet at batch 250, one thread); outputs move by float rounding only. The caller's
    model object is the one converted, so wrappers that count calls still see them.
    """
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def run_table1(cfg: Table1Config, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
               progress: bool = True) -> dict[str, Any]:
    """Fill Table 1 cell by cell, cheapest first, saving after each; returns the results dict.

    Pass ``model`` and ``schedule`` to evaluate a model in memory (``cfg.model`` is then only a label).
    The progress bar counts model calls over the cells still to do.
    """
    model, schedule, meta, clf, clf_sha, ref = _fid_setup(cfg, model, schedule, meta)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "seed": cfg.seed, "spacing": cfg.spacing, "batch_size": cfg.batch_size,
           "n": cfg.n, "n_at": {str(k): v for k, v in cfg.n_at.items()}, "device": cfg.device}  # all that moves a FID
    res = _open_results(_with(out, ".json"), _header("ddim-table1", cfg, model, schedule, meta, key))
    res["reference"] = {"split": "test", "n": ref.n}
    rows: list[float | str] = list(cfg.etas) + ([SIGMA_HAT] if cfg.sigma_hat else [])
    cells = sorted(((s, r) for s in cfg.steps for r in rows), key=lambda c: c[0])
    todo = [(s, r) for s, r in cells if res["cells"].get(cell_key(r, s), {}).get("n") != cfg.n_for(s)]
    bar = _bar(sum(s * _batches(cfg.n_for(s), cfg.batch_size) for s, _ in todo), "table1", progress)
    for steps, row in todo:
        k, n = cell_key(row, steps), cfg.n_for(steps)
        bar.set_postfix(cell=k)
        t0 = time.perf_counter()
        value, secs = _fid_of_cell(model, schedule, row, steps, n, cfg.seed, cfg, clf, ref, bar)
        res["cells"][k] = {"eta": row, "steps": steps, "n": n, "fid": round(value, 4),
                           "seconds_per_image": round(secs / n, 6), "wall_s": round(time.perf_counter() - t0, 2),
                           "channels_last": True}
        if cfg.floor:
            _add_floor(res, n, log)
        _save(out, res, table1_markdown)
        log(f"{k}: FID {value:.3f} (n={n}), {secs / n:.4f} s/image, cell took {time.perf_counter() - t0:.1f} s")
    bar.close()
    _save(out, res, table1_markdown)
    return res


def _fid_setup(cfg: Table1Config | SpreadConfig, model: nn.Module | None, schedule: NoiseSchedule | None,
               meta: dict[str, Any] | None) -> tuple[nn.Module, NoiseSchedule, dict[str, Any], nn.Module, str,
                                                     FeatureStats]:
    """(model on cfg.device in eval mode, schedule, meta, classifier, its sha256, test-set statistics)."""
    if model is None or schedule is None:
        model, schedule, meta = load_for_eval(cfg.model, cfg.device)
    clf, clf_sha = classifier_and_sha()
    return model.to(cfg.device).eval(), schedule, meta or {}, clf, clf_sha, reference_stats("test")


def _fid_of_cell(model: nn.Module, schedule: NoiseSchedule, row: float | str, steps: int, n: int, seed: int,
                 cfg: Table1Config | SpreadConfig, clf: nn.Module, ref: FeatureStats, bar: Any) -> tuple[float, float]:
    """Sample one cell and score it: (FID against ``ref``, sampling seconds)."""
    feats, secs = sample_cell(model, schedule, row, steps, n, cfg.batch_size, seed, cfg.spacing, cfg.device, clf,
                              on_step=bar.update)
    return FeatureStats.of(feats).distance(ref), secs


def _batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def _bar(total: int, desc: str, progress: bool) -> Any:
    """A tqdm bar over model calls (to stderr); a disabled one when ``progress`` is False."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="call", disable=not progress, dynamic_ncols=True)


def _add_floor(res: dict[str, Any], n: int, log: Callable[[str], None]) -> None:
    floors = res.setdefault("floor", {})
    if str(n) in floors:
        return
    try:
        floors[str(n)] = round(fid_floor(min(n, 10_000)), 4)
    except FileNotFoundError as e:  # no dataset here: the table is still valid without its floor
        log(f"(no FID floor: {e})")
        floors[str(n)] = None


def table1_markdown(res: dict[str, Any]) -> str:
    """Rows η (and σ̂), columns S: FID, then seconds per image."""
    cells = res["cells"]
    steps = sorted({c["steps"] for c in cells.values()})
    rows = sorted({c["eta"] for c in cells.values() if c["eta"] != SIGMA_HAT}) + (
        [SIGMA_HAT] if any(c["eta"] == SIGMA_HAT for c in cells.values()) else [])
    ns = {c["n"] for c in cells.values()}

    def label(r: float | str) -> str:
        return "σ̂ (σ² = β)" if r == SIGMA_HAT else f"η = {r:g}"

    def table(field_: str, fmt: str) -> list[str]:
        lines = ["| | " + " | ".join(f"S = {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
        for r in rows:
            vals = []
            for s in steps:
                c = cells.get(cell_key(r, s))
                v = "–" if c is None else format(c[field_], fmt) + ("" if len(ns) == 1 else f" (n={c['n']})")
                vals.append(v)
            lines.append(f"| {label(r)} | " + " | ".join(vals) + " |")
        return lines

    cfg = res["config"]
    out = [
        "# Table 1 replica: classifier FID of DDIM samples (lower is better)",
        "",
        f"Model `{res['model']['spec']}` (weights sha256 `{res['model']['sha256'][:16]}…`), spacing "
        f"`{cfg['spacing']}`, {' / '.join(str(n) for n in sorted(ns))} samples per cell against the "
        f"{res['reference']['n']} test images, seed {cfg['seed']}.",
        "",
        *table("fid", ".2f"),
        "",
    ]
    fast = [cell_key(c["eta"], c["steps"]) for c in cells.values() if c.get("channels_last")]
    if fast and len(fast) < len(cells):
        out += [f"The cells {', '.join(fast)} ran the model with its weights in channels_last memory format "
                "(faster on a CPU; the samples move by float rounding only), the others in the default format.", ""]
    floors = {k: v for k, v in res.get("floor", {}).items() if v is not None}
    if floors:
        out += ["FID floor (held-out real training images vs the test set, same n): "
                + ", ".join(f"{v:.2f} at n = {k}" for k, v in sorted(floors.items(), key=lambda kv: int(kv[0]))), ""]
    per_s = [statistics.median(c["seconds_per_image"] for c in cells.values() if c["steps"] == s) for s in steps]
    out += ["## Seconds per image (sampling only)", "",
            "The median over the cells of each column: every row makes the same S model calls, and on a",
            "shared machine single cells are slowed by other jobs (each cell's own time is in the JSON).", "",
            "| | " + " | ".join(f"S = {s}" for s in steps) + " |", "|---|" + "---|" * len(steps),
            "| seconds per image | " + " | ".join(f"{v:.4f}" for v in per_s) + " |", "",
            *[f"Note: {note}\n" for note in res.get("notes", [])],
            _machine_line(res), ""]
    return "\n".join(out)


def _machine_line(res: dict[str, Any]) -> str:
    m = res["machine"]
    gpu = f", {m['cuda']}" if "cuda" in m else ""
    load = f"; load average {m['load_avg_1min']} when the run last started" if "load_avg_1min" in m else ""
    return (f"Machine: {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}{gpu}; device `{res['config']['device']}`{load}. Git commit `{res['git_commit']}`. "
            f"Updated {res.get('updated', '?')}.")


# -- Table 2 -----------------------------------------------------------------------------------
@torch.no_grad()
def run_table2(cfg: Table2Config, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, images: torch.Tensor | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Invert n real test images with S steps and sample them back; the per-pixel MSE for each S.

    ``images`` (N, C, H, W) in [-1, 1] replaces the test set (for tests). The progress bar counts
    model calls (2·S per batch).
    """
    if model is None or schedule is None:
        model, schedule, meta = load_for_eval(cfg.model, cfg.device)
    model = model.to(cfg.device).eval()
    if images is None:
        from .data import load_images

        images = load_images("fashion-mnist", train=False)  # type: ignore[assignment]
    x0_all = images[: cfg.n]
    out = Path(cfg.out)
    key = {"n": int(x0_all.shape[0]), "spacing": cfg.spacing, "clip_x0": cfg.clip_x0}
    res = _open_results(_with(out, ".json"), _header("ddim-table2", cfg, model, schedule, meta or {}, key))
    todo = [s for s in sorted(cfg.steps) if f"S={s}" not in res["cells"]]
    bar = _bar(sum(2 * s * _batches(x0_all.shape[0], cfg.batch_size) for s in todo), "table2", progress)
    for steps in todo:
        k = f"S={steps}"
        bar.set_postfix(cell=k)
        t0, sq_err, count = time.perf_counter(), 0.0, 0
        for start in range(0, x0_all.shape[0], cfg.batch_size):
            x0 = x0_all[start : start + cfg.batch_size].to(cfg.device)
            x_T = ddim_invert(model, schedule, x0, steps=steps, spacing=cfg.spacing)
            x0_rec = ddim_sample(model, schedule, x_T, steps=steps, eta=0.0, spacing=cfg.spacing, clip_x0=cfg.clip_x0)
            sq_err += float(((x0_rec - x0).double() ** 2).sum())
            count += x0.numel()
            bar.update(2 * steps)
        wall = time.perf_counter() - t0
        mse = sq_err / count
        res["cells"][k] = {"steps": steps, "n": int(x0_all.shape[0]), "mse": mse, "mse_unit_range": mse / 4,
                           "seconds_per_image": round(wall / x0_all.shape[0], 6)}
        _save(out, res, table2_markdown)
        log(f"{k}: MSE {mse:.5f} ([-1, 1] pixels), {mse / 4:.5f} ([0, 1] pixels), {wall / x0_all.shape[0]:.4f} s/image")
    bar.close()
    _save(out, res, table2_markdown)
    return res


def table2_markdown(res: dict[str, Any]) -> str:
    cells = sorted(res["cells"].values(), key=lambda c: c["steps"])
    cfg = res["config"]
    n = cells[0]["n"] if cells else 0
    return "\n".join([
        "# Table 2 replica: reconstruction error of DDIM inversion (lower is better)",
        "",
        f"x0 → ddim_invert (S steps) → ddim_sample (S steps, η = 0, clip_x0 = {cfg['clip_x0']}) on the first {n} "
        f"test images; mean squared error per pixel. Model `{res['model']['spec']}` "
        f"(weights sha256 `{res['model']['sha256'][:16]}…`), spacing `{cfg['spacing']}`.",
        "",
        "| | " + " | ".join(f"S = {c['steps']}" for c in cells) + " |",
        "|---|" + "---|" * len(cells),
        "| MSE, pixels in [-1, 1] | " + " | ".join(f"{c['mse']:.5f}" for c in cells) + " |",
        "| MSE, pixels in [0, 1] | " + " | ".join(f"{c['mse_unit_range']:.5f}" for c in cells) + " |",
        "| seconds per image (invert + sample) | " + " | ".join(f"{c['seconds_per_image']:.4f}" for c in cells) + " |",
        "",
        _machine_line(res),
        "",
    ])


# -- the seed-to-seed noise of Table 1 ------------------------------------------------------------
def run_spread(cfg: SpreadConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, real_images: torch.Tensor | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """FID of each cell for each seed (seed 0 is Table 1's own), and of disjoint real sets; resumable.

    ``real_images`` (N, C, H, W) in [-1, 1] replaces the held-out training images (for tests).
    """
    model, schedule, meta, clf, clf_sha, ref = _fid_setup(cfg, model, schedule, meta)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "spacing": cfg.spacing, "batch_size": cfg.batch_size}
    res = _open_results(_with(out, ".json"), _header("ddim-fid-spread", cfg, model, schedule, meta, key))
    if cfg.real:
        _real_spread(res, cfg, real_images, clf, ref, log)
        _save(out, res, spread_markdown)
    todo = [(r, s, seed) for r, s in cfg.cells for seed in cfg.seeds
            if f"{cell_key(r, s)} seed={seed}" not in res["cells"]]
    bar = _bar(sum(s * _batches(cfg.n, cfg.batch_size) for _, s, _ in todo), "spread", progress)
    for row, steps, seed in todo:
        k = f"{cell_key(row, steps)} seed={seed}"
        bar.set_postfix(cell=k)
        value, secs = _fid_of_cell(model, schedule, row, steps, cfg.n, seed, cfg, clf, ref, bar)
        res["cells"][k] = {"eta": row, "steps": steps, "seed": seed, "fid": round(value, 4),
                           "seconds_per_image": round(secs / cfg.n, 6), "channels_last": True}
        _save(out, res, spread_markdown)
        log(f"{k}: FID {value:.3f} (n={cfg.n})")
    bar.close()
    _save(out, res, spread_markdown)
    return res


def _real_spread(res: dict[str, Any], cfg: SpreadConfig, images: torch.Tensor | None, clf: nn.Module,
                 ref: FeatureStats, log: Callable[[str], None]) -> None:
    """FID of len(seeds) disjoint sets of n real held-out images against the test set."""
    if len(res.get("real", [])) == len(cfg.seeds):
        return
    if images is None:
        from .metrics import split_images

        images = split_images("train-holdout")
    if images.shape[0] < cfg.n * len(cfg.seeds):
        raise ValueError(f"{len(cfg.seeds)} disjoint real sets of n={cfg.n} need {cfg.n * len(cfg.seeds)} images, "
                         f"got {images.shape[0]}")
    chunks = images[: cfg.n * len(cfg.seeds)].split(cfg.n)
    res["real"] = [round(FeatureStats.of(features(c, clf)).distance(ref), 4) for c in chunks]
    log(f"real sets: FID {res['real']}")


def spread_summary(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, min and max of a list of FIDs."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values), "min": min(values),
            "max": max(values)}


def spread_markdown(res: dict[str, Any]) -> str:
    """One row per cell (and one for the real sets): the FID of every seed, mean and standard deviation.

    Then, for two rows at the same S, their difference seed by seed: the cells of one seed share
    x_T, so the difference is less noisy than either FID, and its sign over seeds says whether
    the ordering in Table 1 is real.
    """
    by_cell: dict[tuple[str, int], dict[int, float]] = {}
    for c in res["cells"].values():
        row = "σ̂" if c["eta"] == SIGMA_HAT else f"η = {c['eta']:g}"
        by_cell.setdefault((row, c["steps"]), {})[c["seed"]] = c["fid"]
    seeds = sorted({s for v in by_cell.values() for s in v})
    lines = ["| | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd |", "|---|" + "---|" * (len(seeds) + 2)]

    def add(label: str, fids: dict[int, float]) -> None:
        vals = [fids.get(s) for s in seeds]
        done = [v for v in vals if v is not None]
        st = spread_summary(done) if len(done) >= 2 else None
        lines.append(f"| {label} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in vals)
                     + (f" | {st['mean']:.2f} | {st['sd']:.2f} |" if st else " | – | – |"))

    for (row, steps), fids in by_cell.items():
        add(f"{row}, S = {steps}", fids)
    if res.get("real"):
        add("real held-out images (disjoint sets)", dict(zip(seeds, res["real"])))
    keys = list(by_cell)
    for i, (row_a, steps) in enumerate(keys):
        for row_b, steps_b in keys[i + 1:]:
            if steps_b == steps:
                a, b = by_cell[(row_a, steps)], by_cell[(row_b, steps)]
                add(f"difference ({row_a}) − ({row_b}), S = {steps}", {s: a[s] - b[s] for s in a if s in b})
    cfg = res["config"]
    return "\n".join([
        "# How much Table 1's FID moves with the seed",
        "",
        f"Each cell re-sampled with other seeds (other x_T and noise; seed 0 is Table 1's own), n = {cfg['n']} "
        f"samples per FID, model `{res['model']['spec']}` (weights sha256 `{res['model']['sha256'][:16]}…`), "
        f"spacing `{cfg['spacing']}`. The real row: disjoint sets of {cfg['n']} real held-out training images, "
        "the same measurement on real data. A difference row subtracts two cells of the same seed. sd is the "
        "sample standard deviation over seeds.",
        "",
        *lines,
        "",
        _machine_line(res),
        "",
    ])


# -- the command line (registered by cli.py as `ddim-lesson eval`) -----------------------------
def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0,0.2,0.5,1, got {s!r}") from None


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 10,20,50, got {s!r}") from None


def _n_at(s: str) -> dict[int, int]:
    try:
        return {int(a): int(b) for a, b in (kv.split("=") for kv in s.split(",") if kv)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected S=N pairs like 1000=500,100=800, got {s!r}") from None


def _cells(s: str) -> tuple[tuple[float | str, int], ...]:
    """"0:10,1:50,sigma_hat:100" -> ((0.0, 10), (1.0, 50), ("sigma_hat", 100))."""
    try:
        pairs = [kv.split(":") for kv in s.split(",")]
        return tuple((r if r == SIGMA_HAT else float(r), int(steps)) for r, steps in pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ETA:S pairs like 0:10,1:50,{SIGMA_HAT}:100, got {s!r}") from None


TABLES = {"table1": "FID vs S and η", "table2": "inversion MSE vs S", "spread": "how FID moves with the seed"}


def add_eval_args(p: argparse.ArgumentParser, table: str | None = None) -> None:
    """The flags of ``ddim-lesson eval {table1,table2,spread}``; with ``table`` fixed, only that one's flags."""
    t1, t2, sp = (table in (None, name) for name in TABLES)
    if table is None:
        p.add_argument("table", choices=tuple(TABLES), help="; ".join(f"{k}: {v}" for k, v in TABLES.items()))
    p.add_argument("--model", default="fashion-mnist", help="a shipped model's name or a checkpoint path")
    if t1 or t2:
        p.add_argument("--steps", type=_ints, default=None, help="comma-separated S (default: the paper's)")
    p.add_argument("--n", type=int, default=None, help="samples per cell (table1, default 1000; spread, 500) or "
                                                       "test images (table2, default 500)")
    if t1:
        p.add_argument("--etas", type=_floats, default=None, help="table1: comma-separated η (default 0,0.2,0.5,1)")
        p.add_argument("--no-sigma-hat", dest="sigma_hat", action="store_false", help="table1: skip the σ̂ row")
        p.add_argument("--n-at", type=_n_at, default={}, help="table1: other sample counts for some S, e.g. 1000=500")
        p.add_argument("--seed", type=int, default=0, help="table1: seed of x_T and of the noise")
        p.add_argument("--no-floor", dest="floor", action="store_false", help="table1: skip the real-data FID floor")
    if t2:
        p.add_argument("--clip-x0", action="store_true",
                       help="table2: clip x0_pred to [-1, 1] when sampling back (off: the exact reverse ODE)")
    if sp:
        p.add_argument("--cells", type=_cells, default=None, help="spread: ETA:S pairs (default 0:10,1:10,0:50,1:50)")
        p.add_argument("--seeds", type=_ints, default=None, help="spread: seeds (default 0,1,2,3,4; 0 is Table 1's)")
        p.add_argument("--no-real", dest="real", action="store_false", help="spread: skip the real-image sets")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--spacing", default=DEFAULT_SPACING, help=f"timestep spacing (default {DEFAULT_SPACING})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="results path without suffix (default runs/eval/table1, table2 or "
                                                 "fid_spread; the committed ones in benchmarks/results/ only if named)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def config_from_args(args: argparse.Namespace, table: str) -> Table1Config | Table2Config | SpreadConfig:
    common = {"model": args.model, "batch_size": args.batch_size, "spacing": args.spacing, "device": args.device}
    opt = {k: getattr(args, k) for k in ("steps", "n", "out") if getattr(args, k, None) is not None}
    if table == "table1":
        etas = {"etas": args.etas} if args.etas is not None else {}
        return Table1Config(**common, **opt, **etas, sigma_hat=args.sigma_hat, n_at=args.n_at, seed=args.seed,
                            floor=args.floor)
    if table == "spread":
        if "steps" in opt:
            raise ValueError("--steps is for table1 and table2; the spread takes --cells ETA:S pairs")
        picked = {k: getattr(args, k) for k in ("cells", "seeds") if getattr(args, k, None) is not None}
        return SpreadConfig(**common, **opt, **picked, real=args.real)
    return Table2Config(**common, **opt, clip_x0=args.clip_x0)


def cmd_eval(args: argparse.Namespace, table: str | None = None) -> None:
    """Run the table named by ``args.table`` (or ``table``) and print its Markdown."""
    table = table or args.table
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    else:
        print(f"torch uses {pick_threads().reason}", file=sys.stderr)
    cfg = config_from_args(args, table)
    check_writable(f"{cfg.out}.json")  # before the run, not after it
    run, markdown = {"table1": (run_table1, table1_markdown), "table2": (run_table2, table2_markdown),
                     "spread": (run_spread, spread_markdown)}[table]
    res = run(cfg, progress=getattr(args, "progress", True))  # type: ignore[operator]
    print()
    print(markdown(res))
    print(f"results: {cfg.out}.json and {cfg.out}.md")


def script_main(doc: str, table: str, argv: list[str] | None = None) -> None:
    """The command of benchmarks/table1.py, table2.py and fid_spread.py: one table's flags, with ``doc``
    (the script's docstring) as help, and a bad value reported in one line rather than a traceback."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=doc.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_args(p, table=table)
    try:
        cmd_eval(p.parse_args(argv), table=table)
    except ValueError as e:
        p.error(str(e))


def _data_shape(model: nn.Module) -> tuple[int, ...]:
    cfg = getattr(model, "config", None)
    if hasattr(cfg, "image_size"):
        return (cfg.in_channels, cfg.image_size, cfg.image_size)
    raise ValueError(f"Table 1 needs an image model with a config (UNet), got {type(model).__name__}")
