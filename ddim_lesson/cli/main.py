"""The ``ddim-lesson`` command: train, sample, invert, info, export, eval.

Each subcommand's flags are built from a dataclass through the one bridge in :mod:`~ddim_lesson.cli.flags`
(``train`` from :class:`~ddim_lesson.train.train_config.TrainConfig`, the others from the ``*Args`` classes of
:mod:`~ddim_lesson.cli.commands`), whose ``__post_init__`` checks the values; ``eval``'s per-table flags
come from :mod:`~ddim_lesson.cli.table_commands`. A bad flag or value exits with status 2 and one line that
names the value and what is allowed. ``python -m ddim_lesson`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..store.device import pick_threads
from .commands import (
    ExportArgs,
    InfoArgs,
    InvertArgs,
    SampleArgs,
    cli_device,
    cmd_eval,
    cmd_export,
    cmd_info,
    cmd_invert,
    cmd_sample,
    cmd_train,
)
from .distill_command import EXAMPLE as DISTILL_EXAMPLE
from .distill_command import HELP as DISTILL_HELP
from .distill_command import cmd_distill
from .errors import check_common_args, error_line, one_line_warnings, say_threads, silence_stdout
from .flags import CLIError, OneLineParser, add_dataclass_args, dataclass_from_args
from .gpu_run import GpuRunConfig, cmd_gpu_run
from .table_commands import add_eval_args

__all__ = ["EXAMPLES", "PARSERS", "build_parser", "main", "validate_flags"]

EXAMPLES = {
    "train": "ddim-lesson train --dataset fashion-mnist --steps 5000 --out runs/fmnist",
    "sample": "ddim-lesson sample --steps 50 --eta 0 --n 64 --out samples.png\n"
              "  ddim-lesson sample --model fashion-mnist-cond --label dress --scale 2 --out dresses.png",
    "invert": "ddim-lesson invert --steps 50 --n 8 --out inversion.png",
    "info": "ddim-lesson info fashion-mnist",
    "export": "ddim-lesson export runs/fmnist/checkpoint my-model",
    "eval": "ddim-lesson eval table1 --steps 10,20,50 --n 500 --out benchmarks/results/table1",
    "gpu-run": "bash benchmarks/gpu_run.sh   # or: ddim-lesson gpu-run --smoke --out /tmp/gpu-smoke",
    "distill": DISTILL_EXAMPLE,
}
PARSERS: dict[str, tuple[Callable[[argparse.Namespace], None], str, type | None]] = {
    "train": (cmd_train, "train a denoiser (one GPU, CPU, or torchrun for several GPUs)", None),
    "sample": (cmd_sample, SampleArgs.__doc__ or "", SampleArgs),
    "invert": (cmd_invert, InvertArgs.__doc__ or "", InvertArgs),
    "info": (cmd_info, InfoArgs.__doc__ or "", InfoArgs),
    "export": (cmd_export, ExportArgs.__doc__ or "", ExportArgs),
    "eval": (cmd_eval, "measure quality: the paper's Table 1 (FID vs S and η), Table 2 "
             "(inversion error vs S), or how far FID moves with the seed (spread)", None),
    "gpu-run": (cmd_gpu_run, GpuRunConfig.__doc__ or "", GpuRunConfig),
    "distill": (cmd_distill, DISTILL_HELP, None),
}


def build_parser() -> argparse.ArgumentParser:
    from ..train.train_config import TrainConfig

    p = OneLineParser(prog="ddim-lesson", description="The DDIM course's command line.",
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()))
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(PARSERS) + "}")
    for name, (fn, help_, cls) in PARSERS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=fn)
        if name == "eval":
            add_eval_args(sp)
        elif name == "distill":
            from ..train.distill_config import DistillConfig

            add_dataclass_args(sp, DistillConfig)
        else:
            add_dataclass_args(sp, cls or TrainConfig)
            if cls is None:  # train: an explicit --label-dropout is told apart from the default (validate_flags)
                sp.set_defaults(label_dropout=None)
    return p


def validate_flags(args: argparse.Namespace) -> None:
    from ..train.train_config import TrainConfig

    cls = {cmd_sample: SampleArgs, cmd_invert: InvertArgs}.get(args.func, TrainConfig)
    if cls is TrainConfig:
        _label_dropout(args)
    cfg = dataclass_from_args(cls, args)  # __post_init__ raises ValueError for a bad value
    if cls is TrainConfig and not cfg.out:
        raise CLIError("--out is required: the folder for checkpoints and the final model")
    args.checked_config = cfg  # the command runs with this one (commands.checked_args): the flags checked once


def _label_dropout(args: argparse.Namespace) -> None:
    """--label-dropout given without --num-classes is refused, even at the default's value; not given: the default."""
    from ..train.train_config import LABEL_DROPOUT

    if args.label_dropout is None:
        args.label_dropout = LABEL_DROPOUT
    elif not args.num_classes:
        raise ValueError(f"label_dropout {args.label_dropout:g} is for class-conditional training; pass "
                         "--num-classes too, or leave --label-dropout out")


BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a user error, 130 interrupted, 141 broken pipe)."""
    with one_line_warnings():  # the fall-back to checkpoint.prev: one line, not Python's two
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_common_args(args, cli_device)  # the device, before any work (seeds and η: each config, once)
        if args.func in (cmd_train, cmd_sample, cmd_invert):  # eval picks its own (--threads)
            validate_flags(args)  # a bad value is the one line printed, before any note
            steady = args.func is cmd_train  # training: a count that does not follow the load
            args.thread_note = pick_threads(steady=steady).reason  # announced when work starts
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
    except BrokenPipeError:  # the reader went away (`... | head -1`): one line on stderr, the shell's SIGPIPE status
        silence_stdout()
        try:
            print("ddim-lesson: stopped: the reader of its output went away (broken pipe)", file=sys.stderr)
        except OSError:
            pass
        return BROKEN_PIPE
    except KeyboardInterrupt:
        print("ddim-lesson: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user errors in one line (errors.error_line); a bug keeps its traceback
        line = error_line(e)
        if line is None:
            raise
        print("ddim-lesson: error: " + line, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
