"""The command of benchmarks/guidance.py: measure the guidance tables (resumable) and print their Markdown.

Flags come from :class:`~ddim_lesson.evaluate.guidance_tables.GuidanceConfig` through the one bridge
(:mod:`~ddim_lesson.cli.flags`); a bad value is one line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluate.guidance_tables import GuidanceConfig, guidance_markdown, run_guidance
from ..store.device import announce_threads, pick_threads
from ..store.locks import out_lock
from ..store.outputs import check_writable
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser


def guidance_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Measure the guidance tables (resumable) and print their Markdown."""
    p = script_parser(doc)
    add_dataclass_args(p, GuidanceConfig)

    def command() -> None:
        cfg = dataclass_from_args(GuidanceConfig, p.parse_args(argv))
        check_writable(f"{cfg.out}.json")  # before the run, not after it
        threads = pick_threads()
        with out_lock(cfg.out, folder=False):  # a second run on this --out is refused, not mixed in
            announce_threads(threads)  # once the --out is ours: a refusal stays the one line printed
            print(guidance_markdown(run_guidance(cfg, threads=threads.reason)))

    run_one_line(p.prog, command)
