"""How many CPU threads torch should use here, chosen from the cores that are idle right now.

torch's default is one thread per core. On a small machine where another program is busy (a
browser, a video call, a training run), that default oversubscribes the cores: each parallel
region waits for a thread the OS has parked, and on 2 cores with one busy process a UNet call
was measured 2-40× slower with 2 threads than with 1. With every core idle, more threads are
faster (about 1.5× with 2 on 2 cores). So the rule is: one thread per core that is idle now.

    choice = pick_threads()      # sets torch.set_num_threads and returns what and why
    print(choice.reason)

The idle cores are measured from /proc/stat over a short window (Linux); elsewhere from the
1-minute load average, else all cores are taken as idle.

A count the user set wins over the rule, in this order (the first one found applies, and the
reason says which): ``DDIM_LESSON_THREADS``; a ``torch.set_num_threads(n)`` the user called (a
count other than torch's start-up default and other than what this rule last set);
``OMP_NUM_THREADS``; ``MKL_NUM_THREADS``. Training asks for a ``steady`` choice: with nothing set
it uses 1 thread whatever the load, because float sums differ between thread counts and a run
whose count followed the load would not be reproducible bit for bit.
``benchmarks/threads.py`` measures the rule against fixed thread counts, idle and under load.

:func:`check_environment`, which every notebook runs first, prints the versions, the device and
this thread choice, and says, with the fix, what is missing: the shipped model, the shipped
images or the full Fashion-MNIST.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.checks import check_int
from ..store.data import fashion_mnist_location

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


# --------------------------------------------------------------------------------------
# What the course needs here: torch, ipywidgets, the shipped files, the dataset
# --------------------------------------------------------------------------------------
MIN_TORCH = (2, 2)


def _check_versions() -> None:
    """Fail early, with the fix, on an old torch; say where widgets come from."""
    major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    if (major, minor) < MIN_TORCH:
        raise RuntimeError(f"torch {torch.__version__} is too old: the course needs torch >= 2.2. Fix: "
                           "`pip install -U 'torch>=2.2' torchvision` in this environment, or `make clean-venv lab`.")
    try:
        import ipywidgets

        print(f"ipywidgets {ipywidgets.__version__}: sliders need JupyterLab from this environment (`make lab`); "
              "if you see text like VBox(...) instead of sliders, see README > Troubleshooting")
    except ImportError:
        raise RuntimeError("ipywidgets is missing: `pip install -e .` in the course repository") from None


def check_environment(need: tuple[str, ...] = ()) -> dict[str, Any]:
    """Print what this notebook runs on, and raise RuntimeError, with the fix, if a needed item is missing.

    ``need`` may hold "weights" (the shipped Fashion-MNIST model), "samples" (the shipped
    images) and "dataset" (the full Fashion-MNIST). Returns what it found, as a dict.
    """
    from ..store.assets import SAMPLES_FILE
    from ..store.pretrained import WEIGHTS_DIR

    allowed = ("weights", "samples", "dataset")
    for item in need:
        if item not in allowed:
            raise ValueError(f"unknown requirement {item!r}; allowed: {', '.join(allowed)}")
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    weights = WEIGHTS_DIR / "fashion-mnist.safetensors"
    threads = pick_threads()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cpu_threads": threads.threads,
        "threads_reason": threads.reason,
        "weights": weights if weights.exists() and weights.with_suffix(".json").exists() else None,
        "samples": SAMPLES_FILE if SAMPLES_FILE.exists() else None,
        "dataset": fashion_mnist_location(),
    }
    fixes = {
        "weights": f"the shipped model is missing from {WEIGHTS_DIR}. Reinstall the package from the course "
        "repository (`pip install -e .` in its root), or retrain it: see the model card in ddim_lesson/weights/.",
        "samples": f"the shipped sample images are missing ({SAMPLES_FILE}). Reinstall the package from the course "
        "repository (`pip install -e .`).",
        "dataset": "Fashion-MNIST was not found. Set DDIM_LESSON_DATA to a folder with its four IDX .gz files, or "
        "on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`. Only the optional cells need it.",
    }
    print(f"python {info['python']}, torch {info['torch']}, device: {device}")
    print(f"torch uses {threads.reason}")
    _check_versions()
    for key, label in (("weights", "shipped model"), ("samples", "shipped sample images"),
                       ("dataset", "full Fashion-MNIST")):
        status = f"found ({info[key]})" if info[key] is not None else f"MISSING: {fixes[key]}"
        print(f"{label:22s} {status}")
    missing = [k for k in need if info[k] is None]
    if missing:
        raise RuntimeError("This notebook needs: " + " ".join(fixes[k] for k in missing))
    return info
