"""evaluate/timing.py: the interleaved A/B ratio (with a fake clock, and with work of known cost)."""

from __future__ import annotations

import math

import pytest

from ddim_lesson.evaluate.timing import Ratio, interleaved_ratio, matched_blocks, repeated


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def task(self, name: str, durations: list[float]):
        it = iter(durations)

        def run() -> None:
            self.log.append(name)
            self.now += next(it)

        return run


def test_interleaved_ratio_is_the_median_of_per_round_ratios_and_alternates_the_order():
    clock = FakeClock()
    # warmup, then 5 rounds; round 2 of A is an outlier (a busy machine) that the median ignores
    a = clock.task("a", [100.0, 2.0, 2.2, 50.0, 1.8, 2.0])
    b = clock.task("b", [100.0, 1.0, 1.0, 1.0, 1.0, 0.8])
    r = interleaved_ratio("x", a, b, rounds=5, warmup=1, timer=clock, cpu_timer=clock)
    assert r.ratios == pytest.approx([2.0, 2.2, 50.0, 1.8, 2.5])
    assert r.median == pytest.approx(2.2)
    assert r.ratios_cpu == pytest.approx(r.ratios) and r.median_cpu == pytest.approx(2.2)
    assert r.a_s == pytest.approx([2.0, 2.2, 50.0, 1.8, 2.0])
    assert clock.log == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]


def test_interleaved_ratio_rejects_zero_rounds():
    with pytest.raises(ValueError, match="rounds"):
        interleaved_ratio("x", lambda: None, lambda: None, rounds=0)


def test_interleaved_ratio_rejects_a_negative_warmup():
    with pytest.raises(ValueError, match="warmup=-1"):
        interleaved_ratio("x", lambda: None, lambda: None, rounds=1, warmup=-1)


def test_an_even_number_of_rounds_takes_the_mean_of_the_middle_two_and_warmup_is_not_timed():
    clock = FakeClock()
    a = clock.task("a", [1000.0, 3.0, 3.0, 3.0, 3.0])
    b = clock.task("b", [1000.0, 1.0, 2.0, 3.0, 6.0])
    r = interleaved_ratio("x", a, b, rounds=4, warmup=1, timer=clock, cpu_timer=clock)
    assert r.ratios == pytest.approx([3.0, 1.5, 1.0, 0.5])
    assert r.median == pytest.approx((1.5 + 1.0) / 2)
    assert r.b_s == pytest.approx([1.0, 2.0, 3.0, 6.0])  # the 1000 s warmup is in no round


def test_the_cpu_ratio_leaves_out_the_time_spent_waiting_for_a_core():
    wall, cpu = FakeClock(), FakeClock()

    def a() -> None:  # A works 2 s and waits 6 s for a core (another job held it)
        cpu.now += 2.0
        wall.now += 8.0

    def b() -> None:  # B works 1 s and never waits
        cpu.now += 1.0
        wall.now += 1.0

    r = interleaved_ratio("x", a, b, rounds=3, warmup=0, timer=wall, cpu_timer=cpu)
    assert r.median == pytest.approx(8.0) and r.median_cpu == pytest.approx(2.0)


def test_a_round_where_b_took_no_cpu_time_has_a_nan_cpu_ratio():
    wall = FakeClock()
    r = interleaved_ratio("x", wall.task("a", [2.0]), wall.task("b", [1.0]), rounds=1, warmup=0, timer=wall,
                          cpu_timer=lambda: 0.0)
    assert r.median == pytest.approx(2.0) and math.isnan(r.median_cpu)


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_work_of_known_cost_gives_its_ratio_on_the_cpu_clock():
    # A does 4× B's work; the process's CPU time does not count other jobs' turns on the cores
    r = interleaved_ratio("spin", lambda: _spin(400_000), lambda: _spin(100_000), rounds=5, warmup=1)
    assert 2.5 < r.median_cpu < 6.0, r.ratios_cpu
    assert r.median > 1.5, r.ratios  # the wall clock agrees on which is slower
    swapped = interleaved_ratio("spin", lambda: _spin(100_000), lambda: _spin(400_000), rounds=5, warmup=1)
    assert 1 / 6.0 < swapped.median_cpu < 1 / 2.5, swapped.ratios_cpu


def test_repeated_runs_the_work_that_many_times_and_refuses_zero():
    calls = []
    block = repeated(lambda: calls.append(1), 3)
    block()
    block()
    assert len(calls) == 6
    with pytest.raises(ValueError, match="times must be an integer >= 1, got 0"):
        repeated(lambda: None, 0)


def test_summary_gives_the_median_the_spread_and_both_sides():
    r = Ratio("x", 1.5, ratios=[1.0, 1.5, 2.0], a_s=[1.0, 3.0, 4.0], b_s=[1.0, 2.0, 2.0], median_cpu=1.25)
    assert r.summary() == ("1.500  (wall; rounds [1.000 .. 2.000]; A 3.000 s, B 2.000 s; "
                           "CPU-time ratio 1.250)")


def test_matched_blocks_repeat_both_sides_until_a_block_of_b_lasts_min_seconds():
    clock = FakeClock()
    a = clock.task("a", [0.03] * 100)
    b = clock.task("b", [0.5, 0.06] + [0.06] * 100)  # an untimed first run (cold), then 60 ms a run
    block_a, block_b, reps = matched_blocks(a, b, 0.5, timer=clock)
    assert reps == 9 and clock.log == ["b", "b"]  # ceil(0.5 / 0.06): the cold run is not what is timed
    t0 = clock.now
    block_b()
    assert clock.now - t0 == pytest.approx(9 * 0.06) and clock.log.count("b") == 11
    block_a()
    assert clock.log.count("a") == 9  # the same count on both sides, so the ratio is still time(A)/time(B)


def test_matched_blocks_keep_one_run_when_it_is_long_enough_and_refuse_a_bad_length():
    clock = FakeClock()
    assert matched_blocks(clock.task("a", [2.0] * 3), clock.task("b", [2.0] * 3), 0.5, timer=clock)[2] == 1
    assert matched_blocks(lambda: None, lambda: None, 0.0)[2] == 1
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_seconds must be a finite number >= 0"):
            matched_blocks(lambda: None, lambda: None, bad)
