"""The command of ``benchmarks/speed.py``: flags from :class:`~ddim_lesson.evaluate.speed.SpeedConfig`
through the one bridge, the thread choice, the printed table, and speed.json written atomically.

    python benchmarks/speed.py --json benchmarks/results/speed.json
    python benchmarks/speed.py --quick --mlp-sweep ''      # a smoke test

A bad flag or value exits with status 2 and one line naming the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..evaluate.speed import SpeedConfig, run_speed
from ..store.atomic import atomic_write
from ..store.device import announce_threads, pick_device, pick_threads
from ..store.instruments import Stopwatch
from ..store.outputs import check_writable
from .errors import check_cuda_index, run_one_line
from .flags import OneLineParser, add_dataclass_args, comma_list, dataclass_from_args, script_parser

PROG = "speed.py"
BATCHES = comma_list(int, "comma-separated batch sizes like 1,32", skip_empty=True)  # '' -> (): no sweep


def build_parser(doc: str | None = None) -> OneLineParser:
    """The parser; ``doc`` (the script's docstring) gives the description (first line) and the epilog.

    One flag per :class:`SpeedConfig` field; ``--mlp-sweep`` also takes '' (no sweep), which the
    bridge's tuple type does not, so it is added here with the bridge's own comma-list parser."""
    p = script_parser(doc or __doc__ or "")
    p.prog = PROG
    add_dataclass_args(p, SpeedConfig, skip=("mlp_sweep",))
    sweep = next(f for f in dataclasses.fields(SpeedConfig) if f.name == "mlp_sweep")
    p.add_argument("--mlp-sweep", type=BATCHES, default=sweep.default,
                   help=f"{sweep.metadata['help']} (default: {','.join(map(str, sweep.default))})")
    return p


def speed_command(cfg: SpeedConfig) -> dict[str, Any]:
    """Check the device and --json, pick the threads, run the benchmark, print it, write --json; the report."""
    check_cuda_index(pick_device(cfg.device), cfg.device)  # a bad device: one line, before any work
    if cfg.json:
        check_writable(cfg.json, what="--json")  # before the minutes of timing, not after
    announce_threads(pick_threads())
    with Stopwatch() as sw:
        report = run_speed(cfg, log=print)  # training throughput (CUDA) computes core.losses.diffusion_loss
    print(f"\ntotal {sw.seconds:.0f} s")
    if cfg.json:
        atomic_write(Path(cfg.json), json.dumps(report, indent=1).encode())
    return report


def speed_main(doc: str | None = None, argv: Sequence[str] | None = None) -> None:
    """The command of benchmarks/speed.py (``doc``: its docstring, the help): a user error is one line on
    stderr and exit status 2 (errors.run_one_line), a bug keeps its traceback."""
    p = build_parser(doc)

    def command() -> None:
        cfg = dataclass_from_args(SpeedConfig, p.parse_args(argv))  # __post_init__ checks the values
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows when piped
        speed_command(cfg)

    run_one_line(PROG, command)
