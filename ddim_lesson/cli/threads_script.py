"""The command of benchmarks/threads.py: time the thread rule against fixed counts, idle and with one core busy,
and write OUT.json / OUT.md atomically.

Flags come from :class:`~ddim_lesson.course.thread_bench.ThreadBenchConfig` and :class:`ThreadsOut` through the
one bridge (:mod:`~ddim_lesson.cli.flags`); a bad value is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.fields import results_field
from ..course.thread_bench import ThreadBenchConfig, run_thread_bench, thread_bench_markdown
from ..evaluate.records import git_commit
from ..store.atomic import atomic_write
from ..store.device import machine
from ..store.outputs import check_writable
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser


@dataclass
class ThreadsOut:
    """Where benchmarks/threads.py writes."""

    out: str = results_field("runs/eval/threads")


def threads_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Time the thread rule against fixed counts, idle and with one core busy; write OUT.json / OUT.md."""
    p = script_parser(doc)
    for cls in (ThreadBenchConfig, ThreadsOut):
        add_dataclass_args(p, cls)
    run_one_line(p.prog, lambda: _threads(p.parse_args(argv)))


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
