"""The commands of the benchmark scripts that are not FID tables: benchmarks/guidance.py, threads.py and
train_classifier.py. Each one's flags come from dataclasses through the one bridge
(:mod:`~ddim_lesson.cli.cli_args`); a bad value is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..core.checks import check_int, check_seed
from ..course.env import pick_threads
from ..course.thread_bench import ThreadBenchConfig, run_thread_bench, thread_bench_markdown
from ..evaluate.guidance_tables import GuidanceConfig, guidance_markdown, run_guidance
from ..evaluate.records import git_commit
from ..nets.classifier import WEIGHTS
from ..store.ckpt_files import atomic_write
from ..store.device import machine
from ..store.locks import out_lock
from ..store.outputs import check_writable
from .cli_args import add_dataclass_args, dataclass_from_args, script_parser
from .cli_checks import run_one_line


def _script(doc: str, classes: Sequence[type], command: Callable[[argparse.Namespace], object],
            argv: Sequence[str] | None) -> None:
    """Parse ``argv`` with the flags of ``classes`` (``doc`` as help) and run ``command``, errors in one line."""
    p = script_parser(doc)
    for cls in classes:
        add_dataclass_args(p, cls)
    run_one_line(p.prog, lambda: command(p.parse_args(argv)))


# -- benchmarks/guidance.py -----------------------------------------------------------------------
def guidance_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Measure the guidance tables (resumable) and print their Markdown."""
    _script(doc, [GuidanceConfig], _guidance, argv)


def _guidance(args: argparse.Namespace) -> None:
    cfg = dataclass_from_args(GuidanceConfig, args)
    check_writable(f"{cfg.out}.json")  # before the run, not after it
    threads = pick_threads()
    with out_lock(cfg.out, folder=False):  # a second run on this --out is refused, not mixed in
        print(guidance_markdown(run_guidance(cfg, threads=threads.reason)))


# -- benchmarks/threads.py ------------------------------------------------------------------------
@dataclass
class ThreadsOut:
    """Where benchmarks/threads.py writes."""

    out: str = field(default="runs/eval/threads", metadata={"help": "results path without suffix (the committed "
                                                                    "one, benchmarks/results/threads, only if named)"})


def threads_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Time the thread rule against fixed counts, idle and with one core busy; write OUT.json / OUT.md."""
    _script(doc, [ThreadBenchConfig, ThreadsOut], _threads, argv)


def _threads(args: argparse.Namespace) -> None:
    from ..store.pretrained import pretrained

    cfg, out = dataclass_from_args(ThreadBenchConfig, args), dataclass_from_args(ThreadsOut, args).out
    check_writable(f"{out}.json")
    model, _ = pretrained("fashion-mnist")
    res = run_thread_bench(model, cfg)
    res.update(machine=machine(), commit=git_commit(), updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    md = thread_bench_markdown(res)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out + ".json"), json.dumps(res, indent=1).encode())
    atomic_write(Path(out + ".md"), md.encode())
    print(md)


# -- benchmarks/train_classifier.py ---------------------------------------------------------------
@dataclass
class TrainClassifierArgs:
    """How the FID feature classifier is trained, and where it goes."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: env.pick_threads chooses)"})
    out: str = field(default=str(WEIGHTS), metadata={"help": "the model files' path without suffix"})

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, None)
        check_int("batch_size", self.batch_size, 1, None)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        check_seed(self.seed)
        check_int("threads", self.threads, 0, None)


def train_classifier_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Train the classifier, print its test accuracy, and write ``out``.safetensors / .json."""
    _script(doc, [TrainClassifierArgs], lambda args: _train_classifier(args, argv), argv)


def _train_classifier(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    from ..train.classifier_train import train_classifier

    a = dataclass_from_args(TrainClassifierArgs, args)
    check_writable(f"{a.out}.safetensors")
    if a.threads == 0:
        print(f"torch uses {pick_threads().reason}")
    command = "python benchmarks/train_classifier.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    meta = train_classifier(a.out, a.epochs, a.batch_size, a.lr, a.seed, a.threads, command)
    print(f"{meta['params']:,} parameters, test accuracy {meta['test_accuracy']:.2%}, "
          f"{meta['wall_time_s']} s; saved {a.out}.safetensors/.json")
