"""One rule for a seed in every table's config: core.checks.check_seed, [0, 2**63 - 1], the rule the command
line's --seed/--seeds and ddim-lesson sample use (the tables had their own, unbounded above)."""

from __future__ import annotations

import pytest

from ddim_lesson.core.checks import SEED_MAX, check_int
from ddim_lesson.evaluate.distill_fid import DistillFIDConfig
from ddim_lesson.evaluate.flow_twin_fid import FlowTwinFIDConfig
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig
from ddim_lesson.evaluate.spacing_fid import SpacingFIDConfig

CONFIGS = [DistillFIDConfig, FlowTwinFIDConfig, SolverFIDConfig, SpacingFIDConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_table_seeds_follow_the_one_seed_rule(cls):
    assert cls(seeds=(0, SEED_MAX)).seeds == (0, SEED_MAX)  # the whole range is taken
    for bad in (SEED_MAX + 1, -1):
        with pytest.raises(ValueError, match=rf"^each of --seeds must be an integer in \[0, {SEED_MAX}\], got {bad}$"):
            cls(seeds=(0, bad))
    assert check_int("seed", SEED_MAX + 1, 0, None) == SEED_MAX + 1  # the old rule: what the check above refuses
