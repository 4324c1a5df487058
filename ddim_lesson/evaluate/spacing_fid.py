"""Which timesteps? Classifier FID of DDIM at a few steps for each timestep spacing, over seeds.

    python benchmarks/spacing_fid.py --out benchmarks/results/spacing_fid   # the committed result (S = 10, η = 0,
                                                                             # n = 500, seeds 0-4)
    python benchmarks/spacing_fid.py --n 100 --seeds 0,1,2 --out /tmp/spacing_fid   # a quick look

A cell is (spacing, seed). Within a seed every cell starts from the same x_T, the x_T of Table 1's
cells with that seed (so the trailing cells repeat the seed spread's η = 0 cells), and the cells
differ only by the timesteps visited. The difference between two spacings of one seed is therefore
less noisy than either FID: the table reads each spacing against ``baseline`` seed by seed.
Results are saved after every cell; the same command resumes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..core.checks import check_choice, check_int
from ..core.fields import check_fields, eta_field, sample_batch_field, seeds_field, steps_field
from ..core.schedules import SPACINGS, NoiseSchedule, ddim_timesteps
from ..store.instruments import Stopwatch, progress_bar
from .fid_spread import spread_summary
from .generate import n_batches, sample_cell
from .metrics import FeatureStats
from .records import header, machine_line, md_safe, open_results, save_results, with_suffix
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP, fid_setup


@dataclass
class SpacingFIDConfig:
    """FID per (spacing, seed) at one step count ``steps`` and one ``eta``; n samples per FID."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    spacings: tuple[str, ...] = field(default=("leading", "trailing", "linspace", "quadratic"),  # the DDIM-era four
                                      metadata={"choices": SPACINGS})
    baseline: str = field(default="trailing", metadata={"help": "the spacing the others are read against"})
    steps: int = steps_field(10)
    eta: float = eta_field()
    seeds: tuple[int, ...] = seeds_field((0, 1, 2, 3, 4))  # seed k gives Table 1's x_T for seed k
    n: int = field(default=500, metadata={"help": "samples per FID"})
    batch_size: int = sample_batch_field(250)
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/spacing_fid", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        self.spacings = tuple(check_choice("spacing", s, SPACINGS) for s in self.spacings)
        check_choice("baseline", self.baseline, self.spacings)
        self.steps = check_int("steps", self.steps, 1, None)
        check_fields(self)  # eta (in [0, 1], as Table 1 and the samplers), seeds, batch_size
        if len(set(self.seeds)) < 2:
            raise ValueError(f"seeds must hold at least 2 different seeds to measure a spread, got {self.seeds}")
        check_int("n", self.n, 2, None)  # FID needs a covariance


def cell_key(spacing: str, seed: int) -> str:
    return f"{spacing} seed={seed}"


def run_spacing_fid(cfg: SpacingFIDConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
                    meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                    progress: bool = True) -> dict[str, Any]:
    """Fill the cells seed by seed, saving after each; returns the results dict (resumable)."""
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)  # type: ignore[arg-type]
    check_int("steps", cfg.steps, 1, schedule.T)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "steps": cfg.steps, "eta": cfg.eta, "batch_size": cfg.batch_size,
           "device": cfg.device}  # all that moves a FID
    res = open_results(with_suffix(out, ".json"), header("ddim-spacing-fid", cfg, model, schedule, meta, key))
    res["reference"] = {"split": "test", "n": ref.n}
    res["timesteps"] = {sp: ddim_timesteps(schedule.T, cfg.steps, sp, schedule=schedule).tolist()  # the visited ones
                        for sp in cfg.spacings}
    todo = [(seed, sp) for seed in cfg.seeds for sp in cfg.spacings if cell_key(sp, seed) not in res["cells"]]
    bar = progress_bar(len(todo) * cfg.steps * n_batches(cfg.n, cfg.batch_size), "spacing-fid", progress)
    for seed, spacing in todo:
        k = cell_key(spacing, seed)
        bar.set_postfix(cell=k)
        with Stopwatch() as sw:
            feats, secs = sample_cell(model, schedule, cfg.eta, cfg.steps, cfg.n, cfg.batch_size, seed, spacing,
                                      cfg.device, clf, on_step=bar.update)
            value = FeatureStats.of(feats).distance(ref)
        res["cells"][k] = {"spacing": spacing, "seed": seed, "fid": round(value, 4),
                           "seconds_per_image": round(secs / cfg.n, 6), "wall_s": round(sw.seconds, 2),
                           "channels_last": True}
        save_results(out, res, spacing_fid_markdown)
        log(f"{k}: FID {value:.3f} (S = {cfg.steps}, n = {cfg.n})")
    bar.close()
    save_results(out, res, spacing_fid_markdown)
    return res


def fids_by_spacing(res: dict[str, Any]) -> dict[str, dict[int, float]]:
    """{spacing: {seed: fid}} from a results dict."""
    out: dict[str, dict[int, float]] = {}
    for c in res["cells"].values():
        out.setdefault(c["spacing"], {})[c["seed"]] = c["fid"]
    return out


def spacing_summary(res: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per spacing with at least 2 seeds: mean and sd of its FID over seeds, and, seed by seed, its
    difference from the baseline spacing: ``diff_mean``, ``diff_sd``, ``lower_in`` (seeds where it is
    lower) and ``paired`` (how many seeds both have). The baseline's own diff entries are 0."""
    fids, base = fids_by_spacing(res), res["config"]["baseline"]
    out: dict[str, dict[str, float]] = {}
    for sp, by_seed in fids.items():
        if len(by_seed) < 2:
            continue
        st = spread_summary(list(by_seed.values()))
        d = [by_seed[s] - fids.get(base, {})[s] for s in by_seed if s in fids.get(base, {})]
        out[sp] = {"mean": st["mean"], "sd": st["sd"], "seeds": len(by_seed), "paired": len(d),
                   "diff_mean": statistics.fmean(d) if d else float("nan"),
                   "diff_sd": statistics.stdev(d) if len(d) >= 2 else float("nan"),
                   "lower_in": sum(x < 0 for x in d)}
    return out


def spacing_fid_markdown(res: dict[str, Any]) -> str:
    """One row per spacing: its first and last timestep, the FID of every seed, mean and sd; then each
    spacing minus the baseline, paired by seed."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    cfg, fids, summ = res["config"], fids_by_spacing(res), spacing_summary(res)
    seeds = sorted({c["seed"] for c in res["cells"].values()})
    ts = res.get("timesteps", {})
    lines = ["| spacing | first t | last t | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd |",
             "|---|---|---|" + "---|" * (len(seeds) + 2)]
    for sp in cfg["spacings"]:
        vals = [fids.get(sp, {}).get(s) for s in seeds]
        st = summ.get(sp)
        lines.append(f"| {sp} | {ts[sp][0] if sp in ts else '–'} | {ts[sp][-1] if sp in ts else '–'} | "
                     + " | ".join("–" if v is None else f"{v:.2f}" for v in vals)
                     + (f" | {st['mean']:.2f} | {st['sd']:.2f} |" if st else " | – | – |"))
    base = cfg["baseline"]
    diff = [f"| spacing − {base} | mean | sd | lower in |", "|---|---|---|---|"]
    for sp in cfg["spacings"]:
        st = summ.get(sp)
        if sp != base and st and st["paired"] >= 2:
            diff.append(f"| {sp} | {st['diff_mean']:+.2f} | {st['diff_sd']:.2f} | "
                        f"{st['lower_in']}/{st['paired']} seeds |")
    return "\n".join([
        f"# Which timesteps? Classifier FID of DDIM (S = {cfg['steps']}, η = {cfg['eta']:g}) per spacing "
        "(lower is better)",
        "",
        f"n = {cfg['n']} samples per FID against the {res['reference']['n']} test images, in the features of the "
        f"shipped Fashion-MNIST classifier; model `{res['model']['spec']}` (weights sha256 "
        f"`{res['model']['sha256'][:16]}…`). Seed k starts every spacing from the same x_T (Table 1's x_T for that "
        "seed). sd is the sample standard deviation over seeds. t is the code's timestep index 0..T-1; every "
        "sampler's last step goes from the last t to ᾱ = 1.",
        "",
        *lines,
        "",
        f"Each spacing minus `{base}`, paired by seed (same x_T): a difference that keeps its sign in every seed "
        "is one this table can show.",
        "",
        *diff,
        "",
        machine_line(res),
        "",
    ])
