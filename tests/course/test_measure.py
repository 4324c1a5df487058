"""course/measure.py keeps ``timed`` (medians of repeats) and hands on the instruments from store/instruments.py
(tested in tests/store/test_instruments.py): every name a notebook used before the move is the same object."""

from __future__ import annotations

import pytest

import ddim_lesson
import ddim_lesson.course as course
from ddim_lesson.course import measure
from ddim_lesson.store import instruments


@pytest.mark.parametrize("name", ["CallCounter", "ModelProgress", "Stopwatch", "progress"])
def test_the_instruments_are_the_stores_own_objects(name: str) -> None:
    assert getattr(measure, name) is getattr(instruments, name)  # imported, not copied
    if name != "ModelProgress":
        assert getattr(course, name) is getattr(instruments, name)  # `from ddim_lesson.course import ...`
    if name in ("CallCounter", "Stopwatch"):
        assert getattr(ddim_lesson, name) is getattr(instruments, name)  # `dl.Stopwatch`


def test_timed_times_with_the_one_stopwatch_and_quotes_a_median(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])  # runs of 4, 1 and 10 ms on a fake clock
    monkeypatch.setattr(measure, "Stopwatch", lambda: instruments.Stopwatch(lambda: next(ticks)))
    calls = []
    t = measure.timed(lambda: calls.append(1), repeats=3, warmup=1)
    assert len(calls) == 4 and t.runs_ms == pytest.approx((4.0, 1.0, 10.0))
    assert t.median_ms == pytest.approx(4.0) and t.per_call(2) == pytest.approx(2.0)
