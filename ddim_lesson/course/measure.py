"""Medians of repeated runs, the lessons' cost figures: ``timed(fn).per_call(calls)`` in ms per model call.

    timed(lambda: ddim_sample(model, schedule, x_T, steps=10)).per_call(10)   # -> 0.4... ms per call

The instruments themselves (:class:`Stopwatch`, :class:`CallCounter`, :func:`progress`) live in
``store/instruments.py``, below every layer that runs a model; they are imported here so that
``from ddim_lesson.course.measure import Stopwatch`` keeps working.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from ..core.checks import check_int
from ..store.instruments import CallCounter, ModelProgress, Stopwatch, progress

__all__ = ["CallCounter", "ModelProgress", "Stopwatch", "Timing", "progress", "timed"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated runs of one block, in ms; ``median_ms`` is the figure to quote."""

    runs_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    def per_call(self, calls: int) -> float:
        """Median ms per model call, for a block that makes ``calls`` model calls."""
        return self.median_ms / check_int("calls", calls, 1)


def timed(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed; the median resists a busy moment."""
    repeats, warmup = check_int("repeats", repeats, 1), check_int("warmup", warmup, 0)
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        with Stopwatch() as sw:
            fn()
        runs.append(1000 * sw.seconds)
    return Timing(tuple(runs))
