"""``ddim-lesson distill``: progressive distillation (Salimans & Ho 2022), its flags built from
:class:`~ddim_lesson.train.distill_config.DistillConfig` through the one bridge."""

from __future__ import annotations

import argparse
import sys

from ..store.device import announce_threads, pick_threads
from .flags import CLIError, dataclass_from_args

HELP = ("distil a model into fewer DDIM steps: rounds 2k -> k, each student's one step trained on its teacher's "
        "two (Salimans & Ho 2022); resumable like train")
EXAMPLE = ("ddim-lesson distill --teacher two-moons --start-steps 64 --final-steps 1 --steps-per-round 500 "
           "--batch-size 256 --lr 1e-3 --out runs/moons-distilled")


def cmd_distill(args: argparse.Namespace) -> None:
    from ..train.distill import DistillConfig, distill
    from ..train.train_state import TrainingInterrupted

    cfg = dataclass_from_args(DistillConfig, args)  # __post_init__ raises ValueError for a bad value
    if not cfg.out:
        raise CLIError("--out is required: the folder for checkpoints and each round's student")
    choice = pick_threads(steady=True)  # a count that does not follow the load, as train: the run's bits depend on it
    if cfg.progress:
        announce_threads(choice)
    try:
        res = distill(cfg)
    except TrainingInterrupted as e:  # SIGINT/SIGTERM: the run stopped after a complete step and checkpoint
        print(f"ddim-lesson: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    if res.meta["steps"] == cfg.steps:
        ladder = " -> ".join(str(cfg.student_steps(r)) for r in range(-1, cfg.rounds))
        print(f"distilled {cfg.teacher} over {cfg.rounds} rounds ({ladder} steps), {cfg.steps_per_round} steps each, "
              f"in {res.meta['wall_time_s']} s; the {cfg.final_steps}-step student is in {cfg.out}/model.*")
    else:
        print(f"stopped at step {res.meta['steps']}/{cfg.steps}; continue with the same flags plus --resume")
