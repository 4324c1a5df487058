"""How many CPU threads torch should use here, chosen from the cores that are idle right now.

torch's default is one thread per core. On a small machine where another program is busy (a
browser, a video call, a training run), that default oversubscribes the cores: each parallel
region waits for a thread the OS has parked, and on 2 cores with one busy process a UNet call
was measured 2-40× slower with 2 threads than with 1. With every core idle, more threads are
faster (about 1.5× with 2 on 2 cores). So the rule is: one thread per core that is idle now.

    choice = pick_threads()      # sets torch.set_num_threads and returns what and why
    print(choice.reason)

The idle cores are measured from /proc/stat over a short window (Linux); elsewhere from the
1-minute load average, else all cores are taken as idle. ``DDIM_LESSON_THREADS`` overrides it.
``benchmarks/threads.py`` measures the rule against fixed thread counts, idle and under load.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .checks import check_int

ENV_VAR = "DDIM_LESSON_THREADS"
WINDOW_S = 0.25  # how long /proc/stat is watched; long enough to see a busy core, short enough to go unnoticed


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count picked, the cores it was picked from, and why."""

    threads: int
    cores: int
    idle_cores: float
    reason: str


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def idle_cores(window_s: float = WINDOW_S) -> tuple[float, str]:
    """How many cores were idle over the last ``window_s`` seconds, and how that was measured."""
    cores = available_cores()
    stat = Path("/proc/stat")
    if stat.exists():
        a = _cpu_times(stat)
        time.sleep(window_s)
        b = _cpu_times(stat)
        busy, total = b[0] - a[0], b[1] - a[1]
        if total > 0:
            n_all = os.cpu_count() or cores
            return min(cores, n_all * (1 - busy / total)), f"/proc/stat over {window_s:.2f} s"
    if hasattr(os, "getloadavg"):
        return max(0.0, cores - os.getloadavg()[0]), "the 1-minute load average"
    return float(cores), "no load information on this OS"


def threads_for(idle: float, cores: int) -> int:
    """One thread per idle core, never fewer than 1 nor more than ``cores``.

    A core counts as idle when at least 3/4 of it is free, so a half-busy second core does not
    tempt torch into a second thread that the OS will keep parking.
    """
    return max(1, min(cores, math.floor(idle + 0.25)))


def pick_threads(apply: bool = True, window_s: float = WINDOW_S) -> ThreadChoice:
    """Choose torch's CPU thread count for this machine as it is now; set it unless ``apply`` is False."""
    cores = available_cores()
    override = os.environ.get(ENV_VAR)
    if override:
        try:
            n = check_int(ENV_VAR, int(override), 1, cores)
        except ValueError as e:
            raise ValueError(f"{e} (from the environment variable {ENV_VAR}={override!r})") from None
        choice = ThreadChoice(n, cores, float("nan"), f"{n} thread(s): set by {ENV_VAR}")
    else:
        idle, how = idle_cores(window_s)
        n = threads_for(idle, cores)
        why = ("every core is idle" if n == cores else
               f"{cores - n} of {cores} core(s) are busy with other programs, and extra threads would wait for them")
        choice = ThreadChoice(n, cores, idle, f"{n} of {cores} CPU thread(s): {idle:.1f} core(s) idle ({how}); {why}")
    if apply:
        torch.set_num_threads(choice.threads)
    return choice


def _cpu_times(stat: Path) -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from the first line of /proc/stat."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total
