"""The ``ddim-lesson`` command: train, sample, invert, info, export.

Each subcommand's flags are built from a dataclass (``train`` from
:class:`~ddim_lesson.train.TrainConfig`, the others from the ``*Args`` classes below), whose
``__post_init__`` checks the values. A bad flag or value exits with status 2 and one line that
names the value and what is allowed. ``python -m ddim_lesson`` is the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checks import check_int, check_seed
from .cli_checks import check_common_args, check_cuda_index, error_line, say_threads, silence_stdout
from .env import pick_threads
from .forward import check_eta
from .info import info_lines
from .schedules import DEFAULT_SPACING, SPACINGS, NoiseSchedule, check_steps

EXAMPLES = {
    "train": "ddim-lesson train --dataset fashion-mnist --steps 5000 --out runs/fmnist",
    "sample": "ddim-lesson sample --steps 50 --eta 0 --n 64 --out samples.png",
    "invert": "ddim-lesson invert --steps 50 --n 8 --out inversion.png",
    "info": "ddim-lesson info fashion-mnist",
    "export": "ddim-lesson export runs/fmnist/checkpoint my-model",
    "eval": "ddim-lesson eval table1 --steps 10,20,50 --n 500 --out benchmarks/results/table1",
}
MAX_N = 10000  # images or points per call; the PNG grid stays a sensible size
MODEL_HELP = "a shipped model (fashion-mnist, two-moons), a checkpoint NAME[.safetensors], or a run folder"


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _check_int(name: str, v: Any, lo: int, hi: int | None = None) -> None:
    check_int(name, v, lo, hi)


def _check_png(name: str, out: str) -> None:
    if Path(out).suffix.lower() != ".png":
        raise ValueError(f"{name} must be a .png file name, got {out!r}")


# -- the subcommands' arguments ------------------------------------------------------------
@dataclass
class SampleArgs:
    """Sample a PNG grid of images (or a scatter plot of 2-D points) with DDIM."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: int = field(default=50, metadata={"help": "DDIM steps S = model calls per sample, in [1, T]"})
    eta: float = field(default=0.0, metadata={"help": "η in [0, 1]: 0 is deterministic DDIM, 1 is DDPM-like"})
    spacing: str = field(default=DEFAULT_SPACING, metadata={"choices": SPACINGS, "help": "timestep spacing"})
    seed: int = field(default=0, metadata={"help": "seed of x_T (and of the noise when η > 0)"})
    n: int | None = field(default=None, metadata={"help": f"how many samples, in [1, {MAX_N}]; "
                                                          "default 64 images or 2000 points"})
    batch_size: int | None = field(default=None, metadata={"help": "samples per model call, which bounds memory; "
                                                                   "default 64 images or 2000 points"})
    out: str = field(default="samples.png", metadata={"help": "the PNG to write"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar over batches"})

    def __post_init__(self) -> None:
        for name in ("n", "batch_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, MAX_N)
        check_seed(self.seed)
        check_eta(self.eta)
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {self.spacing!r}")
        _check_png("out", self.out)


@dataclass
class InvertArgs:
    """Encode real test images to x_T with DDIM inversion, decode them again, and report the error."""

    model: str = field(default="fashion-mnist", metadata={"help": MODEL_HELP})
    steps: int = field(default=50, metadata={"help": "DDIM steps for encoding and for decoding, in [1, T]"})
    spacing: str = field(default=DEFAULT_SPACING, metadata={"choices": SPACINGS, "help": "timestep spacing"})
    n: int = field(default=8, metadata={"help": f"test images to invert, in [1, {MAX_N}]; the PNG shows the first 16"})
    seed: int = field(default=0, metadata={"help": "which test images: a random subset drawn with this seed"})
    batch_size: int = field(default=64, metadata={"help": f"images per model call, in [1, {MAX_N}]"})
    out: str = field(default="inversion.png", metadata={"help": "the PNG: rows of originals, latents x_T, "
                                                                "reconstructions"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N, mps"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar over batches"})

    def __post_init__(self) -> None:
        _check_int("n", self.n, 1, MAX_N)
        _check_int("batch_size", self.batch_size, 1, MAX_N)
        check_seed(self.seed)
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {self.spacing!r}")
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


# -- loading models ------------------------------------------------------------------------
def load_any(spec: str, device: str | torch.device = "cpu") -> tuple[nn.Module, NoiseSchedule, dict[str, Any], str]:
    """A shipped model by name, or a checkpoint by path: (model in eval mode, schedule, meta, where)."""
    from .checkpoints import load_model
    from .pretrained import PRETRAINED, weights_path

    if spec in PRETRAINED:
        path = weights_path(spec)
    else:
        path = Path(spec)
        candidates = [path, path.with_name(path.name + ".json"), path.with_suffix(".json"),
                      path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".prev.safetensors")]
        if not any(p.exists() for p in candidates):
            raise CLIError(f"model {spec!r} is neither a shipped model ({', '.join(PRETRAINED)}) "
                           "nor an existing checkpoint; pass a NAME[.safetensors] path or a run folder")
    model, schedule, meta = load_model(path, device=device)
    return model, schedule, meta, str(path)


def sample_shape(model: nn.Module) -> tuple[int, ...]:
    """The shape of one sample: (C, H, W) for a UNet, (dim,) for the 2-D MLP."""
    cfg = model.config  # type: ignore[attr-defined]
    if hasattr(cfg, "image_size"):
        return (cfg.in_channels, cfg.image_size, cfg.image_size)
    return (cfg.dim,)


def _device(name: str) -> torch.device:
    """The CLI's device check: pick_device, plus cuda:N only for a GPU this machine has."""
    from .train import pick_device

    return check_cuda_index(pick_device(name), name)


# -- sampling in batches -------------------------------------------------------------------
def sample_in_batches(
    model: nn.Module,
    schedule: NoiseSchedule,
    n: int,
    batch_size: int,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = DEFAULT_SPACING,
    seed: int = 0,
    progress: bool = False,
    clip_x0: bool | None = None,
) -> torch.Tensor:
    """Draw n samples with DDIM, ``batch_size`` at a time. Returns (n, *sample_shape) on the CPU.

    The model only ever sees batches of at most ``batch_size``, so peak memory is bounded by one
    batch whatever n is. The progress bar counts model calls over all batches (batches × steps).
    x_T (and the η > 0 noise) come from one CPU generator seeded with ``seed``, so the same seed
    and batch size give the same samples on any device. ``clip_x0`` defaults to True for image
    models (pixels live in [-1, 1]) and False for 2-D models, whose data reach ±2.2.
    """
    from tqdm.auto import tqdm

    from .samplers import ddim_progressive

    device = next(model.parameters()).device
    shape = sample_shape(model)
    clip = len(shape) == 3 if clip_x0 is None else clip_x0
    g = torch.Generator().manual_seed(seed)
    out = torch.empty((n, *shape))  # (n, ...) on the CPU
    starts = range(0, n, batch_size)
    bar = tqdm(total=len(starts) * steps, desc="sample", unit="call", disable=not progress, dynamic_ncols=True)
    for k, i in enumerate(starts):
        b = min(batch_size, n - i)
        bar.set_postfix(batch=f"{k + 1}/{len(starts)}")
        x_T = torch.randn((b, *shape), generator=g).to(device)  # (b, ...)
        x = x_T
        for step in ddim_progressive(model, schedule, x_T, steps=steps, eta=eta, spacing=spacing, clip_x0=clip,
                                     generator=g):
            x = step.x  # (b, ...); after the last step it is x0
            bar.update(1)
        out[i : i + b] = x.cpu()
    bar.close()
    return out


def save_grid(images: torch.Tensor, out: str | Path, nrow: int | None = None) -> tuple[int, int]:
    """Save images in [-1, 1], (N, C, H, W), as one PNG grid (2-pixel padding). Returns (width, height)."""
    from torchvision.utils import make_grid, save_image

    from .data import to_unit

    nrow = nrow or math.ceil(math.sqrt(images.shape[0]))
    grid = make_grid(to_unit(images), nrow=nrow, padding=2)  # (3, H', W')
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(out))
    return grid.shape[2], grid.shape[1]


def save_scatter(points: torch.Tensor, out: str | Path, dataset: str | None = None, title: str = "") -> None:
    """Save 2-D samples (N, 2) as a scatter plot, over the training distribution in grey if it is a toy set."""
    from matplotlib.figure import Figure

    from .data import TOY_DATASETS, toy_2d

    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if dataset in TOY_DATASETS:
        ref = toy_2d(dataset, points.shape[0], torch.Generator().manual_seed(12345))
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label=f"{dataset} data")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-2.5, 2.5)
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title, fontsize=9)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(out))


# -- subcommands ---------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train
    from .train_state import TrainingInterrupted

    cfg = _dataclass_from_args(TrainConfig, args)
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
    from .outputs import check_writable

    a = _dataclass_from_args(SampleArgs, args)
    check_writable(a.out)  # before sampling, not after
    model, schedule, meta, _ = load_any(a.model, _device(a.device))
    check_steps(a.steps, schedule.T)
    image = len(sample_shape(model)) == 3
    n = a.n or (64 if image else 2000)
    batch = a.batch_size or (64 if image else 2000)
    say_threads(args)
    t0 = time.perf_counter()
    x = sample_in_batches(model, schedule, n, batch, a.steps, a.eta, a.spacing, a.seed, a.progress)
    secs = time.perf_counter() - t0
    what = f"{a.steps} DDIM steps, eta {a.eta:g}, {a.spacing} spacing, seed {a.seed}"
    if image:
        w, h = save_grid(x, a.out)
        print(f"wrote {n} samples of {a.model} ({what}) to {a.out} ({w}x{h} px) in {secs:.1f} s")
    else:
        save_scatter(x, a.out, meta.get("dataset"), f"{a.model}: {n} samples, {what}")
        print(f"wrote a scatter plot of {n} 2-D samples of {a.model} ({what}) to {a.out} in {secs:.1f} s")


def cmd_invert(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .data import IMAGE_DATASETS, load_images
    from .inversion import ddim_invert
    from .outputs import check_writable
    from .samplers import ddim_sample

    a = _dataclass_from_args(InvertArgs, args)
    check_writable(a.out)  # before inverting, not after
    device = _device(a.device)
    model, schedule, meta, _ = load_any(a.model, device)
    check_steps(a.steps, schedule.T)
    dataset = meta.get("dataset")
    if len(sample_shape(model)) != 3 or dataset not in IMAGE_DATASETS:
        raise CLIError(f"invert needs an image model trained on one of {', '.join(IMAGE_DATASETS)}; "
                       f"{a.model!r} is a {meta['model']['type']} on {dataset!r}")
    test = load_images(dataset, train=False)  # (N, C, H, W)
    say_threads(args)
    if a.n > test.shape[0]:
        raise ValueError(f"n must be an integer in [1, {test.shape[0]}] (the test set's size), got {a.n}")
    x0 = test[torch.randperm(test.shape[0], generator=torch.Generator().manual_seed(a.seed))[: a.n]]
    latents, recon = torch.empty_like(x0), torch.empty_like(x0)
    for i in tqdm(range(0, a.n, a.batch_size), desc="invert", unit="batch", disable=not a.progress):
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
    save_grid(shown, a.out, nrow=k)
    print(f"inverted {a.n} {dataset} test images with {a.steps} DDIM steps ({a.spacing}): reconstruction "
          f"MSE {mse:.5f} (pixels in [-1, 1]), PSNR {psnr:.1f} dB; rows originals/latents/reconstructions in {a.out}")


def cmd_info(args: argparse.Namespace) -> None:
    import json

    from .models import count_params

    a = _dataclass_from_args(InfoArgs, args)
    model, schedule, meta, where = load_any(a.model, "cpu")
    if a.json:
        print(json.dumps({k: v for k, v in meta.items() if k != "losses"}, indent=1))
        return
    training = "opt_groups" in meta  # only training checkpoints keep the optimizer's settings
    for key, value in info_lines(meta, count_params(model), schedule, where, training):
        print(f"{key + ':':<12} {value}")  # values without control characters (info.safe_text)


def cmd_export(args: argparse.Namespace) -> None:
    from .checkpoints import export_ema
    from .outputs import check_writable

    a = _dataclass_from_args(ExportArgs, args)
    check_writable(a.out, what="the destination")
    src = Path(a.checkpoint)
    if src.is_dir():
        src = src / "checkpoint"
    path = export_ema(src, a.out)  # refuses a destination that is the source or any training checkpoint
    print(f"wrote the EMA weights of {src} to {path} and {path.with_suffix('.json')}")


def cmd_eval(args: argparse.Namespace) -> None:
    from .evaluate import cmd_eval as run_eval

    args.device = str(_device(args.device))  # the same device check as the other subcommands ("auto" resolved)
    run_eval(args)


PARSERS: dict[str, tuple[Callable[[argparse.Namespace], None], str, type | None]] = {
    "train": (cmd_train, "train a denoiser (one GPU, CPU, or torchrun for several GPUs)", None),
    "sample": (cmd_sample, SampleArgs.__doc__ or "", SampleArgs),
    "invert": (cmd_invert, InvertArgs.__doc__ or "", InvertArgs),
    "info": (cmd_info, InfoArgs.__doc__ or "", InfoArgs),
    "export": (cmd_export, ExportArgs.__doc__ or "", ExportArgs),
    "eval": (cmd_eval, "measure quality: the paper's Table 1 (FID vs S and η), Table 2 "
             "(inversion error vs S), or how far FID moves with the seed (spread)", None),
}



# -- argparse plumbing ---------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): raised as CLIError."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise CLIError(message)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unoptional(typ: Any) -> Any:
    """``int | None`` -> int."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0] if len(args) == 1 else typ
    return typ


def add_dataclass_args(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One flag per dataclass field, typed from the annotation, defaulting to the field default.

    Field metadata may give ``help``, ``choices``, and ``positional`` (an argument, not a flag).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or (f.default is dataclasses.MISSING and not f.metadata.get("positional")):
            continue
        typ, help_ = _unoptional(hints[f.name]), f.metadata.get("help", "")
        if f.metadata.get("positional"):
            kw: dict[str, Any] = {"help": help_}
            if f.default is not dataclasses.MISSING:
                kw |= {"nargs": "?", "default": f.default, "help": f"{help_} (default: {f.default})"}
            p.add_argument(f.name, type=typ, **kw)
        elif typ is bool:
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        elif typing.get_origin(typ) is tuple:
            p.add_argument(_flag(f.name), type=_int_tuple, default=f.default,
                           help=f"comma-separated ints (default: {','.join(map(str, f.default))})")
        else:
            default = "auto" if f.default is None else repr(f.default)
            p.add_argument(_flag(f.name), type=typ, default=f.default, choices=f.metadata.get("choices"),
                           help=f"{help_} (default: {default})".strip())


def _int_tuple(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,2, got {s!r}") from None


def _dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig

    p = OneLineParser(prog="ddim-lesson", description="The DDIM course's command line.",
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()))
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(PARSERS) + "}")
    for name, (fn, help_, cls) in PARSERS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=fn)
        if name == "eval":
            from .evaluate import add_eval_args

            add_eval_args(sp)
        else:
            add_dataclass_args(sp, cls or TrainConfig)
    return p


def _validate_flags(args: argparse.Namespace) -> None:
    from .train import TrainConfig

    cls = {cmd_sample: SampleArgs, cmd_invert: InvertArgs}.get(args.func, TrainConfig)
    cfg = _dataclass_from_args(cls, args)  # __post_init__ raises ValueError for a bad value
    if cls is TrainConfig and not cfg.out:
        raise CLIError("--out is required: the folder for checkpoints and the final model")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a user error, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        check_common_args(args, _device)  # seeds, η and device, before any work
        if args.func in (cmd_train, cmd_sample, cmd_invert):  # eval picks its own (--threads)
            _validate_flags(args)  # a bad value is the one line printed, before any note
            args.thread_note = f"torch uses {pick_threads().reason}"  # applied now, said when work starts
            if args.func is cmd_train:
                say_threads(args)
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
    except SystemExit as e:  # --help
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        return int(e.code or 0)
    except BrokenPipeError:  # the reader went away (`... | head -1`): nothing more to say to it
        silence_stdout()
        return 2
    except KeyboardInterrupt:
        print("ddim-lesson: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user errors in one line (cli_checks.error_line); a bug keeps its traceback
        line = error_line(e)
        if line is None:
            raise
        print("ddim-lesson: error: " + line, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
