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

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..core.checks import check_choice, check_float, check_int
from ..core.schedules import SPACINGS, NoiseSchedule, ddim_timesteps
from .generate import n_batches, progress_bar, sample_cell
from .metrics import FeatureStats
from .records import header, machine_line, open_results, save_results, with_suffix
from .spread import spread_summary
from .table1 import _fid_setup


@dataclass
class SpacingFIDConfig:
    """FID per (spacing, seed) at one step count ``steps`` and one ``eta``; n samples per FID."""

    model: str = "fashion-mnist"
    spacings: tuple[str, ...] = ("leading", "trailing", "linspace", "quadratic")  # the DDIM-era four
    baseline: str = "trailing"  # the spacing the others are read against, seed by seed
    steps: int = 10
    eta: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n: int = 500
    batch_size: int = 250
    device: str = "cpu"
    out: str = "runs/eval/spacing_fid"  # benchmarks/results/spacing_fid holds the committed table: named explicitly

    def __post_init__(self) -> None:
        self.spacings = tuple(check_choice("spacing", s, SPACINGS) for s in self.spacings)
        check_choice("baseline", self.baseline, self.spacings)
        self.steps = check_int("steps", self.steps, 1, None)
        self.eta = check_float("eta", self.eta, 0.0)
        self.seeds = tuple(check_int("seed", s, 0, None) for s in self.seeds)
        if len(set(self.seeds)) < 2:
            raise ValueError(f"seeds must hold at least 2 different seeds to measure a spread, got {self.seeds}")
        check_int("n", self.n, 2, None)  # FID needs a covariance
        check_int("batch_size", self.batch_size, 1, None)


def cell_key(spacing: str, seed: int) -> str:
    return f"{spacing} seed={seed}"


def run_spacing_fid(cfg: SpacingFIDConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
                    meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                    progress: bool = True) -> dict[str, Any]:
    """Fill the cells seed by seed, saving after each; returns the results dict (resumable)."""
    model, schedule, meta, clf, clf_sha, ref = _fid_setup(cfg, model, schedule, meta)  # type: ignore[arg-type]
    check_int("steps", cfg.steps, 1, schedule.T)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "steps": cfg.steps, "eta": cfg.eta, "batch_size": cfg.batch_size,
           "device": cfg.device}  # all that moves a FID
    res = open_results(with_suffix(out, ".json"), header("ddim-spacing-fid", cfg, model, schedule, meta, key))
    res["reference"] = {"split": "test", "n": ref.n}
    res["timesteps"] = {sp: ddim_timesteps(schedule.T, cfg.steps, sp).tolist() for sp in cfg.spacings}
    todo = [(seed, sp) for seed in cfg.seeds for sp in cfg.spacings if cell_key(sp, seed) not in res["cells"]]
    bar = progress_bar(len(todo) * cfg.steps * n_batches(cfg.n, cfg.batch_size), "spacing-fid", progress)
    for seed, spacing in todo:
        k = cell_key(spacing, seed)
        bar.set_postfix(cell=k)
        t0 = time.perf_counter()
        feats, secs = sample_cell(model, schedule, cfg.eta, cfg.steps, cfg.n, cfg.batch_size, seed, spacing,
                                  cfg.device, clf, on_step=bar.update)
        value = FeatureStats.of(feats).distance(ref)
        res["cells"][k] = {"spacing": spacing, "seed": seed, "fid": round(value, 4),
                           "seconds_per_image": round(secs / cfg.n, 6), "wall_s": round(time.perf_counter() - t0, 2),
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


def _csv(conv: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(s: str) -> tuple[Any, ...]:
        try:
            return tuple(conv(v) for v in s.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {s!r}") from None
    return parse


def main(argv: list[str] | None = None, doc: str = __doc__) -> None:
    """The command of benchmarks/spacing_fid.py; a bad value is reported in one line (exit 2)."""
    d = SpacingFIDConfig()
    p = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=doc.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=d.model, help="a shipped model's name or a checkpoint path")
    p.add_argument("--spacings", type=_csv(str), default=d.spacings, help=f"allowed: {', '.join(SPACINGS)}")
    p.add_argument("--baseline", default=d.baseline, help="the spacing the others are read against")
    p.add_argument("--steps", type=int, default=d.steps, help="model calls per sample")
    p.add_argument("--eta", type=float, default=d.eta)
    p.add_argument("--seeds", type=_csv(int), default=d.seeds, help="seed k gives Table 1's x_T for seed k")
    p.add_argument("--n", type=int, default=d.n, help="samples per FID")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--device", default=d.device)
    p.add_argument("--out", default=d.out, help="results path without suffix")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    try:
        cfg = SpacingFIDConfig(args.model, args.spacings, args.baseline, args.steps, args.eta, args.seeds, args.n,
                               args.batch_size, args.device, args.out)
        res = run_spacing_fid(cfg, progress=args.progress)
    except ValueError as e:
        p.error(str(e))
    print()
    print(spacing_fid_markdown(res))
    print(f"results: {cfg.out}.json and {cfg.out}.md")
