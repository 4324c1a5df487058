"""The thread rule: one torch thread per idle core, measured from the machine as it is now."""

from __future__ import annotations

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
