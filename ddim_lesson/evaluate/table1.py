"""Replica of the DDIM paper's Table 1: classifier FID for every (η, S), plus the σ̂ row, and seconds per image.

Every cell starts from the same x_T (one seed per batch, :func:`~ddim_lesson.evaluate.generate.sample_cell`),
so cells differ only by the sampler. Samples are rounded to 8-bit pixels before their features are
taken, like the data. Results go to ``OUT.json`` after every cell (resumable) and ``OUT.md``.

    ddim-lesson eval table1 --n 1000 --out benchmarks/results/table1
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..core.checks import check_eta, check_int
from ..core.fields import RESULTS_HELP, check_fields, sample_batch_field, seed_field, spacing_field
from ..core.schedules import NoiseSchedule
from ..store.instruments import Stopwatch, progress_bar
from ..store.pretrained import load_any, model_help
from .generate import SIGMA_HAT, Row, n_batches, row_sampler, sample_cell
from .metrics import FeatureStats, classifier_and_sha, fid_floor, reference_stats
from .records import header, machine_line, md_safe, open_results, save_results, with_suffix

MODEL_HELP = model_help()
DEVICE_HELP = "cpu, cuda, cuda:N or mps"
OUT_HELP = RESULTS_HELP


def check_fid_count(name: str, v: Any) -> int:
    """A sample count or batch size of an FID run: an integer >= 2 (FID needs a covariance)."""
    try:
        return check_int(name, v, 2)
    except ValueError as e:
        raise ValueError(f"{e} (FID needs a covariance)") from None


@dataclass
class Table1Config:
    """FID for every (η, S), plus the σ̂ row. ``n`` samples per cell; ``n_at`` overrides n for some S."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: tuple[int, ...] = field(default=(10, 20, 50, 100, 1000), metadata={"help": "the columns: step counts S"})
    etas: tuple[float, ...] = field(default=(0.0, 0.2, 0.5, 1.0), metadata={"help": "the rows: η values"})
    sigma_hat: bool = field(default=True, metadata={"help": "also the σ̂ row (σ² = β)"})
    n: int = field(default=1000, metadata={"help": "samples per FID"})  # one FID per cell
    n_at: dict[int, int] = field(default_factory=dict, metadata={  # e.g. {1000: 500}: fewer samples for the costly S
        "help": "other sample counts for some S, e.g. 1000=500", "example": "S=N pairs like 1000=500,100=800"})
    batch_size: int = sample_batch_field(250)
    seed: int = seed_field()  # x_T and the noise
    spacing: str = spacing_field()
    floor: bool = field(default=True, metadata={"help": "also the FID of held-out real images at the same n "
                                                        "(needs the dataset)"})
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/table1", metadata={"help": OUT_HELP})  # the committed table: named explicitly

    def __post_init__(self) -> None:
        self.steps = tuple(int(s) for s in self.steps)
        self.n_at = {int(k): int(v) for k, v in self.n_at.items()}
        for name, v in [("n", self.n), ("batch_size", self.batch_size)] + [(f"n_at[{k}]", v) for k, v in
                                                                            self.n_at.items()]:
            check_fid_count(name, v)
        check_fields(self)  # seed, spacing, batch_size
        if not self.steps or not (self.etas or self.sigma_hat):
            raise ValueError("need at least one S in steps and one row (an eta, or sigma_hat)")
        try:
            self.etas = tuple(check_eta(e) for e in self.etas)  # each in [0, 1], named with the range; none clamped
        except ValueError as e:
            raise ValueError(f"{e} (one of etas {self.etas})") from None

    def n_for(self, steps: int) -> int:
        return self.n_at.get(steps, self.n)



def cell_key(row: Row, steps: int) -> str:
    return f"{SIGMA_HAT} S={steps}" if row == SIGMA_HAT else f"eta={float(row)} S={steps}"


def run_table1(cfg: Table1Config, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
               progress: bool = True) -> dict[str, Any]:
    """Fill Table 1 cell by cell, cheapest first, saving after each; returns the results dict.

    Pass ``model`` and ``schedule`` to evaluate a model in memory (``cfg.model`` is then only a label).
    The progress bar counts model calls over the cells still to do.
    """
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "seed": cfg.seed, "spacing": cfg.spacing, "batch_size": cfg.batch_size,
           "n": cfg.n, "n_at": {str(k): v for k, v in cfg.n_at.items()}, "device": cfg.device}  # all that moves a FID
    res = open_results(with_suffix(out, ".json"), header("ddim-table1", cfg, model, schedule, meta, key))
    res["reference"] = {"split": "test", "n": ref.n}
    rows: list[Row] = list(cfg.etas) + ([SIGMA_HAT] if cfg.sigma_hat else [])
    cells = sorted(((s, r) for s in cfg.steps for r in rows), key=lambda c: c[0])
    todo = [(s, r) for s, r in cells if res["cells"].get(cell_key(r, s), {}).get("n") != cfg.n_for(s)]
    bar = progress_bar(sum(s * n_batches(cfg.n_for(s), cfg.batch_size) for s, _ in todo), "table1", progress)
    for steps, row in todo:
        k, n = cell_key(row, steps), cfg.n_for(steps)
        bar.set_postfix(cell=k)
        with Stopwatch() as sw:
            value, secs = fid_of_cell(model, schedule, row, steps, n, cfg.seed, cfg, clf, ref, bar)
            res["cells"][k] = {"eta": row, "steps": steps, "n": n, "fid": round(value, 4),
                               "seconds_per_image": round(secs / n, 6), "wall_s": round(sw.elapsed, 2),
                               "channels_last": True}
            if cfg.floor:
                _add_floor(res, n, log)
            save_results(out, res, table1_markdown)
        log(f"{k}: FID {value:.3f} (n={n}), {secs / n:.4f} s/image, cell took {sw.seconds:.1f} s")
    bar.close()
    save_results(out, res, table1_markdown)
    return res


def fid_setup(cfg: Any, model: nn.Module | None, schedule: NoiseSchedule | None,
               meta: dict[str, Any] | None) -> tuple[nn.Module, NoiseSchedule, dict[str, Any], nn.Module, str,
                                                     FeatureStats]:
    """(model on cfg.device in eval mode, schedule, meta, classifier, its sha256, test-set statistics)."""
    if model is None or schedule is None:
        model, schedule, meta, _ = load_any(cfg.model, cfg.device)
    clf, clf_sha = classifier_and_sha()
    return model.to(cfg.device).eval(), schedule, meta or {}, clf, clf_sha, reference_stats("test")


def fid_of_cell(model: nn.Module, schedule: NoiseSchedule, row: Row, steps: int, n: int, seed: int,
                 cfg: Any, clf: nn.Module, ref: FeatureStats, bar: Any) -> tuple[float, float]:
    """Sample one cell (``row``: an η, or SIGMA_HAT) and score it: (FID against ``ref``, sampling seconds)."""
    eta, sigma_hat = row_sampler(row)
    feats, secs = sample_cell(model, schedule, eta, steps, n, cfg.batch_size, seed, cfg.spacing, cfg.device, clf,
                              on_step=bar.update, sigma_hat=sigma_hat)
    return FeatureStats.of(feats).distance(ref), secs


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
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    cells = res["cells"]
    steps = sorted({c["steps"] for c in cells.values()})
    rows = sorted({c["eta"] for c in cells.values() if c["eta"] != SIGMA_HAT}) + (
        [SIGMA_HAT] if any(c["eta"] == SIGMA_HAT for c in cells.values()) else [])
    ns = {c["n"] for c in cells.values()}

    def label(r: Row) -> str:
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
            machine_line(res), ""]
    return "\n".join(out)


