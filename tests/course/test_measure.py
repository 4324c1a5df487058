"""CallCounter and Stopwatch, the instruments behind the notebooks' cost figures."""

from __future__ import annotations

import time

import pytest
import torch

import ddim_lesson
from ddim_lesson import NoiseSchedule, ddim_sample
from ddim_lesson.course.measure import CallCounter, Stopwatch


def test_call_counter_counts_sampler_calls_and_timesteps():
    counted = CallCounter(lambda x, t: torch.zeros_like(x))
    s = NoiseSchedule.linear(100)
    ddim_sample(counted, s, torch.randn(2, 3), steps=4, spacing="leading", clip_x0=False)
    assert counted.calls == 4
    assert counted.timesteps == [75, 50, 25, 0]
    counted.reset()
    assert counted.calls == 0 and counted.timesteps == []


def test_stopwatch_measures_the_block():
    with Stopwatch() as sw:
        time.sleep(0.05)
    assert 0.04 < sw.seconds < 1.0
    assert Stopwatch().seconds != Stopwatch().seconds  # nan before use


def test_progress_moves_one_step_per_model_call_and_changes_nothing(capsys):
    from ddim_lesson.course.measure import progress

    model, schedule = ddim_lesson.pretrained("two-moons")
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    plain = ddim_lesson.ddim_sample(model, schedule, x_T, steps=7)
    with progress(model, total=7, desc="seven calls") as model_:
        wrapped = ddim_lesson.ddim_sample(model_, schedule, x_T, steps=7)
        assert model_.bar.n == 7 and model_.bar.total == 7  # one tick per call, counted by the bar itself
    assert torch.equal(plain, wrapped)  # the bar never touches the maths
    assert model_.bar is None  # closed with the block
    assert "seven calls" in capsys.readouterr().err


def test_progress_passes_labels_through_and_refuses_a_bad_total():
    from ddim_lesson.course.measure import progress

    seen = []
    with progress(lambda x, t, *y: seen.append(y) or x, total=1) as model_:
        model_(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
    assert len(seen) == 1 and torch.equal(seen[0][0], torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match="total"):
        progress(lambda x, t: x, total=0)
