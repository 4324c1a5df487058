"""Replicas of the DDIM paper's Table 1 (FID vs steps S and η) and Table 2 (inversion error vs S),
and the seed-to-seed spread that tells which differences in Table 1 are real.

This module gathers the paper's tables under one name (the course's other studies, such as ``solver_fid``,
``spacing_fid`` and ``guidance_tables``, are imported from their own modules); each lives in its own module:

- :mod:`~ddim_lesson.evaluate.records`: provenance (machine, git commit, model SHA-256), atomic JSON + Markdown;
  ``load_results(name)`` reads a committed result for a notebook.
- :mod:`~ddim_lesson.evaluate.generate`: the one seeded, batched sampler with progress.
- :mod:`~ddim_lesson.evaluate.table1`, :mod:`~ddim_lesson.evaluate.fid_spread`,
  :mod:`~ddim_lesson.evaluate.table2`: the tables.
- :mod:`~ddim_lesson.cli.table_commands` (the command-line layer, above this one): the ``ddim-lesson eval`` command
  and the benchmark scripts.

    ddim-lesson eval table1 --n 1000 --out benchmarks/results/table1
    ddim-lesson eval table2 --n 500 --out benchmarks/results/table2
    ddim-lesson eval spread --n 500          # how far Table 1's FID moves with the seed alone

Default ``--out``: runs/eval/. benchmarks/results/ (committed) is written only when named, and only by
a run whose resume key (every setting that moves a number, n included) matches the file's.
"""

from __future__ import annotations

from .fid_spread import SpreadConfig, run_spread, spread_markdown, spread_summary
from .generate import SIGMA_HAT, channels_last, sample_cell
from .records import REPO, git_commit, load_results, machine, model_sha256
from .table1 import Table1Config, cell_key, run_table1, table1_markdown
from .table2 import Table2Config, run_table2, table2_markdown

__all__ = [
    "REPO", "SIGMA_HAT", "SpreadConfig", "Table1Config", "Table2Config",
    "cell_key", "channels_last", "git_commit", "load_results",
    "machine", "model_sha256", "run_spread", "run_table1", "run_table2", "sample_cell",
    "spread_markdown", "spread_summary", "table1_markdown", "table2_markdown",
]
