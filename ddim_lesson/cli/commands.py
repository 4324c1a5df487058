"""The ``ddim-lesson`` subcommands train, sample, invert, info, export and eval: each one's arguments
(a dataclass whose ``__post_init__`` checks the values) and the function that runs it."""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core import guidance, seeds
from ..core.checks import check_float, check_int
from ..core.fields import (
    check_fields,
    device_field,
    eta_field,
    progress_field,
    sample_batch_field,
    seed_field,
    spacing_field,
    steps_field,
)
from ..core.inversion import ddim_invert
from ..core.samplers import ddim_sample
from ..core.schedules import check_steps
from ..course.images import MAX_UPSCALE, MIN_GRID_PX, image_format, save_grid, write_image_file
from ..evaluate.generate import sample_in_batches, sample_shape
from ..nets.models import count_params, num_classes_of
from ..store.checkpoints import export_ema, is_training_state
from ..store.data import CLASS_NAMES, IMAGE_DATASETS, TOY_DATASETS, class_label, load_images, toy_2d
from ..store.device import pick_device
from ..store.instruments import Stopwatch, progress_bar
from ..store.outputs import check_writable
from ..store.pretrained import load_any
from ..train.loop import train
from ..train.train_config import TrainConfig
from ..train.train_state import TrainingInterrupted
from .errors import check_cuda_index, say_threads
from .flags import CLIError, dataclass_from_args
from .info import info_lines
from .model_hints import model_help, refuse_velocity_model, student_steps_hint, undertrained_hint
from .table_commands import cmd_eval as run_eval

MAX_N = 10000  # images or points per call; the PNG grid stays a sensible size
GUIDANCE_SCALE = 2.0  # sample --label without --scale
MODEL_HELP = model_help()  # every name in store.pretrained.PRETRAINED
UPSCALE = {"help": f"draw each pixel N×N in the PNG (nearest neighbour), N an integer in [1, {MAX_UPSCALE}]",
           "shown": f"the smallest N that makes the grid at least {MIN_GRID_PX} px wide"}


def _check_png(name: str, out: str) -> None:
    if Path(out).suffix.lower() != ".png":
        raise ValueError(f"{name} must be a .png file name, got {out!r}")


def checked_args(cls: type, args: argparse.Namespace) -> Any:
    """The ``cls`` that ``main.validate_flags`` built and checked from these flags, else one built here
    (a command called directly): each value is checked once per run, before any work."""
    cfg = getattr(args, "checked_config", None)
    return cfg if type(cfg) is cls else dataclass_from_args(cls, args)


# -- the subcommands' arguments ------------------------------------------------------------
@dataclass
class SampleArgs:
    """Sample a PNG grid of images (or a scatter plot of 2-D points) with DDIM."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: int = steps_field(50)
    eta: float = eta_field()
    spacing: str = spacing_field()
    seed: int = seed_field()
    n: int | None = field(default=None, metadata={"help": f"how many samples, in [1, {MAX_N}]; "
                                                          "default 64 images or 2000 points"})
    batch_size: int | None = sample_batch_field(None, MAX_N, shown="64 images or 2000 points")
    out: str = field(default="samples.png", metadata={"help": "the PNG to write"})
    device: str = device_field()
    progress: bool = progress_field()
    upscale: int | None = field(default=None, metadata=UPSCALE)
    label: str | None = field(default=None, metadata={
        "help": "with a class-conditional model (fashion-mnist-cond): every sample of this class, a number or a "
                "name such as dress or ankle-boot; classifier-free guidance at --scale", "shown": "none"})
    scale: float | None = field(default=None, metadata={
        "help": f"guidance scale with --label: 0 unconditional, 1 conditional, above 1 guided; {GUIDANCE_SCALE:g} "
                "is on-class 0.95 of the time against 0.82 at 1 (benchmarks/results/guidance.md)",
        "shown": f"{GUIDANCE_SCALE:g} with --label"})

    def __post_init__(self) -> None:
        if self.scale is not None:
            check_float("scale", self.scale)
            if self.label is None:
                raise ValueError(f"scale {self.scale:g} needs a class to guide towards: pass --label too")
        for name, hi in (("n", MAX_N), ("upscale", MAX_UPSCALE)):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1, hi)
        check_fields(self)  # seed, eta, spacing, batch_size: each field's one check
        _check_png("out", self.out)


@dataclass
class InvertArgs:
    """Encode real test images to x_T with DDIM inversion, decode them again, and report the error."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: int = steps_field(50)  # for encoding and for decoding
    spacing: str = spacing_field()
    n: int = field(default=8, metadata={"help": f"test images to invert, in [1, {MAX_N}]; the PNG shows the first 16"})
    seed: int = seed_field()  # which test images: a random subset drawn with this seed
    batch_size: int = sample_batch_field(64, MAX_N)
    out: str = field(default="inversion.png", metadata={"help": "the PNG: rows of inputs x0, latents x_T, "
                                                                "reconstructions, each labelled"})
    device: str = device_field()
    progress: bool = progress_field()
    upscale: int | None = field(default=None, metadata=UPSCALE)

    def __post_init__(self) -> None:
        check_int("n", self.n, 1, MAX_N)
        if self.upscale is not None:
            check_int("upscale", self.upscale, 1, MAX_UPSCALE)
        check_fields(self)  # seed, spacing, batch_size: each field's one check
        _check_png("out", self.out)


@dataclass
class InfoArgs:
    """Print what a checkpoint or shipped model holds, and how it was trained."""

    model: str = field(default="fashion-mnist", metadata={"positional": True, "help": MODEL_HELP})
    json: bool = field(default=False, metadata={"help": "print the raw JSON metadata instead"})


@dataclass
class ExportArgs:
    """Write the EMA weights of a training checkpoint as a model (NAME.safetensors + NAME.json)."""

    checkpoint: str = field(metadata={"positional": True, "help": "a training checkpoint or run folder"})
    out: str = field(metadata={"positional": True, "help": "NAME of the model files to write"})
    replace: bool = field(default=False, metadata={"help": "write over a model already at NAME (a shipped one "
                                                           "included); without it an existing model is refused"})


def cli_device(name: str) -> torch.device:
    """The CLI's device check: pick_device, plus cuda:N only for a GPU this machine has."""
    return check_cuda_index(pick_device(name), name)


def save_scatter(points: torch.Tensor, out: str | Path, dataset: str | None = None, title: str = "") -> None:
    """Save 2-D samples (N, 2) as a scatter plot, over the training distribution in grey if it is a toy set."""
    from matplotlib.figure import Figure  # here: only a 2-D model's sample pays for importing matplotlib

    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if dataset in TOY_DATASETS:
        ref = toy_2d(dataset, points.shape[0], seeds.backdrop_generator())
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label=f"{dataset} data")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-2.5, 2.5)
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format=image_format(out).lower())
    write_image_file(out, buf.getvalue())  # a temp file, then renamed: never truncated, never through a symlink


def cmd_train(args: argparse.Namespace) -> None:
    cfg = checked_args(TrainConfig, args)
    if not cfg.out:
        raise CLIError("--out is required: the folder for checkpoints and the final model")
    try:
        res = train(cfg)
    except TrainingInterrupted as e:  # SIGINT/SIGTERM: the run stopped after a complete step and checkpoint
        print(f"ddim-lesson: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    if res.meta["steps"] == cfg.steps:
        print(f"trained {res.meta['params']:,} parameters for {cfg.steps} steps in {res.meta['wall_time_s']} s "
              f"on {res.meta['device']}; final loss {res.meta['final_loss']:.4f}; model in {cfg.out}/model.*")
    else:
        print(f"stopped at step {res.meta['steps']}/{cfg.steps}; continue with the same flags plus --resume")


def cmd_sample(args: argparse.Namespace) -> None:
    a = checked_args(SampleArgs, args)
    check_writable(a.out)  # before sampling, not after
    model, schedule, meta, _ = load_any(a.model, cli_device(a.device))
    check_steps(a.steps, schedule.T)
    _say_hint(meta, a.model)
    student_hint = student_steps_hint(meta, a.model, a.steps, a.spacing)
    if student_hint:
        print(student_hint, file=sys.stderr)
    what = f"{a.steps} DDIM steps, eta {a.eta:g}, {a.spacing} spacing, seed {a.seed}"
    if a.label is not None:
        model, guided = _guided(model, meta.get("dataset"), a)
        what = f"{guided}, {what}"
    image = len(sample_shape(model)) == 3
    n = a.n or (64 if image else 2000)
    batch = a.batch_size or (64 if image else 2000)
    say_threads(args)
    with Stopwatch() as sw:
        x = sample_in_batches(model, schedule, n, batch, a.steps, a.eta, a.spacing, a.seed, a.progress)
    secs = sw.seconds
    if image:
        w, h = save_grid(x, a.out, upscale=a.upscale)
        print(f"wrote {n} samples of {a.model} ({what}) to {a.out} ({w}x{h} px) in {secs:.1f} s")
    else:
        save_scatter(x, a.out, meta.get("dataset"), f"{a.model}: {n} samples, {what}")
        print(f"wrote a scatter plot of {n} 2-D samples of {a.model} ({what}) to {a.out} in {secs:.1f} s")


def _say_hint(meta: dict, spec: str) -> None:
    """Refuse a velocity model (model_hints); else the under-training hint on stderr, once the flags are checked."""
    refuse_velocity_model(meta, spec)
    hint = undertrained_hint(meta, spec)
    if hint:
        print(hint, file=sys.stderr)


def _guided(model: torch.nn.Module, dataset: str | None, a: SampleArgs) -> tuple[torch.nn.Module, str]:
    """``cfg(model, label, scale)`` for ``sample --label``, and its words for the summary line."""
    k = num_classes_of(model)
    if not k:
        raise ValueError(f"--label needs a class-conditional model such as fashion-mnist-cond; {a.model!r} has "
                         "no classes")
    y, scale = class_label(dataset, a.label, k), GUIDANCE_SCALE if a.scale is None else a.scale
    names = CLASS_NAMES.get(dataset or "", ())
    name = names[y] if y < len(names) else ("no label" if y == k else str(y))
    return guidance.cfg(model, y, scale), f"class {y} ({name}) at guidance scale {scale:g}"


def cmd_invert(args: argparse.Namespace) -> None:
    a = checked_args(InvertArgs, args)
    check_writable(a.out)  # before inverting, not after
    device = cli_device(a.device)
    model, schedule, meta, _ = load_any(a.model, device)
    check_steps(a.steps, schedule.T)
    _say_hint(meta, a.model)
    dataset = meta.get("dataset")
    if len(sample_shape(model)) != 3 or dataset not in IMAGE_DATASETS:
        raise CLIError(f"invert needs an image model trained on one of {', '.join(IMAGE_DATASETS)}; "
                       f"{a.model!r} is a {meta['model']['type']} on {dataset!r}")
    test = load_images(dataset, train=False)  # (N, C, H, W)
    say_threads(args)
    if a.n > test.shape[0]:
        raise ValueError(f"n must be an integer in [1, {test.shape[0]}] (the test set's size), got {a.n}")
    x0 = test[torch.randperm(test.shape[0], generator=seeds.invert_images_generator(a.seed))[: a.n]]
    latents, recon = torch.empty_like(x0), torch.empty_like(x0)
    for i in progress_bar(None, "invert", a.progress, unit="batch", iterable=range(0, a.n, a.batch_size)):
        xb = x0[i : i + a.batch_size].to(device)  # (b, C, H, W)
        zb = ddim_invert(model, schedule, xb, steps=a.steps, spacing=a.spacing)
        latents[i : i + len(xb)] = zb.cpu()
        # No clipping on the way back: clipping x0_pred changes the path, so it is no longer the inverse ODE.
        recon[i : i + len(xb)] = ddim_sample(model, schedule, zb, steps=a.steps, eta=0.0, spacing=a.spacing,
                                             clip_x0=False).cpu()
    mse = float(((recon - x0) ** 2).mean())
    psnr = 10 * math.log10(4.0 / mse) if mse > 0 else math.inf  # peak-to-peak 2 for pixels in [-1, 1]
    k = min(a.n, 16)
    shown = torch.cat([x0[:k], latents[:k].clamp(-3, 3) / 3, recon[:k]])  # latents: ±3σ mapped to the pixel range
    save_grid(shown, a.out, nrow=k, upscale=a.upscale, row_labels=["input x0", "latent x_T", "reconstruction"])
    print(f"inverted {a.n} {dataset} test images with {a.steps} DDIM steps ({a.spacing}): reconstruction "
          f"MSE {mse:.5f} (pixels in [-1, 1]), PSNR {psnr:.1f} dB; rows inputs/latents/reconstructions in {a.out}")


def cmd_info(args: argparse.Namespace) -> None:
    a = dataclass_from_args(InfoArgs, args)
    model, schedule, meta, where = load_any(a.model, "cpu")
    if a.json:
        print(json.dumps({k: v for k, v in meta.items() if k != "losses"}, indent=1))
        return
    training = "opt_groups" in meta  # only training checkpoints keep the optimizer's settings
    for key, value in info_lines(meta, count_params(model), schedule, where, training):
        print(f"{key + ':':<12} {value}")  # values without control characters (info.safe_text)


def cmd_export(args: argparse.Namespace) -> None:
    a = dataclass_from_args(ExportArgs, args)
    check_writable(a.out, what="the destination")
    src = Path(a.checkpoint)
    if src.is_dir():
        src = src / "checkpoint"
    name = a.out.removesuffix(".safetensors").removesuffix(".json")
    existing = [p for p in (Path(f"{name}.safetensors"), Path(f"{name}.json")) if p.exists()]
    if existing and not a.replace and not is_training_state(existing[0]):  # that one export_ema names itself
        raise ValueError(f"the destination {a.out} already holds a model ({existing[0]}); pass --replace to write "
                         "over it, or another NAME")
    path = export_ema(src, a.out)  # refuses a destination that is the source or any training checkpoint
    print(f"wrote the EMA weights of {src} to {path} and {path.with_suffix('.json')}")


def cmd_eval(args: argparse.Namespace) -> None:
    args.device = str(cli_device(args.device))  # the same device check as the other subcommands ("auto" resolved)
    run_eval(args)
