"""The guidance and editing tables of notebooks 07 and 08 (committed: ``benchmarks/results/guidance``): run, Markdown.

Parts (results go to OUT.json / OUT.md after every cell; a run resumes, cells already there are kept, and
cells measured at other settings are refused before any work):

- ``tradeoff``: per guidance scale, n_per_class DDIM samples per class (S steps, η = 0) from the same seeded
  latents: on-class accuracy, FID, within-class diversity; one row per seed, real held-out images as yardstick;
- ``sdedit``: blocky (4×4-block) test images edited by SDEdit (towards their label) at each strength, and
  the same inputs inverted without a label and decoded with their label at a scale;
- ``edit``: "this shirt as a dress": invert test images with their label, decode with another;
- ``inversion``: reconstruction error against the guidance scale (plain and fixed-point inversion), and
  against the number of model calls (plain S = 10 … 200, fixed-point S = 10 with k = 1 … 6).

The measurements themselves are in :mod:`~ddim_lesson.evaluate.guidance_eval`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.checks import check_choice, check_float, check_int
from ..core.guidance import cfg as guided
from ..core.inversion import ddim_invert
from ..core.schedules import NoiseSchedule
from ..nets.classifier import HOLDOUT
from ..store.atomic import atomic_write
from ..store.data import FASHION_CLASSES, load_images
from ..store.device import machine
from ..store.pretrained import load_any
from .guidance_eval import (
    EDIT_PAIRS,
    blocky,
    class_samples,
    edit_by_inversion,
    inversion_edit_point,
    quality,
    roundtrip_mse,
    sdedit_point,
)
from .metrics import FeatureStats, reference_stats
from .records import git_commit, md_safe, measured, model_sha256

PARTS = ("tradeoff", "sdedit", "edit", "inversion")


@dataclass
class GuidanceConfig:
    """Which parts to measure, and at which settings (the defaults are the committed table's)."""

    model: str = field(default="fashion-mnist-cond", metadata={"help": "a class-conditional model: a shipped "
                                                                       "model's name or a checkpoint path"})
    parts: tuple[str, ...] = field(default=PARTS, metadata={"choices": PARTS})
    scales: tuple[float, ...] = field(default=(0.0, 1.0, 2.0, 3.0, 5.0, 7.0),
                                      metadata={"help": "tradeoff and inversion: guidance scales"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "tradeoff: one row per seed"})
    n_per_class: int = field(default=50, metadata={"help": "tradeoff and sdedit: images per class"})
    steps: int = field(default=20, metadata={"help": "DDIM steps for sampling, inversion and full-strength SDEdit"})
    strengths: tuple[float, ...] = field(default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                                         metadata={"help": "sdedit: strengths in (0, 1]"})
    edit_scales: tuple[float, ...] = field(default=(1.0, 3.0), metadata={"help": "edit: decode at these scales"})
    invert_scales: tuple[float, ...] = field(default=(0.0, 1.0, 3.0), metadata={
        "help": "sdedit: decode the inverted inputs at these scales"})
    n_edit: int = field(default=50, metadata={"help": "edit: source images per class pair"})
    n_invert: int = field(default=20, metadata={"help": "inversion: test images (2 per class)"})
    out: str = field(default="runs/eval/guidance", metadata={
        "help": "results path without suffix (the committed one, benchmarks/results/guidance, only if named)"})

    def __post_init__(self) -> None:
        self.parts = tuple(check_choice("part", p, PARTS) for p in self.parts)
        self.seeds = tuple(check_int("seed", s, 0, None) for s in self.seeds)
        check_int("n_per_class", self.n_per_class, 2, None)  # diversity needs two images of a class
        check_int("steps", self.steps, 1, None)
        check_int("n_edit", self.n_edit, 1, None)
        check_int("n_invert", self.n_invert, 10, None)  # n_invert // 10 test images of each class
        self.strengths = tuple(check_float("each of --strengths", s, 0.0, 1.0, lo_open=True) for s in self.strengths)
        for name in ("scales", "edit_scales", "invert_scales"):  # before any work, not after minutes of it
            setattr(self, name, tuple(check_float(f"each of --{name.replace('_', '-')}", w, 0.0, 100.0)
                                      for w in getattr(self, name)))  # a scale past 100 is a typo


def part_settings(cfg: GuidanceConfig, part: str) -> dict[str, Any]:
    """The settings that move a part's numbers; a record's cells of that part were measured at these."""
    return {"tradeoff": {"n_per_class": cfg.n_per_class, "steps": cfg.steps, "eta": 0.0},
            "sdedit": {"n_per_class": cfg.n_per_class, "steps_full": cfg.steps, "corruption": "4x4 blocks",
                       "model_label": "the true label, scale 1 (conditional)"},
            "edit": {"n": cfg.n_edit, "steps": cfg.steps, "invert_scale": 1.0},
            "inversion": {"n": cfg.n_invert, "decode": "eta = 0, clip_x0=False", "error": "MSE"}}[part]


def check_resume(cfg: GuidanceConfig, res: dict[str, Any], where: Path) -> None:
    """Refuse, before any work, to add cells measured at other settings to a record (one line naming them)."""
    old = {p: res.get("settings", {}).get(p) or {} for p in cfg.parts if p in res}
    if diffs := [f"{p} {k} {v} (the file has {old[p].get(k)})" for p in old
                 for k, v in part_settings(cfg, p).items() if old[p].get(k) != v]:
        raise ValueError(f"{where} holds results measured at other settings: {'; '.join(diffs)}. Pass those "
                         "settings to add to it, or another --out")


def per_class(images: torch.Tensor, labels: torch.Tensor, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of each class after skipping ``offset`` of it; (10n, ...), (10n,)."""
    idx = torch.cat([torch.nonzero(labels == c).flatten()[offset : offset + n] for c in range(10)])
    return images[idx], labels[idx]


@dataclass
class _Run:
    """What every part needs: the settings, the model, the test set, its statistics, the results and their saver."""

    cfg: GuidanceConfig
    model: nn.Module
    schedule: NoiseSchedule
    test_x: torch.Tensor
    test_y: torch.Tensor
    ref: FeatureStats
    res: dict[str, Any]
    save: Callable[[], None]


def run_guidance(cfg: GuidanceConfig, threads: str = "") -> dict[str, Any]:
    """Measure ``cfg.parts``, saving OUT.json / OUT.md after every cell; returns the results (resumable).
    ``threads``: the thread rule's reason, recorded with the machine."""
    out = Path(cfg.out)
    res = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    check_resume(cfg, res, out.with_suffix(".json"))  # before loading anything
    model, schedule, meta, _ = load_any(cfg.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    sha = model_sha256(model)
    if res and res.get("model", {}).get("sha256") != sha:
        raise ValueError(f"{out}.json holds results of another model; pass another --out or delete it")
    res.update({"model": {"spec": cfg.model, "sha256": sha, "train_steps": meta.get("steps"),
                          "command": meta.get("command")},
                "machine": machine(), "git_commit": git_commit(), "threads": threads})
    res.setdefault("settings", {})
    test_x, test_y = load_images("fashion-mnist", train=False, with_labels=True)

    on_disk = measured(res)  # save() writes only once a number has changed

    def save() -> None:
        if measured(res) == on_disk:
            return
        atomic_write(out.with_suffix(".json"), json.dumps(res, indent=1).encode())
        atomic_write(out.with_suffix(".md"), guidance_markdown(res).encode())

    run = _Run(cfg, model, schedule, test_x, test_y, reference_stats("test"), res, save)
    for part, measure in (("tradeoff", _tradeoff), ("sdedit", _sdedit), ("edit", _edit), ("inversion", _inversion)):
        if part in cfg.parts:
            measure(run)
    save()
    return res


def _tradeoff(r: _Run) -> None:
    c = r.cfg
    r.res["settings"]["tradeoff"] = part_settings(c, "tradeoff")
    rows = r.res.setdefault("tradeoff", {})
    if "real" not in rows:  # the yardstick: held-out training images, n per class, against the test set
        tx, ty = load_images("fashion-mnist", train=True, with_labels=True)
        rx, ry = per_class(tx[-HOLDOUT:], ty[-HOLDOUT:], c.n_per_class)
        rows["real"] = quality(rx, ry, r.ref)
    todo = [(s, w) for s in c.seeds for w in c.scales if f"seed={s} scale={w}" not in rows]
    for s, w in tqdm(todo, desc="tradeoff"):
        t0 = time.perf_counter()
        x, y = class_samples(r.model, r.schedule, w, c.n_per_class, c.steps, seed=s)
        rows[f"seed={s} scale={w}"] = {"seed": s, "scale": w, **quality(x, y, r.ref),
                                       "seconds": round(time.perf_counter() - t0, 1)}
        r.save()


def _sdedit(r: _Run) -> None:
    c = r.cfg
    r.res["settings"]["sdedit"] = part_settings(c, "sdedit")
    src, lab = per_class(r.test_x, r.test_y, c.n_per_class)
    x_in = blocky(src)
    rows = r.res.setdefault("sdedit", {})
    rows.setdefault("input", {"rmse_to_input": 0.0, **quality(x_in, lab, r.ref)})
    for s in tqdm([s for s in c.strengths if f"strength={s}" not in rows], desc="sdedit"):
        rows[f"strength={s}"] = sdedit_point(r.model, r.schedule, x_in, lab, s, max(1, round(c.steps * s)), 0, r.ref)
        r.save()
    todo = [w for w in c.invert_scales if f"invert scale={w}" not in rows]
    x_T = ddim_invert(r.model, r.schedule, x_in, steps=c.steps) if todo else None  # no label: y = None
    for w in tqdm(todo, desc="inversion edit"):
        rows[f"invert scale={w}"] = inversion_edit_point(r.model, r.schedule, x_T, x_in, lab, w, c.steps, r.ref)
        r.save()


def _edit(r: _Run) -> None:
    c = r.cfg
    r.res["settings"]["edit"] = part_settings(c, "edit")
    rows = r.res.setdefault("edit", {})
    todo = [(p, w) for p in EDIT_PAIRS for w in c.edit_scales if f"{p[0]}->{p[1]} scale={w}" not in rows]
    for (ys, yt), w in tqdm(todo, desc="edit"):
        src = r.test_x[torch.nonzero(r.test_y == ys).flatten()[: c.n_edit]]
        rows[f"{ys}->{yt} scale={w}"] = edit_by_inversion(r.model, r.schedule, src, ys, yt, w, c.steps, seed=ys)
        r.save()


def _inversion(r: _Run) -> None:
    c = r.cfg
    r.res["settings"]["inversion"] = part_settings(c, "inversion")
    x0, y0 = per_class(r.test_x, r.test_y, c.n_invert // 10)
    rows = r.res.setdefault("inversion", {})
    cells = [("scale", w, c.steps, k) for w in c.scales for k in (0, 3)]
    cells += [("calls", w, S, 0) for w in (1.0, 3.0) for S in (10, 20, 50, 100, 200)]
    cells += [("calls", w, 10, k) for w in (1.0, 3.0) for k in range(1, 7)]
    todo = [cell for cell in cells if f"{cell[0]} scale={cell[1]} S={cell[2]} k={cell[3]}" not in rows]
    for kind, w, S, k in tqdm(todo, desc="inversion"):
        rows[f"{kind} scale={w} S={S} k={k}"] = {"scale": w, "steps": S, "k": k, "calls": S * (1 + k),
                                                 "mse": roundtrip_mse(guided(r.model, y0, w), r.schedule, x0, S, k)}
        r.save()


def guidance_markdown(res: dict[str, Any]) -> str:
    """The parts present in ``res``, one section each, under a header naming the model and the machine."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    lines = [f"# Guidance and editing on `{res['model']['spec']}`", "",
             f"Model sha256 {res['model']['sha256'][:12]}, trained {res['model']['train_steps']} steps. "
             f"Machine: {res['machine']['platform']}, {res['machine']['torch_threads']} torch thread(s), "
             f"load {res['machine'].get('load_avg_1min', '?')}; commit {res['git_commit']}.", ""]
    parts = (("tradeoff", _tradeoff_md), ("sdedit", _sdedit_md), ("edit", _edit_md), ("inversion", _inversion_md))
    for section in (section for part, section in parts if part in res):
        lines += section(res) + [""]
    return "\n".join(lines)


def _mean_sd(rows: list[dict[str, Any]], key: str, digits: int) -> str:
    v = torch.tensor([r[key] for r in rows], dtype=torch.float64)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(rows) > 1 else f"{float(v[0]):.{digits}f}"


def _tradeoff_md(res: dict[str, Any]) -> list[str]:
    st = res["settings"]["tradeoff"]
    rows = [r for k, r in res["tradeoff"].items() if k != "real"]
    lines = ["## Guidance trade-off", "",
             f"{st['n_per_class']} samples per class (N = {10 * st['n_per_class']}), DDIM S = {st['steps']}, "
             "η = 0, the same latents at every scale. Accuracy: the course classifier agrees with the asked "
             "class. FID against the test set at this N. Diversity: mean pairwise feature distance within a "
             "class. Mean ± sd over seeds.", "",
             "| scale | seeds | on-class accuracy | FID | diversity |", "|---|---|---|---|---|"]
    for w in sorted({r["scale"] for r in rows}):
        sel = [r for r in rows if r["scale"] == w]
        lines.append(f"| {w:g} | {len(sel)} | {_mean_sd(sel, 'accuracy', 3)} | {_mean_sd(sel, 'fid', 2)} | "
                     f"{_mean_sd(sel, 'diversity', 2)} |")
    real = res["tradeoff"].get("real")
    if real:
        lines.append(f"| real held-out images | - | {real['accuracy']:.3f} | {real['fid']:.2f} | "
                     f"{real['diversity']:.2f} |")
    return lines


def _sdedit_md(res: dict[str, Any]) -> list[str]:
    lines = ["## SDEdit against editing through inversion", "",
             "Inputs: test images reduced to 4×4-pixel blocks. Distance: RMSE to the blocky input on the [-1, 1] "
             "scale (faithfulness). FID against the test set and the classifier's accuracy on the true class "
             "(realism). SDEdit uses the conditional model with the true label (scale 1); 'invert' rows invert "
             "the input without a label and decode it with its true label at that guidance scale.", "",
             "| edit | model calls | RMSE to input | FID | accuracy |", "|---|---|---|---|---|"]
    for k, r in res["sdedit"].items():
        lines.append(f"| {k} | {r.get('steps', 0) * (1 if 'strength' in k else 2)} | {r['rmse_to_input']:.3f} | "
                     f"{r['fid']:.2f} | {r['accuracy']:.3f} |")
    return lines


def _edit_md(res: dict[str, Any]) -> list[str]:
    lines = ["## Editing by inversion", "",
             "Invert test images with their own label (scale 1), decode with the target label at the scale. "
             "'fresh': samples of the target class from new noise, for comparison.", "",
             "| edit | scale | n | classified as target: edit | fresh | RMSE to source: edit | fresh |",
             "|---|---|---|---|---|---|---|"]
    for r in res["edit"].values():
        lines.append(f"| {FASHION_CLASSES[r['src']]} → {FASHION_CLASSES[r['tgt']]} | {r['scale']:g} | {r['n']} | "
                     f"{r['edit_accuracy']:.2f} | {r['fresh_accuracy']:.2f} | {r['edit_rmse_to_source']:.3f} | "
                     f"{r['fresh_rmse_to_source']:.3f} |")
    return lines


def _inversion_md(res: dict[str, Any]) -> list[str]:
    inv = res["inversion"]
    lines = ["## Inversion under guidance", "",
             f"{res['settings']['inversion']['n']} test images with their labels; invert and decode with the same "
             "guided model (η = 0, clip_x0=False); MSE per pixel.", "",
             "| scale | plain | fixed-point k = 3 |", "|---|---|---|"]
    for w in sorted({r["scale"] for k, r in inv.items() if k.startswith("scale")}):
        cell = {r["k"]: r for k, r in inv.items() if k.startswith(f"scale scale={w} ")}
        lines.append(f"| {w:g} (S = {cell[0]['steps']}) | {cell[0]['mse']:.2e} | "
                     f"{format(cell[3]['mse'], '.2e') if 3 in cell else '-'} |")
    lines += ["", "| scale | inversion | model calls | MSE |", "|---|---|---|---|"]
    for k, r in inv.items():
        if k.startswith("calls"):
            kind = f"plain S = {r['steps']}" if r["k"] == 0 else f"fixed-point S = {r['steps']}, k = {r['k']}"
            lines.append(f"| {r['scale']:g} | {kind} | {r['calls']} | {r['mse']:.2e} |")
    return lines
