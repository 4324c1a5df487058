"""Quality at equal cost: classifier FID of each ODE solver at a few model-call budgets, over seeds.

    python benchmarks/solver_fid.py                       # the committed table (n = 500, 3 seeds)
    python benchmarks/solver_fid.py --n 100 --seeds 0,1 --out /tmp/solver_fid   # a quick look

A cell is (solver, spacing, NFE, seed). Within a seed every cell starts from the same x_T (the
x_T of Table 1's cells with that seed), so the difference between two cells of one seed is less
noisy than either FID; the Markdown reads each solver against DDIM seed by seed. A budget a
solver cannot spend exactly (Heun: 2N-1 calls) is rounded down to the nearest count it can, and
the table says so. Results are saved after every cell; the same command resumes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_int
from ..core.fields import check_fields, clip_x0_field, nfes_field, sample_batch_field, seeds_field
from ..core.schedules import SPACINGS, NoiseSchedule
from ..core.solvers import SOLVERS, calls_within, ode_progressive
from ..store.instruments import Stopwatch, progress_bar
from .fid_spread import spread_summary
from .generate import batch_seed, channels_last, image_shape, n_batches, seeded_latents
from .metrics import FeatureStats, features
from .records import header, machine_line, md_safe, open_results, save_results, with_suffix
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP, fid_setup


@dataclass
class SolverFIDConfig:
    """Which cells to measure. ``nfes`` are budgets in model calls; each solver spends the largest count <= it."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    solvers: tuple[str, ...] = field(default=("ddim", "heun", "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_exact"),
                                     metadata={"choices": SOLVERS})
    spacings: tuple[str, ...] = field(default=("trailing", "logsnr"), metadata={"choices": SPACINGS})
    nfes: tuple[int, ...] = nfes_field((5, 10, 20))
    seeds: tuple[int, ...] = seeds_field((0, 1, 2))  # seed k starts every cell from one x_T
    n: int = field(default=500, metadata={"help": "samples per FID"})
    batch_size: int = sample_batch_field(250)
    clip_x0: bool = clip_x0_field()
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/solver_fid", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        for s in self.solvers:
            check_choice("solver", s, SOLVERS)
        for s in self.spacings:
            check_choice("spacing", s, SPACINGS)
        self.nfes = tuple(check_int("nfe", v, 1, 1000) for v in self.nfes)
        check_fields(self)  # seeds, batch_size
        check_int("n", self.n, 2, None)  # FID needs a covariance
        if not (self.solvers and self.spacings and self.nfes and self.seeds):
            raise ValueError("solvers, spacings, nfes and seeds must each hold at least one value")


def cell_key(solver: str, spacing: str, nfe: int, seed: int) -> str:
    return f"{solver} {spacing} nfe={nfe} seed={seed}"


@torch.no_grad()
def sample_solver_cell(model: nn.Module, schedule: NoiseSchedule, solver: str, spacing: str, calls: int, n: int,
                       batch_size: int, seed: int, clip_x0: bool = False, device: str = "cpu",
                       classifier: nn.Module | None = None,
                       on_call: Callable[[int], object] | None = None) -> tuple[torch.Tensor, float]:
    """n samples of one cell -> (classifier features (n, D), sampling seconds). Batch b starts from
    x_T seeded by core.seeds.batch_seed(seed, b), as Table 1's cells do (sample_cell); ``on_call(1)`` after
    every model call."""
    shape = image_shape(model, "the solver table")

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x, t)
        if on_call is not None:
            on_call(1)
        return out

    feats, seconds = [], 0.0
    with channels_last(model):
        for b, start in enumerate(range(0, n, batch_size)):
            x_T = seeded_latents(batch_seed(seed, b), min(batch_size, n - start), shape).to(device)  # (b, C, H, W)
            with Stopwatch() as sw:
                for step in ode_progressive(counted, schedule, x_T, steps=calls, solver=solver, spacing=spacing,
                                            clip_x0=clip_x0):
                    x0 = step.x
            seconds += sw.seconds
            feats.append(features(x0.cpu(), classifier))
    return torch.cat(feats), seconds


def run_solver_fid(cfg: SolverFIDConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
                   meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                   progress: bool = True) -> dict[str, Any]:
    """Fill the cells seed by seed, saving after each; returns the results dict (resumable)."""
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)  # type: ignore[arg-type]
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "batch_size": cfg.batch_size, "clip_x0": cfg.clip_x0}
    res = open_results(with_suffix(out, ".json"), header("solver-fid", cfg, model, schedule, meta, key))
    res["reference"] = {"split": "test", "n": ref.n}
    todo = [(seed, nfe, sp, so) for seed in cfg.seeds for nfe in cfg.nfes for sp in cfg.spacings for so in cfg.solvers
            if cell_key(so, sp, nfe, seed) not in res["cells"]]
    bar = progress_bar(sum(calls_within(so, nfe) * n_batches(cfg.n, cfg.batch_size) for _, nfe, _, so in todo),
               "solver-fid", progress)
    for seed, nfe, spacing, solver in todo:
        k, calls = cell_key(solver, spacing, nfe, seed), calls_within(solver, nfe)
        bar.set_postfix(cell=k)
        feats, secs = sample_solver_cell(model, schedule, solver, spacing, calls, cfg.n, cfg.batch_size, seed,
                                         cfg.clip_x0, cfg.device, clf, on_call=bar.update)
        value = FeatureStats.of(feats).distance(ref)
        res["cells"][k] = {"solver": solver, "spacing": spacing, "nfe": nfe, "calls": calls, "seed": seed,
                           "fid": round(value, 4), "seconds_per_image": round(secs / cfg.n, 6)}
        save_results(out, res, solver_fid_markdown)
        log(f"{k}: FID {value:.3f} ({calls} calls, n={cfg.n})")
    bar.close()
    save_results(out, res, solver_fid_markdown)
    return res


def fid_table(res: dict[str, Any]) -> dict[tuple[str, str, int], dict[int, float]]:
    """{(solver, spacing, nfe): {seed: fid}} from a results dict."""
    out: dict[tuple[str, str, int], dict[int, float]] = {}
    for c in res["cells"].values():
        out.setdefault((c["solver"], c["spacing"], c["nfe"]), {})[c["seed"]] = c["fid"]
    return out


def best_spacing(res: dict[str, Any]) -> dict[tuple[str, int], str]:
    """{(solver, nfe): the spacing with the lowest mean FID over seeds}."""
    by: dict[tuple[str, int], dict[str, float]] = {}
    for (so, sp, nfe), fids in fid_table(res).items():
        by.setdefault((so, nfe), {})[sp] = statistics.fmean(fids.values())
    return {k: min(v, key=v.get) for k, v in by.items()}  # type: ignore[arg-type]


def _fmt(fids: dict[int, float]) -> str:
    if len(fids) < 2:
        return "–" if not fids else f"{next(iter(fids.values())):.2f}"
    st = spread_summary(list(fids.values()))
    return f"{st['mean']:.2f} ± {st['sd']:.2f}"


def solver_fid_markdown(res: dict[str, Any]) -> str:
    """FID mean ± sd over seeds per (solver, spacing) and budget; then each solver's best spacing
    against DDIM's best, seed by seed."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    tab, cfg = fid_table(res), res["config"]
    nfes = sorted({nfe for _, _, nfe in tab})
    calls = {(c["solver"], c["nfe"]): c["calls"] for c in res["cells"].values()}
    head = "| solver | spacing | " + " | ".join(f"NFE {v}" for v in nfes) + " |"
    lines = [head, "|---|---|" + "---|" * len(nfes)]
    for so in cfg["solvers"]:
        for sp in cfg["spacings"]:
            vals = [_fmt(tab.get((so, sp, v), {})) + ("" if calls.get((so, v), v) == v else f" ({calls[(so, v)]})")
                    for v in nfes]
            lines.append(f"| {so} | {sp} | " + " | ".join(vals) + " |")
    best = best_spacing(res)
    diff = ["| solver (best spacing) − ddim (best spacing) | " + " | ".join(f"NFE {v}" for v in nfes) + " |",
            "|---|" + "---|" * len(nfes)]
    for so in [s for s in cfg["solvers"] if s != "ddim"]:
        vals = []
        for v in nfes:
            a, b = tab.get((so, best.get((so, v), ""), v), {}), tab.get(("ddim", best.get(("ddim", v), ""), v), {})
            d = [a[s] - b[s] for s in a if s in b]
            vals.append("–" if len(d) < 2 else f"{statistics.fmean(d):+.2f} (sd {statistics.stdev(d):.2f}, "
                        f"lower in {sum(x < 0 for x in d)}/{len(d)} seeds)")
        lines_best = f"| {so} | " + " | ".join(vals) + " |"
        diff.append(lines_best)
    seeds = sorted({c["seed"] for c in res["cells"].values()})
    return "\n".join([
        "# FID at equal cost: ODE solvers against model calls (lower is better)",
        "",
        f"Classifier FID, mean ± sample sd over seeds {', '.join(map(str, seeds))}, n = {cfg['n']} samples per FID "
        f"against the {res['reference']['n']} test images; model `{res['model']['spec']}` (weights sha256 "
        f"`{res['model']['sha256'][:16]}…`), clip_x0 = {cfg['clip_x0']}. NFE is the budget in model calls; a number "
        "in brackets is the count the solver actually spent (Heun makes 2N-1 calls, so it gets the odd count below "
        "the budget). Seed k starts every cell from the same x_T.",
        "",
        *lines,
        "",
        "Each solver at its best spacing (lowest mean) minus DDIM at its best, paired by seed (same x_T):",
        "",
        *diff,
        "",
        "Best spacing per cell: " + ", ".join(f"{so} NFE {v}: {sp}" for (so, v), sp in sorted(best.items())) + ".",
        "",
        machine_line(res),
        "",
    ])
