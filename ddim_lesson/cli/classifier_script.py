"""The command of benchmarks/train_classifier.py: train the FID feature classifier, print its test accuracy, and
write its safetensors + JSON.

Flags come from :class:`TrainClassifierArgs` through the one bridge (:mod:`~ddim_lesson.cli.flags`); a bad value
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.checks import check_int
from ..core.fields import check_fields, lr_field, seed_field, threads_field, train_batch_field
from ..store.classifier_io import CLASSIFIER_WEIGHTS
from ..store.device import announce_threads, pick_threads
from ..store.outputs import check_writable
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser


@dataclass
class TrainClassifierArgs:
    """How the FID feature classifier is trained, and where it goes."""

    epochs: int = 3
    batch_size: int = train_batch_field(128)
    lr: float = lr_field(3e-3)
    seed: int = seed_field()
    threads: int = threads_field()
    out: str = field(default=str(CLASSIFIER_WEIGHTS), metadata={"help": "the model files' path without suffix"})

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, None)
        check_fields(self)  # batch_size, lr, seed, threads


def train_classifier_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Train the classifier, print its test accuracy, and write ``out``.safetensors / .json."""
    p = script_parser(doc)
    add_dataclass_args(p, TrainClassifierArgs)
    run_one_line(p.prog, lambda: _train_classifier(p.parse_args(argv), argv))


def _train_classifier(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    from ..train.classifier_train import train_classifier

    a = dataclass_from_args(TrainClassifierArgs, args)
    check_writable(f"{a.out}.safetensors")
    announce_threads(pick_threads() if a.threads == 0 else f"{a.threads} thread(s): set by --threads")
    command = "python benchmarks/train_classifier.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    meta = train_classifier(a.out, a.epochs, a.batch_size, a.lr, a.seed, a.threads, command)
    print(f"{meta['params']:,} parameters, test accuracy {meta['test_accuracy']:.2%}, "
          f"{meta['wall_time_s']} s; saved {a.out}.safetensors/.json")
