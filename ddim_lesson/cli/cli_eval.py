"""``ddim-lesson eval {table1,table2,spread}`` and the scripts benchmarks/table1.py, table2.py and
fid_spread.py: one table's flags, turned into its config dataclass, run, and printed as Markdown."""

from __future__ import annotations

import argparse
import sys

import torch

from ..core.schedules import DEFAULT_SPACING
from ..course.env import pick_threads
from ..evaluate.generate import SIGMA_HAT
from ..evaluate.spread import SpreadConfig, run_spread, spread_markdown
from ..evaluate.table1 import Table1Config, run_table1, table1_markdown
from ..evaluate.table2 import Table2Config, run_table2, table2_markdown
from ..store.outputs import check_writable
from .cli_args import comma_list


def _kv(kv: str) -> tuple[int, int]:
    a, b = kv.split("=")
    return int(a), int(b)


def _cell(kv: str) -> tuple[float | str, int]:
    r, steps = kv.split(":")
    return (r if r == SIGMA_HAT else float(r), int(steps))


INTS = comma_list(int, "comma-separated integers like 10,20,50")
FLOATS = comma_list(float, "comma-separated numbers like 0,0.2,0.5,1")
CELLS = comma_list(_cell, f"ETA:S pairs like 0:10,1:50,{SIGMA_HAT}:100")
_N_AT_PAIRS = comma_list(_kv, "S=N pairs like 1000=500,100=800", skip_empty=True)


def N_AT(s: str) -> dict[int, int]:  # noqa: N802 - an argparse type, named like the others
    """"1000=500,100=800" -> {1000: 500, 100: 800}."""
    return dict(_N_AT_PAIRS(s))


TABLES = {"table1": "FID vs S and η", "table2": "inversion MSE vs S", "spread": "how FID moves with the seed"}


def add_eval_args(p: argparse.ArgumentParser, table: str | None = None) -> None:
    """The flags of ``ddim-lesson eval {table1,table2,spread}``; with ``table`` fixed, only that one's flags."""
    t1, t2, sp = (table in (None, name) for name in TABLES)
    if table is None:
        p.add_argument("table", choices=tuple(TABLES), help="; ".join(f"{k}: {v}" for k, v in TABLES.items()))
    p.add_argument("--model", default="fashion-mnist", help="a shipped model's name or a checkpoint path")
    if t1 or t2:
        p.add_argument("--steps", type=INTS, default=None, help="comma-separated S (default: the paper's)")
    p.add_argument("--n", type=int, default=None, help="samples per cell (table1, default 1000; spread, 500) or "
                                                       "test images (table2, default 500)")
    if t1:
        p.add_argument("--etas", type=FLOATS, default=None, help="table1: comma-separated η (default 0,0.2,0.5,1)")
        p.add_argument("--no-sigma-hat", dest="sigma_hat", action="store_false", help="table1: skip the σ̂ row")
        p.add_argument("--n-at", type=N_AT, default={}, help="table1: other sample counts for some S, e.g. 1000=500")
        p.add_argument("--seed", type=int, default=0, help="table1: seed of x_T and of the noise")
        p.add_argument("--no-floor", dest="floor", action="store_false", help="table1: skip the real-data FID floor")
    if t2:
        p.add_argument("--clip-x0", action="store_true",
                       help="table2: clip x0_pred to [-1, 1] when sampling back (off: the exact reverse ODE)")
    if sp:
        p.add_argument("--cells", type=CELLS, default=None, help="spread: ETA:S pairs (default 0:10,1:10,0:50,1:50)")
        p.add_argument("--seeds", type=INTS, default=None, help="spread: seeds (default 0,1,2,3,4; 0 is Table 1's)")
        p.add_argument("--no-real", dest="real", action="store_false", help="spread: skip the real-image sets")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--spacing", default=DEFAULT_SPACING, help=f"timestep spacing (default {DEFAULT_SPACING})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="results path without suffix (default runs/eval/table1, table2 or "
                                                 "fid_spread; the committed ones in benchmarks/results/ only if named)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def config_from_args(args: argparse.Namespace, table: str) -> Table1Config | Table2Config | SpreadConfig:
    common = {"model": args.model, "batch_size": args.batch_size, "spacing": args.spacing, "device": args.device}
    opt = {k: getattr(args, k) for k in ("steps", "n", "out") if getattr(args, k, None) is not None}
    if table == "table1":
        etas = {"etas": args.etas} if args.etas is not None else {}
        return Table1Config(**common, **opt, **etas, sigma_hat=args.sigma_hat, n_at=args.n_at, seed=args.seed,
                            floor=args.floor)
    if table == "spread":
        if "steps" in opt:
            raise ValueError("--steps is for table1 and table2; the spread takes --cells ETA:S pairs")
        picked = {k: getattr(args, k) for k in ("cells", "seeds") if getattr(args, k, None) is not None}
        return SpreadConfig(**common, **opt, **picked, real=args.real)
    return Table2Config(**common, **opt, clip_x0=args.clip_x0)


def cmd_eval(args: argparse.Namespace, table: str | None = None) -> None:
    """Run the table named by ``args.table`` (or ``table``) and print its Markdown."""
    table = table or args.table
    cfg = config_from_args(args, table)  # a bad value is the one line printed, before the thread note
    check_writable(f"{cfg.out}.json")  # before the run, not after it
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    else:
        print(f"torch uses {pick_threads().reason}", file=sys.stderr)
    run, markdown = {"table1": (run_table1, table1_markdown), "table2": (run_table2, table2_markdown),
                     "spread": (run_spread, spread_markdown)}[table]
    res = run(cfg, progress=getattr(args, "progress", True))  # type: ignore[operator]
    print()
    print(markdown(res))
    print(f"results: {cfg.out}.json and {cfg.out}.md")


def script_main(doc: str, table: str, argv: list[str] | None = None) -> None:
    """The command of benchmarks/table1.py, table2.py and fid_spread.py: one table's flags, with ``doc``
    (the script's docstring) as help, and a bad value reported in one line rather than a traceback."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=doc.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_args(p, table=table)
    try:
        cmd_eval(p.parse_args(argv), table=table)
    except ValueError as e:
        p.error(str(e))


