"""Replica of the DDIM paper's Table 2: reconstruction error of DDIM inversion against S.

x0 → ddim_invert (S steps) → ddim_sample (S steps, η = 0) on real test images; the mean squared
error per pixel. Results go to ``OUT.json`` after every S (resumable) and ``OUT.md``.

    ddim-lesson eval table2 --n 500 --out benchmarks/results/table2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checks import check_int
from ..core.fields import check_fields, clip_x0_field, sample_batch_field, spacing_field
from ..core.inversion import ddim_invert
from ..core.samplers import ddim_sample
from ..core.schedules import NoiseSchedule
from ..store.instruments import Stopwatch, progress_bar
from ..store.pretrained import load_any
from .generate import n_batches
from .records import header, machine_line, md_safe, open_results, save_results, with_suffix
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP


@dataclass
class Table2Config:
    """Mean squared error of ddim_sample(ddim_invert(x0)) against x0, for real test images, per S."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: tuple[int, ...] = field(default=(10, 20, 50, 100, 200), metadata={"help": "the columns: step counts S"})
    n: int = field(default=500, metadata={"help": "the first n test images"})
    batch_size: int = sample_batch_field(250)
    spacing: str = spacing_field()
    clip_x0: bool = clip_x0_field()  # off: the exact reverse; clipping at high noise breaks it
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/table2", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        self.steps = tuple(int(s) for s in self.steps)
        check_int("n", self.n, 1)
        check_fields(self)  # spacing, batch_size
        if not self.steps:
            raise ValueError("need at least one S in steps")



@torch.no_grad()
def run_table2(cfg: Table2Config, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
               meta: dict[str, Any] | None = None, images: torch.Tensor | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Invert n real test images with S steps and sample them back; the per-pixel MSE for each S.

    ``images`` (N, C, H, W) in [-1, 1] replaces the test set (for tests). The progress bar counts
    model calls (2·S per batch).
    """
    if model is None or schedule is None:
        model, schedule, meta, _ = load_any(cfg.model, cfg.device)
    model = model.to(cfg.device).eval()
    if images is None:
        from ..store.data import load_images

        images = load_images("fashion-mnist", train=False)  # type: ignore[assignment]
    x0_all = images[: cfg.n]
    out = Path(cfg.out)
    key = {"n": int(x0_all.shape[0]), "spacing": cfg.spacing, "clip_x0": cfg.clip_x0}
    res = open_results(with_suffix(out, ".json"), header("ddim-table2", cfg, model, schedule, meta or {}, key))
    todo = [s for s in sorted(cfg.steps) if f"S={s}" not in res["cells"]]
    bar = progress_bar(sum(2 * s * n_batches(x0_all.shape[0], cfg.batch_size) for s in todo), "table2", progress)
    for steps in todo:
        k = f"S={steps}"
        bar.set_postfix(cell=k)
        sq_err, count = 0.0, 0
        with Stopwatch() as sw:
            for start in range(0, x0_all.shape[0], cfg.batch_size):
                x0 = x0_all[start : start + cfg.batch_size].to(cfg.device)
                x_T = ddim_invert(model, schedule, x0, steps=steps, spacing=cfg.spacing)
                x0_rec = ddim_sample(model, schedule, x_T, steps=steps, eta=0.0, spacing=cfg.spacing,
                                     clip_x0=cfg.clip_x0)
                sq_err += float(((x0_rec - x0).double() ** 2).sum())
                count += x0.numel()
                bar.update(2 * steps)
        wall = sw.seconds
        mse = sq_err / count
        res["cells"][k] = {"steps": steps, "n": int(x0_all.shape[0]), "mse": mse, "mse_unit_range": mse / 4,
                           "seconds_per_image": round(wall / x0_all.shape[0], 6)}
        save_results(out, res, table2_markdown)
        log(f"{k}: MSE {mse:.5f} ([-1, 1] pixels), {mse / 4:.5f} ([0, 1] pixels), {wall / x0_all.shape[0]:.4f} s/image")
    bar.close()
    save_results(out, res, table2_markdown)
    return res


def table2_markdown(res: dict[str, Any]) -> str:
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
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
        machine_line(res),
        "",
    ])
