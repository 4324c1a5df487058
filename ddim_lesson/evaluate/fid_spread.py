"""How far Table 1's FID moves with the seed alone: some cells re-sampled with other seeds, and
disjoint sets of real images measured the same way, so a reader can tell which differences are real.

    ddim-lesson eval spread --n 500
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.fields import check_fields, sample_batch_field, seeds_field, spacing_field
from ..core.schedules import NoiseSchedule
from ..store.instruments import progress_bar
from .generate import SIGMA_HAT, Row, n_batches
from .metrics import FeatureStats, features
from .records import header, machine_line, md_safe, open_results, save_results, with_suffix
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP, cell_key, check_fid_count, fid_of_cell, fid_setup


def parse_cell(text: str) -> tuple[Row, int]:
    """One cell as the command line writes it: "0.5:10" -> (0.5, 10), "sigma_hat:100" -> (SIGMA_HAT, 100)."""
    eta, steps = text.split(":")  # ValueError unless exactly one ":"
    return (eta if eta == SIGMA_HAT else float(eta), int(steps))


@dataclass
class SpreadConfig:
    """How far Table 1's FID moves with the seed alone: some cells re-sampled with other seeds.

    With ``real``, also the FID of disjoint sets of n held-out real images (one per seed), so the
    noise of the floor is measured the same way.
    """

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    cells: tuple[tuple[Row, int], ...] = field(  # (η or σ̂, S)
        default=((0.0, 10), (1.0, 10), (0.0, 50), (1.0, 50)),
        metadata={"parse": parse_cell, "help": f"the cells: ETA:S pairs (ETA a number or {SIGMA_HAT})",
                  "example": f"ETA:S pairs like 0:10,1:50,{SIGMA_HAT}:100"})
    seeds: tuple[int, ...] = seeds_field((0, 1, 2, 3, 4))  # 0 is Table 1's
    n: int = field(default=500, metadata={"help": "samples per FID"})
    batch_size: int = sample_batch_field(250)
    spacing: str = spacing_field()
    real: bool = field(default=True, metadata={"help": "also disjoint sets of real held-out images, one per seed"})
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/fid_spread", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        self.cells = tuple((r if r == SIGMA_HAT else float(r), int(s)) for r, s in self.cells)
        check_fields(self)  # seeds (a tuple of ints), spacing, batch_size
        for name, v in (("n", self.n), ("batch_size", self.batch_size)):
            check_fid_count(name, v)
        if len(set(self.seeds)) < 2:
            raise ValueError(f"seeds must hold at least 2 different seeds to measure a spread, got {self.seeds}")
        if not self.cells:
            raise ValueError("cells must hold at least one (eta, S) pair")



def run_spread(cfg: SpreadConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, real_images: torch.Tensor | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """FID of each cell for each seed (seed 0 is Table 1's own), and of disjoint real sets; resumable.

    ``real_images`` (N, C, H, W) in [-1, 1] replaces the held-out training images (for tests).
    """
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "spacing": cfg.spacing, "batch_size": cfg.batch_size}
    res = open_results(with_suffix(out, ".json"), header("ddim-fid-spread", cfg, model, schedule, meta, key))
    if cfg.real:
        _real_spread(res, cfg, real_images, clf, ref, log)
        save_results(out, res, spread_markdown)
    todo = [(r, s, seed) for r, s in cfg.cells for seed in cfg.seeds
            if f"{cell_key(r, s)} seed={seed}" not in res["cells"]]
    bar = progress_bar(sum(s * n_batches(cfg.n, cfg.batch_size) for _, s, _ in todo), "spread", progress)
    for row, steps, seed in todo:
        k = f"{cell_key(row, steps)} seed={seed}"
        bar.set_postfix(cell=k)
        value, secs = fid_of_cell(model, schedule, row, steps, cfg.n, seed, cfg, clf, ref, bar)
        res["cells"][k] = {"eta": row, "steps": steps, "seed": seed, "fid": round(value, 4),
                           "seconds_per_image": round(secs / cfg.n, 6), "channels_last": True}
        save_results(out, res, spread_markdown)
        log(f"{k}: FID {value:.3f} (n={cfg.n})")
    bar.close()
    save_results(out, res, spread_markdown)
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
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
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
        machine_line(res),
        "",
    ])
