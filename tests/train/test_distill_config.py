"""train/distill_config.py: the halving plan (rounds, each student's steps, total steps), the per-round
learning-rate curve against its closed form, and a bad value refused with the allowed range."""

from __future__ import annotations

import math

import pytest

from ddim_lesson.train.distill_config import DistillConfig


@pytest.mark.parametrize("start, final", [(64, 4), (64, 1), (8, 4), (1024, 2)])
def test_the_plan_halves_from_start_to_final(start: int, final: int):
    cfg = DistillConfig(start_steps=start, final_steps=final, steps_per_round=7)
    ladder = [cfg.student_steps(r) for r in range(-1, cfg.rounds)]  # round -1: the first teacher
    assert ladder[0] == start and ladder[-1] == final
    assert all(a == 2 * b for a, b in zip(ladder, ladder[1:]))  # each student takes half its teacher's steps
    assert cfg.rounds == round(math.log2(start / final)) == len(ladder) - 1
    assert cfg.steps == 7 * cfg.rounds


def test_lr_warms_up_linearly_then_decays_on_a_cosine_to_its_floor():
    cfg = DistillConfig(lr=1e-3, warmup=10, min_lr_frac=0.1, steps_per_round=110, start_steps=8, final_steps=4)
    for j in range(10):
        assert cfg.lr_at(j) == pytest.approx(1e-3 * (j + 1) / 10)
    for j in (10, 35, 60, 85, 110, 500):
        p = min((j - 10) / 100, 1.0)
        assert cfg.lr_at(j) == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi * p)) / 2)
    assert cfg.lr_at(60) == pytest.approx(5.5e-4)  # half-way down: the mean of lr and its floor
    assert cfg.lr_at(10) == pytest.approx(1e-3) and cfg.lr_at(10**6) == pytest.approx(1e-4)


@pytest.mark.parametrize("kw, pattern", [
    ({"start_steps": 64, "final_steps": 3}, r"start_steps / final_steps must be a power of 2 >= 2, got 64 / 3"),
    ({"start_steps": 48, "final_steps": 4}, r"power of 2 >= 2, got 48 / 4"),  # ratio 12
    ({"start_steps": 4, "final_steps": 4}, r"power of 2 >= 2, got 4 / 4"),
    ({"final_steps": 0}, r"final_steps must be an integer >= 1, got 0"),
    ({"steps_per_round": True}, r"steps_per_round must be an integer >= 1, got the bool True"),
    ({"warmup": -1}, r"warmup must be an integer >= 0, got -1"),
    ({"lr": 1.0}, r"lr must be a finite number in \(0, 1\), got 1.0"),
    ({"ema_decay": 1.0}, r"ema_decay must be a finite number in \[0, 1\), got 1.0"),
    ({"grad_clip": math.inf}, r"grad_clip must be a finite number > 0, got inf"),
    ({"min_lr_frac": 1.5}, r"min_lr_frac must be a finite number in \[0, 1\], got 1.5"),
    ({"spacing": "leading"}, r"spacing must be 'trailing' .*got 'leading'"),
])
def test_a_bad_value_names_itself_and_the_allowed_range(kw: dict, pattern: str):
    with pytest.raises(ValueError, match=pattern):
        DistillConfig(**kw)


def test_only_trailing_spacing_nests_the_grids():
    """Why spacing must be 'trailing': its k-step grid is every other point of its 2k-step grid (what a student
    matching two teacher steps with one needs); 'leading' breaks that for T = 1000."""
    from ddim_lesson.core.schedules import ddim_timesteps

    for k in (1, 2, 4, 8, 16, 32):
        fine, coarse = ddim_timesteps(1000, 2 * k, "trailing"), ddim_timesteps(1000, k, "trailing")
        assert set(coarse.tolist()) <= set(fine.tolist())
    assert not set(ddim_timesteps(1000, 3, "leading").tolist()) <= set(ddim_timesteps(1000, 6, "leading").tolist())
