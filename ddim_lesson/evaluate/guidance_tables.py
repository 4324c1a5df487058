"""The guidance and editing tables of notebooks 07 and 08 (committed: ``benchmarks/results/guidance``): run, Markdown.

Parts, each a top-level field of the record (notebooks 07 and 08 read them there):

- ``tradeoff``: per guidance scale, n_per_class DDIM samples per class (S steps, η = 0) from the same seeded
  latents: on-class accuracy, FID, within-class diversity; one row per seed, real held-out images as yardstick;
- ``sdedit``: blocky (4×4-block) test images edited by SDEdit (towards their label) at each strength, and
  the same inputs inverted without a label and decoded with their label at a scale;
- ``edit``: "this shirt as a dress": invert test images with their label, decode with another;
- ``inversion``: reconstruction error against the guidance scale (plain and fixed-point inversion), and
  against the number of model calls (plain S = 10 … 200, fixed-point S = 10 with k = 1 … 6).

``scale`` is ``cfg``'s guidance scale throughout (Ho & Salimans' w = scale − 1; the Markdown shows both). Each cell
is saved through :mod:`~ddim_lesson.evaluate.records`; a run resumes, and one at other counts (:data:`KEY_FIELDS`) or
weights (model, classifier) is refused, naming them. A record from before that key: :func:`upgrade_record`, once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_float, check_int
from ..core.fields import check_fields, results_field, seeds_field, steps_field
from ..core.guidance import cfg
from ..core.inversion import ddim_invert
from ..core.schedules import NoiseSchedule
from ..nets.classifier import HOLDOUT
from ..nets.models import num_classes_of
from ..store.atomic import atomic_write
from ..store.data import FASHION_CLASSES, load_images
from ..store.instruments import Stopwatch, progress_bar
from ..store.pretrained import load_any
from . import guidance_eval as ge
from .metrics import FeatureStats, classifier_and_sha, reference_stats
from .records import header, md_safe, open_results, save_results, with_suffix
from .seed_stats import mean_sd

PARTS = ("tradeoff", "sdedit", "edit", "inversion")
KEY_FIELDS = ("n_per_class", "steps", "n_edit", "n_invert")  # with the two weight hashes: all that moves a cell
PLAIN_STEPS, FP_STEPS, FP_ITERS = (10, 20, 50, 100, 200), 10, (1, 2, 3, 4, 5, 6)  # inversion: error against calls


@dataclass
class GuidanceConfig:
    """Which parts to measure, and at which settings (the defaults are the committed table's)."""

    model: str = field(default="fashion-mnist-cond", metadata={"help": "a class-conditional model: a shipped "
                                                                       "model's name or a checkpoint path"})
    parts: tuple[str, ...] = field(default=PARTS, metadata={"choices": PARTS})
    scales: tuple[float, ...] = field(default=(0.0, 1.0, 2.0, 3.0, 5.0, 7.0),
                                      metadata={"help": "tradeoff and inversion: guidance scales"})
    seeds: tuple[int, ...] = seeds_field((0, 1, 2))  # tradeoff: one row per seed
    n_per_class: int = field(default=50, metadata={"help": "tradeoff and sdedit: images per class"})
    steps: int = steps_field(20)  # for sampling, inversion and full-strength SDEdit
    strengths: tuple[float, ...] = field(default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                                         metadata={"help": "sdedit: strengths in (0, 1]"})
    edit_scales: tuple[float, ...] = field(default=(1.0, 3.0), metadata={"help": "edit: decode at these scales"})
    invert_scales: tuple[float, ...] = field(default=(0.0, 1.0, 3.0), metadata={
        "help": "sdedit: decode the inverted inputs at these scales"})
    n_edit: int = field(default=50, metadata={"help": "edit: source images per class pair"})
    n_invert: int = field(default=20, metadata={"help": "inversion: test images (2 per class)"})
    out: str = results_field("runs/eval/guidance")

    def __post_init__(self) -> None:
        self.parts = tuple(check_choice("part", p, PARTS) for p in self.parts)
        check_fields(self)  # seeds: each in [0, 2**63 - 1], as every command's
        check_int("n_per_class", self.n_per_class, 2, None)  # diversity needs two images of a class
        check_int("steps", self.steps, 1, None)
        check_int("n_edit", self.n_edit, 1, None)
        check_int("n_invert", self.n_invert, 10, None)  # n_invert // 10 test images of each class
        self.strengths = tuple(check_float("each of --strengths", s, 0.0, 1.0, lo_open=True) for s in self.strengths)
        for name in ("scales", "edit_scales", "invert_scales"):  # before any work, not after minutes of it
            setattr(self, name, tuple(check_float(f"each of --{name.replace('_', '-')}", scale, 0.0, 100.0)
                                      for scale in getattr(self, name)))  # a scale past 100 is a typo

    def resume_key(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in KEY_FIELDS}  # every cell of a record was measured at these


def check_resume(config: GuidanceConfig, res: dict[str, Any], where: Path) -> None:
    """Refuse, before loading anything, cells at other counts (naming each); open_results checks the weights."""
    if res and "resume_key" not in res:
        raise ValueError(f"{where} was written before the resume key: upgrade it once with ddim_lesson.evaluate."
                         f"guidance_tables.upgrade_record('{where}'), or pass another --out")
    if diffs := [f"{k} {v} (the file has {res['resume_key'].get(k)})" for k, v in config.resume_key().items()
                 if res and res["resume_key"].get(k) != v]:
        raise ValueError(f"{where} holds results measured at other settings: {'; '.join(diffs)}. Pass those "
                         "settings to add to it, or another --out")


def upgrade_record(path: str | Path) -> None:
    """Once, for a record from before the resume key (per-part ``settings`` only): add the head open_results checks,
    from those settings, cells untouched. Its classifier is the shipped one, the only one run_guidance ever used."""
    res, d = json.loads(Path(path).read_text()), GuidanceConfig()
    if "resume_key" in res:
        return
    st = {p: res.get("settings", {}).get(p, {}) for p in PARTS}
    key = {"n_per_class": st["tradeoff"].get("n_per_class", st["sdedit"].get("n_per_class", d.n_per_class)),
           "steps": st["tradeoff"].get("steps", st["edit"].get("steps", d.steps)),
           "n_edit": st["edit"].get("n", d.n_edit), "n_invert": st["inversion"].get("n", d.n_invert)}
    res.update(table="guidance", config={"model": res["model"]["spec"], **key}, sessions=[], resume_key={
        "model_sha256": res["model"]["sha256"], "classifier_sha256": classifier_and_sha()[1], **key})
    atomic_write(Path(path), json.dumps(res, indent=1).encode())


def per_class(images: torch.Tensor, labels: torch.Tensor, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of each class after skipping ``offset`` of it; (10n, ...), (10n,)."""
    idx = torch.cat([torch.nonzero(labels == c).flatten()[offset : offset + n] for c in range(10)])
    return images[idx], labels[idx]


@dataclass
class _Run:
    """What every part needs: the settings, the model, the test set, its statistics, the results and their saver."""

    config: GuidanceConfig
    model: nn.Module
    schedule: NoiseSchedule
    test: tuple[torch.Tensor, torch.Tensor]  # the test images (N, 1, 28, 28) and their labels (N,)
    ref: FeatureStats
    res: dict[str, Any]
    save: Callable[[], None]
    progress: bool

    def each(self, part: str, todo: list[Any], calls: Callable[[Any], int]) -> Iterator[Any]:
        """The cells still to do, one by one; after each, the bar moves by its model calls and the record is saved."""
        with progress_bar(sum(map(calls, todo)), part, self.progress) as bar:
            for cell in todo:
                yield cell
                bar.update(calls(cell))
                self.save()


def run_guidance(config: GuidanceConfig, threads: str = "", model: nn.Module | None = None,
                 schedule: NoiseSchedule | None = None, meta: dict[str, Any] | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Measure ``config.parts``, saving OUT.json / OUT.md after every cell; returns the results (resumable).
    ``threads``: the thread rule's reason, recorded with the machine. Pass ``model`` and ``schedule`` to measure
    a model in memory (``config.model`` is then only its label)."""
    out, path = Path(config.out), with_suffix(config.out, ".json")  # "runs/g.small" keeps its ".small"
    check_resume(config, json.loads(path.read_text()) if path.exists() else {}, path)  # before loading anything
    if model is None or schedule is None:
        model, schedule, meta, _ = load_any(config.model)
    key = {"classifier_sha256": classifier_and_sha()[1], **config.resume_key()}
    res = open_results(path, header("guidance", config, model, schedule, meta or {}, key))
    res.pop("cells", None)  # the parts are the cells, at the top level where notebooks 07 and 08 read them
    res["threads"] = threads
    run = _Run(config, model, schedule, load_images("fashion-mnist", train=False, with_labels=True),
               reference_stats("test"), res, lambda: save_results(out, res, guidance_markdown), progress)
    for part, measure in (("tradeoff", _tradeoff), ("sdedit", _sdedit), ("edit", _edit), ("inversion", _inversion)):
        if part in config.parts:
            measure(run)
    run.save()
    return res


def _tradeoff(r: _Run) -> None:
    c, rows = r.config, r.res.setdefault("tradeoff", {})
    if "real" not in rows:  # the yardstick: held-out training images, n per class, against the test set
        tx, ty = load_images("fashion-mnist", train=True, with_labels=True)
        rows["real"] = ge.quality(*per_class(tx[-HOLDOUT:], ty[-HOLDOUT:], c.n_per_class), r.ref)
    todo = [(seed, scale) for seed in c.seeds for scale in c.scales if f"seed={seed} scale={scale}" not in rows]
    for seed, scale in r.each("tradeoff", todo, lambda cell: num_classes_of(r.model) * c.steps):  # calls: K·steps
        with Stopwatch() as sw:
            x, y = ge.class_samples(r.model, r.schedule, scale, c.n_per_class, c.steps, seed=seed)
        rows[f"seed={seed} scale={scale}"] = {"seed": seed, "scale": scale, **ge.quality(x, y, r.ref),
                                              "seconds": round(sw.seconds, 1)}


def _sdedit(r: _Run) -> None:
    c, rows = r.config, r.res.setdefault("sdedit", {})
    src, lab = per_class(*r.test, c.n_per_class)
    x_in = ge.blocky(src)
    rows.setdefault("input", {"rmse_to_input": 0.0, **ge.quality(x_in, lab, r.ref)})
    todo = [s for s in c.strengths if f"strength={s}" not in rows]
    walked = {s: max(1, round(c.steps * s)) for s in todo}  # SDEdit at strength s walks round(S·s) of the S steps
    for s in r.each("sdedit", todo, walked.get):
        rows[f"strength={s}"] = ge.sdedit_point(r.model, r.schedule, x_in, lab, s, walked[s], 0, r.ref)
    todo = [scale for scale in c.invert_scales if f"invert scale={scale}" not in rows]
    x_T = ddim_invert(r.model, r.schedule, x_in, steps=c.steps) if todo else None  # no label: y = None
    for scale in r.each("sdedit by inversion", todo, lambda v: c.steps * (2 if v == todo[0] else 1)):  # + x_T's
        rows[f"invert scale={scale}"] = ge.inversion_edit_point(r.model, r.schedule, x_T, x_in, lab, scale, c.steps,
                                                                r.ref)


def _edit(r: _Run) -> None:
    c, rows = r.config, r.res.setdefault("edit", {})
    todo = [(ys, yt, scale) for ys, yt in ge.EDIT_PAIRS for scale in c.edit_scales
            if f"{ys}->{yt} scale={scale}" not in rows]
    for ys, yt, scale in r.each("edit", todo, lambda cell: 3 * c.steps):  # invert, decode the edit and a fresh one
        src = r.test[0][torch.nonzero(r.test[1] == ys).flatten()[: c.n_edit]]  # (n_edit, 1, 28, 28) of class ys
        rows[f"{ys}->{yt} scale={scale}"] = ge.edit_by_inversion(r.model, r.schedule, src, ys, yt, scale, c.steps, ys)


def _inversion(r: _Run) -> None:
    c, rows = r.config, r.res.setdefault("inversion", {})
    x0, y0 = per_class(*r.test, c.n_invert // 10)
    cells = [("scale", scale, c.steps, k) for scale in c.scales for k in (0, 3)]
    cells += [("calls", scale, S, 0) for scale in (1.0, 3.0) for S in PLAIN_STEPS]
    cells += [("calls", scale, FP_STEPS, k) for scale in (1.0, 3.0) for k in FP_ITERS]
    todo = [cell for cell in cells if f"{cell[0]} scale={cell[1]} S={cell[2]} k={cell[3]}" not in rows]
    for kind, scale, S, k in r.each("inversion", todo, lambda cell: cell[2] * (2 + cell[3])):  # S(1 + k) up, S down
        mse = ge.roundtrip_mse(cfg(r.model, y0, scale), r.schedule, x0, S, k)  # S(1 + k) calls to invert
        rows[f"{kind} scale={scale} S={S} k={k}"] = dict(scale=scale, steps=S, k=k, calls=S * (1 + k), mse=mse)


def ho_salimans_w(scale: float) -> float:
    """Ho & Salimans' guidance weight of our ``scale``: their ε = (1 + w)·ε(x,y) − w·ε(x,∅) is ours at w = scale − 1."""
    return scale - 1.0


def guidance_markdown(res: dict[str, Any]) -> str:
    """The parts present in ``res``, one section each, under a header naming the model and the machine."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    lines = [f"# Guidance and editing on `{res['model']['spec']}`", "",
             f"Model sha256 {res['model']['sha256'][:12]}, trained {res['model']['train_steps']} steps. "
             f"Machine: {res['machine']['platform']}, {res['machine']['torch_threads']} torch thread(s), "
             f"load {res['machine'].get('load_avg_1min', '?')}; commit {res['git_commit']}.", "",
             "scale: the guidance scale of `cfg(model, y, scale)` (0: unconditional, 1: conditional); "
             "w = scale − 1 is Ho & Salimans' guidance weight.", ""]
    parts = (("tradeoff", _tradeoff_md), ("sdedit", _sdedit_md), ("edit", _edit_md), ("inversion", _inversion_md))
    for section in (section for part, section in parts if part in res):
        lines += section(res) + [""]
    return "\n".join(lines)


def _mean_sd(rows: list[dict[str, Any]], key: str, digits: int) -> str:
    m, sd = mean_sd([r[key] for r in rows])  # seed_stats' rule: float64, the sample sd
    return f"{m:.{digits}f} ± {sd:.{digits}f}" if len(rows) > 1 else f"{m:.{digits}f}"


def _tradeoff_md(res: dict[str, Any]) -> list[str]:
    st = res["config"]
    rows = [r for k, r in res["tradeoff"].items() if k != "real"]
    lines = ["## Guidance trade-off", "",
             f"{st['n_per_class']} samples per class (N = {10 * st['n_per_class']}), DDIM S = {st['steps']}, "
             "η = 0, the same latents at every scale. Accuracy: the course classifier agrees with the asked "
             "class. FID against the test set at this N. Diversity: mean pairwise feature distance within a "
             "class. Mean ± sd over seeds.", "",
             "| scale | w = scale − 1 | seeds | on-class accuracy | FID | diversity |", "|---|---|---|---|---|---|"]
    for scale in sorted({r["scale"] for r in rows}):
        sel = [r for r in rows if r["scale"] == scale]
        lines.append(f"| {scale:g} | {ho_salimans_w(scale):g} | {len(sel)} | {_mean_sd(sel, 'accuracy', 3)} | "
                     f"{_mean_sd(sel, 'fid', 2)} | {_mean_sd(sel, 'diversity', 2)} |")
    real = res["tradeoff"].get("real")
    if real:
        lines.append(f"| real held-out images | - | - | {real['accuracy']:.3f} | {real['fid']:.2f} | "
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
             f"{res['config']['n_invert']} test images with their labels; invert and decode with the same "
             "guided model (η = 0, clip_x0=False); MSE per pixel.", "",
             "| scale | w = scale − 1 | plain | fixed-point k = 3 |", "|---|---|---|---|"]
    for scale in sorted({r["scale"] for k, r in inv.items() if k.startswith("scale")}):
        cell = {r["k"]: r for k, r in inv.items() if k.startswith(f"scale scale={scale} ")}
        lines.append(f"| {scale:g} (S = {cell[0]['steps']}) | {ho_salimans_w(scale):g} | {cell[0]['mse']:.2e} | "
                     f"{format(cell[3]['mse'], '.2e') if 3 in cell else '-'} |")
    lines += ["", "| scale | inversion | model calls | MSE |", "|---|---|---|---|"]
    for k, r in inv.items():
        if k.startswith("calls"):
            kind = f"plain S = {r['steps']}" if r["k"] == 0 else f"fixed-point S = {r['steps']}, k = {r['k']}"
            lines.append(f"| {r['scale']:g} | {kind} | {r['calls']} | {r['mse']:.2e} |")
    return lines
