"""``ddim-lesson eval {table1,table2,spread}`` and the table scripts of benchmarks/ (table1.py, table2.py,
fid_spread.py, solver_fid.py, spacing_fid.py, flow_twin_fid.py, distill_fid.py): a table's flags, built from its
config dataclass through the one bridge (:mod:`~ddim_lesson.cli.flags`), turned into that config, run, and printed
as Markdown."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.fields import check_fields, progress_field, threads_field
from ..evaluate.distill_fid import DistillFIDConfig, distill_fid_markdown, run_distill_fid
from ..evaluate.fid_spread import SpreadConfig, run_spread, spread_markdown
from ..evaluate.flow_twin_fid import FlowTwinFIDConfig, flow_twin_markdown, run_flow_twin_fid
from ..evaluate.solver_fid import SolverFIDConfig, run_solver_fid, solver_fid_markdown
from ..evaluate.spacing_fid import SpacingFIDConfig, run_spacing_fid, spacing_fid_markdown
from ..evaluate.table1 import Table1Config, run_table1, table1_markdown
from ..evaluate.table2 import Table2Config, run_table2, table2_markdown
from ..store.device import announce_threads, pick_threads
from ..store.locks import out_lock
from ..store.outputs import check_writable
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser


@dataclass
class RunArgs:
    """The flags of a table's run that are not settings of the table."""

    threads: int = threads_field()
    progress: bool = progress_field()

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Table:
    """One table: its config dataclass, its run (``run(cfg, progress=...)``) and its Markdown."""

    config: type
    run: Callable[..., dict[str, Any]]
    markdown: Callable[[dict[str, Any]], str]
    about: str
    example: str


TABLES = {
    "table1": Table(Table1Config, run_table1, table1_markdown, "FID vs S and η (the paper's Table 1)",
                    "ddim-lesson eval table1 --steps 10,20,50 --n 500 --out benchmarks/results/table1"),
    "table2": Table(Table2Config, run_table2, table2_markdown, "inversion MSE vs S (the paper's Table 2)",
                    "ddim-lesson eval table2 --n 500 --out benchmarks/results/table2"),
    "spread": Table(SpreadConfig, run_spread, spread_markdown, "how FID moves with the seed",
                    "ddim-lesson eval spread --n 100 --cells 0:10,1:10 --seeds 0,1,2 --out /tmp/spread"),
    "solver_fid": Table(SolverFIDConfig, run_solver_fid, solver_fid_markdown, "FID of ODE solvers at equal cost",
                        "python benchmarks/solver_fid.py --n 100 --seeds 0,1 --nfes 10 --out /tmp/solver_fid"),
    "spacing_fid": Table(SpacingFIDConfig, run_spacing_fid, spacing_fid_markdown, "FID per timestep spacing",
                         "python benchmarks/spacing_fid.py --n 100 --seeds 0,1,2 --out /tmp/spacing_fid"),
    "flow_twin_fid": Table(FlowTwinFIDConfig, run_flow_twin_fid, flow_twin_markdown,
                           "FID of the flow-matching twin against the ε-model at equal model calls",
                           "python benchmarks/flow_twin_fid.py --twin runs/fashion-mnist-fm/model --n 100 --seeds 0 "
                           "--nfes 10 --out /tmp/flow_twin_fid"),
    "distill_fid": Table(DistillFIDConfig, run_distill_fid, distill_fid_markdown,
                         "FID of distilled students against the teacher's solvers at equal model calls",
                         "python benchmarks/distill_fid.py --students runs/fashion-mnist-distilled/student-4 --n 100 "
                         "--seeds 0 --out /tmp/distill_fid"),
}
EVAL_TABLES = ("table1", "table2", "spread")  # the tables of ``ddim-lesson eval``; the others are scripts only
HINTS = {("spread", "--steps"): "the spread takes --cells ETA:S pairs"}  # a refused flag -> what to use instead


class _Refused(argparse.Action):
    """A flag of another table: refused by name, where argparse would say "unrecognized" (or take it as an
    abbreviation: ``--seed`` for ``--seeds``)."""

    def __init__(self, option_strings: list[str], dest: str, message: str = "", **kw: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs="?", default=argparse.SUPPRESS, **kw)
        self.message = message

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kw: Any) -> None:
        parser.error(self.message)


def _flags(cls: type) -> list[str]:
    """The option strings the bridge makes for ``cls``."""
    return [s for a in add_dataclass_args(argparse.ArgumentParser(add_help=False), cls) for s in a.option_strings]


def _refuse_other_tables(p: argparse.ArgumentParser, table: str, own: set[str]) -> None:
    others = {t: _flags(TABLES[t].config) for t in EVAL_TABLES if t != table}
    for flag in dict.fromkeys(f for fs in others.values() for f in fs if f not in own):
        owners = " and ".join(t for t, fs in others.items() if flag in fs)
        hint = HINTS.get((table, flag))
        message = f"{flag} is for {owners}" + (f"; {hint}" if hint else f", not {table}")
        p.add_argument(flag, action=_Refused, message=message, help=argparse.SUPPRESS)


def add_table_args(p: argparse.ArgumentParser, table: str) -> None:
    """The flags of one table: its config's, then :class:`RunArgs`' (and, for an eval table, the others' refused)."""
    actions = add_dataclass_args(p, TABLES[table].config) + add_dataclass_args(p, RunArgs)
    if table in EVAL_TABLES:
        _refuse_other_tables(p, table, {s for a in actions for s in a.option_strings})
    p.set_defaults(table=table)


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """``ddim-lesson eval``'s tables, each a subcommand with its own flags and defaults."""
    sub = p.add_subparsers(dest="table", required=True)
    for t in EVAL_TABLES:
        add_table_args(sub.add_parser(t, help=TABLES[t].about, description=TABLES[t].about,
                                      epilog=f"example:\n  {TABLES[t].example}",
                                      formatter_class=argparse.RawDescriptionHelpFormatter), t)


def config_from_args(args: argparse.Namespace, table: str | None = None) -> Any:
    """The config dataclass of ``table`` (default ``args.table``) from the parsed flags (it checks the values)."""
    return dataclass_from_args(TABLES[table or args.table].config, args)


def cmd_eval(args: argparse.Namespace, table: str | None = None) -> None:
    """Run the table named by ``args.table`` (or ``table``) and print its Markdown."""
    entry = TABLES[table or args.table]
    cfg = dataclass_from_args(entry.config, args)  # a bad value is the one line printed, before the thread note
    run = dataclass_from_args(RunArgs, args)
    check_out_prefix(cfg.out)
    check_writable(f"{cfg.out}.json")  # before the run, not after it
    if run.threads > 0:
        torch.set_num_threads(run.threads)
        announce_threads(f"{run.threads} thread(s): set by --threads")
    else:
        announce_threads(pick_threads())
    with out_lock(cfg.out, folder=False):  # a second eval on this --out is refused, not mixed in
        res = entry.run(cfg, progress=run.progress)
    print()
    print(entry.markdown(res))
    print(f"results: {cfg.out}.json and {cfg.out}.md")


def check_out_prefix(out: str) -> None:
    """--out is a prefix for OUT.json and OUT.md: refuse a device, FIFO or socket there (``/dev/full``)."""
    p = Path(out)
    if p.exists() and not (p.is_file() or p.is_dir()):
        raise ValueError(f"--out {out!r} is a device or other special file, not a name for results files; "
                         "pass a path such as runs/eval/table1")
    if p.absolute().parent == Path("/dev"):
        raise ValueError(f"--out {out!r} would write results files into /dev; pass a path such as runs/eval/table1")


def script_main(doc: str, table: str, argv: Sequence[str] | None = None) -> None:
    """The command of a table script in benchmarks/: the table's flags, with ``doc`` (the script's docstring) as
    help; a bad value is reported in one line (exit status 2) rather than a traceback."""
    p = script_parser(doc)
    add_table_args(p, table)
    run_one_line(p.prog, lambda: cmd_eval(p.parse_args(argv), table))
