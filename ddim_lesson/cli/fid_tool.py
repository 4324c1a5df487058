"""Classifier-FID utilities: ``python -m ddim_lesson.cli.fid_tool --write-reference`` rewrites the shipped
test-set statistics (after ``benchmarks/train_classifier.py``); ``--floor 500,10000`` prints the FID
floor (the test set against that many held-out training images). Flags through the one bridge."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..evaluate.metrics import fid_floor, write_reference
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser


@dataclass
class FIDToolArgs:
    """Classifier-FID utilities."""

    write_reference: bool = field(default=False, metadata={"help": "rewrite the shipped test-set statistics"})
    floor: tuple[int, ...] = field(default=(), metadata={"help": "print the FID floor at these sample counts"})


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and do what it asks; a bad value is one line on stderr and exit status 2."""
    p = script_parser(__doc__)
    p.prog = "python -m ddim_lesson.cli.fid_tool"
    add_dataclass_args(p, FIDToolArgs)
    run_one_line(p.prog, lambda: _run(dataclass_from_args(FIDToolArgs, p.parse_args(argv))))


def _run(a: FIDToolArgs) -> None:
    if a.write_reference:
        print(f"wrote {write_reference()}")
    for n in a.floor:
        print(f"FID floor (test set vs {n} held-out training images): {fid_floor(n):.3f}")
    if not (a.write_reference or a.floor):
        print("nothing to do: pass --write-reference or --floor N[,N...]", file=sys.stderr)


if __name__ == "__main__":
    main()

