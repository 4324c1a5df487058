"""store/instruments.py: the one timer, the one call counter, the one progress bar, and nothing else that times or
draws a bar in the package (a source scan, shown to find a planted offender)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ddim_lesson
from ddim_lesson import NoiseSchedule, ddim_sample
from ddim_lesson.store import instruments
from ddim_lesson.store.instruments import CallCounter, Stopwatch, progress, progress_bar

PKG = Path(ddim_lesson.__file__).resolve().parent


class FakeClock:
    """Returns the given times in order, one per read; ``reads`` counts them."""

    def __init__(self, times: list[float]) -> None:
        self.times: Iterator[float] = iter(times)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return next(self.times)


def check_stopwatch(cls: type[Stopwatch]) -> None:
    """The contract on a fake clock, in closed form: start at 10, read 10.5 inside, stop at 13.25."""
    clock = FakeClock([10.0, 10.5, 13.25, 100.0])
    with cls(clock) as sw:
        assert math.isnan(sw.seconds)  # not stopped yet
        assert sw.elapsed == 0.5  # the clock read now, while the block runs
    assert sw.seconds == 13.25 - 10.0
    assert sw.elapsed == sw.seconds and clock.reads == 3  # once stopped, no more reads


def test_stopwatch_times_the_block_on_an_injected_clock() -> None:
    check_stopwatch(Stopwatch)


class ForgetsToStop(Stopwatch):
    def __exit__(self, *exc: object) -> None:
        pass


class ElapsedOnlyAtTheEnd(Stopwatch):
    @property
    def elapsed(self) -> float:
        return self.seconds


def test_the_check_fails_a_stopwatch_that_forgets_to_stop_or_cannot_read_while_running() -> None:
    for planted in (ForgetsToStop, ElapsedOnlyAtTheEnd):
        with pytest.raises(AssertionError):
            check_stopwatch(planted)


def test_start_stop_restart_and_a_block_that_raises() -> None:
    clock = FakeClock([1.0, 4.0, 10.0, 10.25, 20.0, 30.0, 37.5])
    sw = Stopwatch(clock).start()
    assert sw.stop() == 3.0 and sw.seconds == 3.0
    sw.start()  # a restart forgets the last time
    assert math.isnan(sw.seconds) and sw.elapsed == 0.25
    assert sw.stop() == 10.0
    with pytest.raises(KeyError), Stopwatch(clock) as failed:
        raise KeyError("the block failed")
    assert failed.seconds == 7.5  # still stopped, and the error goes on up


def test_a_stopwatch_never_started_says_so() -> None:
    with pytest.raises(ValueError, match="before"):
        Stopwatch().stop()
    with pytest.raises(ValueError, match="before"):
        Stopwatch().elapsed  # noqa: B018
    assert math.isnan(Stopwatch().seconds)


def test_stopwatch_on_the_real_clock_measures_a_sleep() -> None:
    with Stopwatch() as sw:
        time.sleep(0.02)
        mid = sw.elapsed
        time.sleep(0.03)
    assert 0.015 < mid < sw.seconds and 0.04 < sw.seconds < 1.0
    assert instruments.now is time.perf_counter  # the one clock


def test_call_counter_counts_sampler_calls_and_timesteps() -> None:
    counted = CallCounter(lambda x, t: torch.zeros_like(x))
    ddim_sample(counted, NoiseSchedule.linear(100), torch.randn(2, 3), steps=4, spacing="leading", clip_x0=False)
    assert counted.calls == 4
    assert counted.timesteps == [75, 50, 25, 0]  # leading spacing of 100 in 4: k·25, newest first
    counted.reset()
    assert counted.calls == 0 and counted.timesteps == []


def test_call_counter_passes_a_label_through() -> None:
    seen = []
    counted = CallCounter(lambda x, t, y: seen.append(y) or x)
    y = torch.tensor([3, 1])
    counted(torch.zeros(2, 2), torch.tensor([7, 7]), y)
    assert counted.calls == 1 and counted.timesteps == [7] and seen[0] is y


def test_a_disabled_bar_draws_nothing_and_an_enabled_one_counts_to_its_total(capsys: pytest.CaptureFixture) -> None:
    bar = progress_bar(5, "quiet bar", enabled=False)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""
    bar = progress_bar(6, "loud bar", unit="step")
    for _ in range(3):
        bar.update(2)
    assert bar.n == bar.total == 6
    bar.close()
    err = capsys.readouterr().err
    assert "loud bar" in err and "6/6" in err and "step" in err


def test_a_bar_over_an_iterable_starts_at_initial(capsys: pytest.CaptureFixture) -> None:
    bar = progress_bar(10, "resumed", unit="it", iterable=range(4, 10), initial=4)
    assert list(bar) == list(range(4, 10))
    assert bar.n == 10  # 4 done before, 6 now
    bar.close()
    assert "10/10" in capsys.readouterr().err
    assert list(progress_bar(None, "no total", enabled=False, iterable=range(3))) == [0, 1, 2]


def test_progress_moves_one_step_per_model_call_and_changes_nothing(capsys: pytest.CaptureFixture) -> None:
    model, schedule = ddim_lesson.pretrained("two-moons")
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    plain = ddim_lesson.ddim_sample(model, schedule, x_T, steps=7)
    with progress(model, total=7, desc="seven calls") as model_:
        wrapped = ddim_lesson.ddim_sample(model_, schedule, x_T, steps=7)
        assert model_.bar.n == 7 and model_.bar.total == 7  # one tick per call, counted by the bar itself
    assert torch.equal(plain, wrapped)  # the bar never touches the maths
    assert model_.bar is None  # closed with the block
    assert "seven calls" in capsys.readouterr().err


def test_progress_passes_labels_through_and_refuses_a_bad_total() -> None:
    seen = []
    with progress(lambda x, t, *y: seen.append(y) or x, total=1) as model_:
        model_(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
    assert len(seen) == 1 and torch.equal(seen[0][0], torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match="total"):
        progress(lambda x, t: x, total=0)


# --- one timer, one bar: nothing else in the package reads the clock or builds a tqdm ---

OFFENCE = re.compile(r"perf_counter\s*\(|\btqdm\s*\(|\bimport\s+tqdm\b|\bfrom\s+tqdm\b")
HOME = "store/instruments.py"


def offenders(sources: dict[str, str]) -> list[str]:
    """``path:line: text`` of each line outside the instruments module that reads ``time.perf_counter`` or
    builds or imports tqdm."""
    return [f"{path}:{i}: {line.strip()}" for path, text in sources.items() if path != HOME
            for i, line in enumerate(text.splitlines(), 1) if OFFENCE.search(line)]


def package_sources() -> dict[str, str]:
    return {p.relative_to(PKG).as_posix(): p.read_text() for p in sorted(PKG.rglob("*.py"))}


def test_the_package_has_one_timer_and_one_progress_bar() -> None:
    sources = package_sources()
    assert HOME in sources and len(sources) > 50  # the scan sees the whole package
    assert offenders(sources) == []
    assert OFFENCE.search(sources[HOME])  # and would see the one home's own reads


def test_the_scan_finds_a_planted_timer_or_bar() -> None:
    planted = {
        "evaluate/x.py": "import time\n\nt0 = time.perf_counter()\n",
        "train/y.py": "from tqdm.auto import tqdm\nbar = tqdm(range(3))\n",
        "course/z.py": "bar = tqdm (total=3)\n",
        HOME: "now = time.perf_counter()\n",  # the home itself may
    }
    found = offenders(planted)
    assert [f.split(":")[0] for f in found] == ["evaluate/x.py", "train/y.py", "train/y.py", "course/z.py"]
