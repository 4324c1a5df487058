"""The thread rule: one torch thread per idle core, measured from the machine as it is now."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
import torch

from ddim_lesson.course import env
from ddim_lesson.course.measure import timed


@pytest.mark.parametrize(("idle", "cores", "want"), [
    (2.0, 2, 2), (1.9, 2, 2), (1.8, 2, 2), (1.7, 2, 1), (1.0, 2, 1), (0.2, 2, 1), (0.0, 2, 1),
    (7.9, 8, 8), (5.5, 8, 5), (3.0, 4, 3), (9.0, 4, 4),
])  # fmt: skip
def test_one_thread_per_idle_core(idle: float, cores: int, want: int) -> None:
    assert env.threads_for(idle, cores) == want


def _old_reason(idle: float, cores: int) -> str:  # the planted bug: busy cores taken as cores - threads
    n = env.threads_for(idle, cores)
    why = "every core is idle" if n == cores else f"{cores - n} of {cores} core(s) are busy with other programs"
    return f"{n} of {cores} CPU thread(s): the load rule (nothing set), {idle:.1f} core(s) idle (x); {why}"


def _reason_is_true(reason: str, idle: float, cores: int) -> bool:
    """The numbers a reason states agree with each other: threads = cores counted idle (at least 1), busy cores =
    cores counted busy, where a core counts as idle when at least 3/4 of it is free (so 0.0 idle: all busy)."""
    import re

    free = min(cores, math.floor(idle + 0.25))
    m = re.match(r"(\d+) of (\d+) CPU thread\(s\).*?, ([\d.]+) core\(s\) idle", reason)
    if m is None or (int(m[1]), int(m[2]), float(m[3])) != (max(1, free), cores, round(idle, 1)):
        return False
    if free == cores:
        return "every core" in reason and "busy" not in reason
    said = re.search(r"(all (\d+)|(\d+) of (\d+)) core\(s\) are busy", reason)
    return said is not None and int(said[2] or said[3]) == cores - free and (said[2] is None) == (free > 0)


@pytest.mark.parametrize(("idle", "cores"), [
    (0.0, 2), (0.3, 2), (0.74, 2), (0.8, 2), (1.0, 2), (1.7, 2), (1.8, 2), (2.0, 2),
    (0.0, 1), (0.9, 1), (0.0, 8), (3.3, 8), (7.9, 8),
])  # fmt: skip
def test_the_load_rule_reason_reads_true(idle: float, cores: int) -> None:
    """Notebook 01 printed "0.0 core(s) idle ... 1 of 2 core(s) are busy": with nothing idle, all are busy."""
    reason = env.load_rule_reason(idle, cores, "x")
    assert _reason_is_true(reason, idle, cores), reason
    if idle + 0.25 < 1 < cores:  # nothing counts as idle: the planted bug says one core fewer is busy
        assert not _reason_is_true(_old_reason(idle, cores), idle, cores)


def test_pick_threads_says_all_busy_when_nothing_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in env.USER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(env, "idle_cores", lambda window_s=0.0: (0.0, "patched: nothing idle"))
    monkeypatch.setattr(env, "available_cores", lambda: 2)
    monkeypatch.setattr(env, "user_threads", lambda: None)
    choice = env.pick_threads(apply=False)
    assert choice.threads == 1 and "all 2 core(s) are busy" in choice.reason, choice.reason
    assert "1 of 2 core(s) are busy" not in choice.reason


def test_pick_threads_sets_torch_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in env.USER_VARS:  # nothing set by the user: the load rule chooses
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(env.torch_default_threads())
        choice = env.pick_threads(window_s=0.05)
        assert torch.get_num_threads() == choice.threads
        assert 1 <= choice.threads <= choice.cores == env.available_cores()
        assert 0.0 <= choice.idle_cores <= choice.cores
        assert f"{choice.threads} of {choice.cores}" in choice.reason and "idle" in choice.reason
    finally:
        torch.set_num_threads(before)


def test_a_busy_core_is_seen() -> None:
    """A process spinning on one core lowers the measured idle cores by about one."""
    if env.available_cores() < 2:
        pytest.skip("needs 2 cores")
    quiet, _ = env.idle_cores(0.3)
    if quiet < 1.3:
        pytest.skip(f"only {quiet:.1f} cores idle: too busy to see one more busy core")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy, _ = env.idle_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy < quiet - 0.5, (quiet, busy)


def test_override_and_its_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.ENV_VAR, "1")
    assert env.pick_threads(apply=False).threads == 1
    for bad in ("0", "-1", str(env.available_cores() + 1)):
        monkeypatch.setenv(env.ENV_VAR, bad)
        with pytest.raises(ValueError, match=env.ENV_VAR):
            env.pick_threads(apply=False)


def test_timed_is_a_median_of_repeats() -> None:
    calls = []
    t = timed(lambda: calls.append(time.sleep(0.002)), repeats=5, warmup=2)
    assert len(calls) == 7 and len(t.runs_ms) == 5
    assert t.median_ms == sorted(t.runs_ms)[2] and t.median_ms >= 2.0
    assert t.per_call(4) == pytest.approx(t.median_ms / 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="repeats"):
            timed(lambda: None, repeats=bad)
