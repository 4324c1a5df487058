"""How two pieces of work are compared on a noisy machine: time(A) / time(B), A and B interleaved.

Each round runs A then B (even rounds) or B then A (odd rounds), so a slow drift of a shared machine,
or a cache warmed by whichever runs first, falls on both sides; the ratio kept is the median of the
per-round ratios, so one round hit by another job does not move it. Both the wall clock and this
process's CPU clock are read: the wall clock is what a user waits, the CPU clock what the work costs
without the time spent waiting for a core.

    r = interleaved_ratio("overhead", sampler_run, bare_calls_run, rounds=11)
    r.median, r.median_cpu, r.summary()

A run much shorter than the machine's jitter (a 2-D MLP sampler takes 60 ms) is timed in blocks:
``matched_blocks`` repeats A and B the same number of times, enough for one block of B to last ``min_seconds``.

Nothing here knows about models: A and B are any callables without arguments.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.checks import check_int
from ..store.instruments import Clock, now


@dataclass
class Ratio:
    """time(A) / time(B) per round and their median, on the wall clock and on this process's CPU clock."""

    name: str
    median: float  # wall clock
    ratios: list[float] = field(default_factory=list)
    a_s: list[float] = field(default_factory=list)  # wall seconds of A per round
    b_s: list[float] = field(default_factory=list)
    median_cpu: float = float("nan")  # CPU time of this process: what the work costs, without the waits
    ratios_cpu: list[float] = field(default_factory=list)  # on a machine shared with other jobs

    def summary(self) -> str:
        """One line: the median, the spread of the rounds, A's and B's median seconds, the CPU-time ratio."""
        spread = f"[{min(self.ratios):.3f} .. {max(self.ratios):.3f}]"
        return (f"{self.median:.3f}  (wall; rounds {spread}; A {statistics.median(self.a_s):.3f} s, "
                f"B {statistics.median(self.b_s):.3f} s; CPU-time ratio {self.median_cpu:.3f})")


def interleaved_ratio(
    name: str,
    a: Callable[[], object],
    b: Callable[[], object],
    rounds: int = 5,
    warmup: int = 1,
    timer: Clock = now,
    cpu_timer: Clock = time.process_time,
) -> Ratio:
    """Time A and B in the same rounds, A first in even rounds and B first in odd ones; median of time(A)/time(B).

    ``warmup`` untimed runs of A then B come first. ``timer`` and ``cpu_timer`` are the clocks (seconds);
    a test passes a fake one. A round whose B took no CPU time has a NaN CPU ratio.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got rounds={rounds}, warmup={warmup}")
    for _ in range(warmup):
        a()
        b()
    out = Ratio(name, float("nan"))
    for r in range(rounds):
        wall, cpu = {}, {}
        for key in ("ab" if r % 2 == 0 else "ba"):
            fn = a if key == "a" else b
            t0, c0 = timer(), cpu_timer()
            fn()
            wall[key], cpu[key] = timer() - t0, cpu_timer() - c0
        out.a_s.append(wall["a"])
        out.b_s.append(wall["b"])
        out.ratios.append(wall["a"] / wall["b"])
        out.ratios_cpu.append(cpu["a"] / cpu["b"] if cpu["b"] > 0 else float("nan"))
    out.median = statistics.median(out.ratios)
    out.median_cpu = statistics.median(out.ratios_cpu)
    return out


def repeated(fn: Callable[[], object], times: int) -> Callable[[], list[object]]:
    """``fn`` run ``times`` times per call: a block long enough to time when one run is too short."""
    times = check_int("times", times, 1)
    return lambda: [fn() for _ in range(times)]


def matched_blocks(a: Callable[[], object], b: Callable[[], object], min_seconds: float,
                   timer: Clock = now) -> tuple[Callable[[], object], Callable[[], object], int]:
    """A and B each repeated ``reps`` times per call, ``reps`` the fewest runs of B that last ``min_seconds``
    (B timed once, after one untimed run); returns (A block, B block, reps). Same reps on both sides, so
    time(A block) / time(B block) is still time(A) / time(B)."""
    if not (math.isfinite(min_seconds) and min_seconds >= 0):
        raise ValueError(f"min_seconds must be a finite number >= 0, got {min_seconds}")
    b()
    t0 = timer()
    b()
    once = timer() - t0
    reps = max(1, math.ceil(min_seconds / once)) if once > 0 else 1
    return repeated(a, reps), repeated(b, reps), reps
