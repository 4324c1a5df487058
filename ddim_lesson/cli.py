"""The ``ddim-lesson`` command: train, sample, invert, info (and eval, see metrics).

Flags of ``train`` are built from :class:`~ddim_lesson.train.TrainConfig`; bad values exit
non-zero with one line that names the value and what is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

EXAMPLES = {
    "train": "ddim-lesson train --dataset fashion-mnist --steps 5000 --out runs/fmnist",
    "sample": "ddim-lesson sample --steps 50 --eta 0 --n 64 --out samples.png",
    "invert": "ddim-lesson invert --steps 50 --n 8 --out inversion.png",
    "info": "ddim-lesson info fashion-mnist",
}


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_args(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One flag per dataclass field, typed from the annotation, defaulting to the field default."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.default is dataclasses.MISSING:
            continue
        typ = hints[f.name]
        if typ is bool:
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=f.default)
        elif typing.get_origin(typ) is tuple:
            p.add_argument(_flag(f.name), type=_int_tuple, default=f.default,
                           help=f"comma-separated ints (default: {','.join(map(str, f.default))})")
        else:
            p.add_argument(_flag(f.name), type=typ, default=f.default, help=f"(default: {f.default!r})")


def _int_tuple(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,2, got {s!r}") from None


def _dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


# -- subcommands ---------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    cfg = _dataclass_from_args(TrainConfig, args)
    if not cfg.out:
        raise CLIError("--out is required: the folder for checkpoints and the final model")
    res = train(cfg)
    if res.meta["steps"] == cfg.steps:
        print(f"trained {res.meta['params']:,} parameters for {cfg.steps} steps in {res.meta['wall_time_s']} s "
              f"on {res.meta['device']}; final loss {res.meta['final_loss']:.4f}; model in {cfg.out}/model.*")
    else:
        print(f"stopped at step {res.meta['steps']}/{cfg.steps}; continue with the same flags plus --resume")


PARSERS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "train": (cmd_train, "train a denoiser (one GPU, CPU, or torchrun for several GPUs)"),
}


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig

    p = argparse.ArgumentParser(prog="ddim-lesson", description="The DDIM course's command line.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()))
    sub = p.add_subparsers(dest="command", required=True)
    for name, (fn, help_) in PARSERS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=fn)
        if name == "train":
            add_dataclass_args(sp, TrainConfig, skip=("extra",))
    return p


class _OneLineParser(argparse.ArgumentParser):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.func(args)
    except (CLIError, ValueError, FileNotFoundError) as e:
        print(f"ddim-lesson: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
