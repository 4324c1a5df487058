"""CallCounter and Stopwatch, the instruments behind the notebooks' cost figures."""

from __future__ import annotations

import time

import torch

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
