"""Which device to run on, how many CPU threads torch uses there, and a description of the machine a result
was measured on: the one place for all three (training, the command line, the tables, the benchmarks and the
notebooks all ask here). The command line also bounds cuda:N by the GPUs present (cli.errors.check_cuda_index).

The thread rule. torch's default is one thread per core. On a small machine where another program is busy
(a browser, a video call, a training run), that default oversubscribes the cores: each parallel region waits
for a thread the OS has parked, and on 2 cores with one busy process a UNet call was measured 3.8x slower
with 2 threads than with 1 (benchmarks/results/threads.md). With every core idle, more threads are faster
(1.4x with 2 on 2 cores: 12.2 ms against 8.5 ms, threads.md).
So the rule is: one thread per core that is idle now, measured from /proc/stat over a short window (Linux);
elsewhere from the 1-minute load average, else all cores are taken as idle.

    choice = pick_threads()      # sets torch.set_num_threads and returns what and why
    announce_threads(choice)     # the one announcement: "torch uses <reason>", on stderr

A count the user set wins over the rule, in this order (the first one found applies, and the reason says
which): ``DDIM_LESSON_THREADS``; a ``torch.set_num_threads(n)`` the user called (a count other than torch's
start-up default and other than what this rule last set); ``OMP_NUM_THREADS``; ``MKL_NUM_THREADS``. Training
asks for a ``steady`` choice: with nothing set it uses 1 thread whatever the load, because float sums differ
between thread counts and a run whose count followed the load would not be reproducible bit for bit.
``benchmarks/threads.py`` measures the rule against fixed thread counts, idle and under load.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.checks import check_int

ALLOWED = "auto, cpu, cuda, cuda:N, mps"


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU, unless a device is named. Under torchrun, "auto" and "cuda"
    mean this process's GPU, cuda:$LOCAL_RANK."""
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; allowed: {ALLOWED}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; allowed here: auto, cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} requested but MPS is not available; allowed here: auto, cpu")
        if dev.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unsupported device {name!r}; allowed: {ALLOWED}")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def machine() -> dict[str, Any]:
    """Where a result was measured."""
    dev = {"cuda": torch.cuda.get_device_name()} if torch.cuda.is_available() else {}
    load = {"load_avg_1min": round(os.getloadavg()[0], 2)} if hasattr(os, "getloadavg") else {}  # shared CPU?
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), **dev, **load}


# --------------------------------------------------------------------------------------
# The thread rule: one torch thread per idle core, unless the user set a count
# --------------------------------------------------------------------------------------
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


def load_rule_reason(idle: float, cores: int, how: str) -> str:
    """Why the load rule picked :func:`threads_for` (idle, cores): the idle cores measured, and how many cores
    that leaves busy. Every case reads true: no core idle says all are busy (and 1 thread is the least there is)."""
    n = threads_for(idle, cores)
    busy = cores - min(cores, math.floor(idle + 0.25))  # cores with more than 1/4 of their time taken
    if busy == 0:
        why = "every core counts as idle (3/4 free or more), so each gets a thread"
    elif busy == cores:
        why = (f"all {cores} core(s) are busy with other programs, so torch gets 1 thread, the fewest it can run "
               "with")
    else:
        why = (f"{busy} of {cores} core(s) are busy with other programs, and extra threads would wait for them")
    return f"{n} of {cores} CPU thread(s): the load rule (nothing set), {idle:.1f} core(s) idle ({how}); {why}"


USER_VARS = (ENV_VAR, "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # the order in which a user's setting wins
_applied: int | None = None  # the count pick_threads last set (so that it is not mistaken for the user's)


def physical_cores() -> int:
    """Physical cores (hyper-threads of one core counted once) from /sys, else ``os.cpu_count()``."""
    seen = set()
    for topo in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            seen.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            continue
    return len(seen) or os.cpu_count() or 1


def torch_default_threads() -> int:
    """The count torch starts with here: one per physical core it may run on, or the OMP/MKL value (capped so)."""
    n = min(physical_cores(), available_cores())
    for var in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):  # torch reads OMP, then lets MKL override it
        v = _env_count(var, strict=False)
        if v is not None:
            n = min(v, n) if n else v
    return max(1, n)


def user_threads() -> tuple[int, str] | None:
    """The thread count the user set, and where, in the order the user's settings win; None if none is set."""
    n = _env_count(ENV_VAR)
    if n is not None:
        return n, f"set by {ENV_VAR}"
    now = torch.get_num_threads()
    if now != _applied and now != torch_default_threads():
        return now, "set by torch.set_num_threads (kept: the user's setting wins over the rule)"
    for var in USER_VARS[1:]:
        n = _env_count(var)
        if n is not None:
            return n, f"set by {var}"
    return None


def pick_threads(apply: bool = True, window_s: float = WINDOW_S, steady: bool = False) -> ThreadChoice:
    """Choose torch's CPU thread count; set it unless ``apply`` is False. The reason says which rule applied.

    The user's setting wins (:func:`user_threads`). Else with ``steady`` (training) 1 thread, whatever
    the load, so that the run's bits do not depend on it; else one thread per core idle now.
    """
    global _applied
    cores = available_cores()
    user = user_threads()
    if user is not None:
        n, where = user
        more = f" (more than the {cores} core(s) this process may use)" if n > cores else ""
        choice = ThreadChoice(n, cores, float("nan"), f"{n} thread(s): {where}{more}")
    elif steady:
        choice = ThreadChoice(1, cores, float("nan"), f"1 of {cores} CPU thread(s): the training rule (nothing "
                              f"set), whatever the load, so the run is reproducible bit for bit; set {ENV_VAR} "
                              "or OMP_NUM_THREADS to use more")
    else:
        idle, how = idle_cores(window_s)
        n = threads_for(idle, cores)
        choice = ThreadChoice(n, cores, idle, load_rule_reason(idle, cores, how))
    if apply:
        torch.set_num_threads(choice.threads)
        _applied = choice.threads
    return choice


def _env_count(var: str, strict: bool = True) -> int | None:
    """The positive thread count in the environment variable ``var`` (OMP's "4,2" form: its first number);
    None if unset or empty. A bad value is a ValueError naming the variable (with ``strict``), else None."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    hi = available_cores() if var == ENV_VAR else None
    try:
        return check_int(var, int(raw.split(",")[0]), 1, hi)
    except ValueError as e:
        if not strict:
            return None
        msg = str(e) if "must be" in str(e) else f"{var} must be an integer >= 1"
        raise ValueError(f"{msg} (from the environment variable {var}={raw!r})") from None


def _cpu_times(stat: Path) -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from the first line of /proc/stat."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


ANNOUNCEMENT = "torch uses {reason}"  # the one format of the one announcement


def thread_line(choice: ThreadChoice | str) -> str:
    """The one wording of a thread choice (a :class:`ThreadChoice`, or a reason): ``torch uses <reason>``."""
    return ANNOUNCEMENT.format(reason=choice.reason if isinstance(choice, ThreadChoice) else choice)


def announce_threads(choice: ThreadChoice | str) -> None:
    """Say which thread count torch uses and why, as the one line :func:`thread_line` on stderr, so that stdout
    stays machine-readable. Every command-line front-end (the CLI's commands, the benchmark scripts, the GPU run)
    says it here, once. The notebooks' ``check_environment`` prints the same line in its report on stdout instead:
    JupyterLab paints stderr red, and a learner should not read an error where there is none."""
    print(thread_line(choice), file=sys.stderr, flush=True)
