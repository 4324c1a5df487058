"""The thread rule (store.device, beside the device): one torch thread per idle core, measured from the machine as
it is now; the user's setting wins (DDIM_LESSON_THREADS, torch.set_num_threads, OMP_NUM_THREADS, MKL_NUM_THREADS,
in that order); the rule chooses only when nothing is set, and the reason says which applied."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch

from ddim_lesson.store import device  # the thread rule lives beside the device


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No user setting in the environment, torch at its start-up count; torch's count restored afterwards."""
    for var in device.USER_VARS:
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(device.torch_default_threads())
    monkeypatch.setattr(device, "_applied", None)
    yield monkeypatch
    torch.set_num_threads(before)


def _fresh_torch_threads(**extra: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in device.USER_VARS} | extra
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=environ,
                         capture_output=True, text=True, check=True, timeout=120)
    return int(out.stdout.strip())


def test_torch_default_is_known_without_starting_torch_anew() -> None:
    """The start-up count env computes is the one a fresh torch has (else a user's call could not be told)."""
    assert device.torch_default_threads() == _fresh_torch_threads()  # nothing set
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        assert device.torch_default_threads() == 1 == _fresh_torch_threads(OMP_NUM_THREADS="1")
    finally:
        del os.environ["OMP_NUM_THREADS"]


def test_nothing_set_the_load_rule_chooses_and_says_so(clean: pytest.MonkeyPatch) -> None:
    choice = device.pick_threads(window_s=0.05)
    assert "the load rule (nothing set)" in choice.reason and "idle" in choice.reason
    assert torch.get_num_threads() == choice.threads == device.threads_for(choice.idle_cores, choice.cores)
    # what the rule set is not mistaken for the user's: a second call chooses again, from the load
    assert "the load rule" in device.pick_threads(window_s=0.05).reason


def test_training_rule_is_one_thread_whatever_the_load(clean: pytest.MonkeyPatch) -> None:
    clean.setattr(device, "idle_cores", lambda window_s=0.0: (float(device.available_cores()), "patched: all idle"))
    assert device.pick_threads(apply=False).threads == device.available_cores()  # the load rule would use every core
    choice = device.pick_threads(steady=True)
    assert choice.threads == 1 == torch.get_num_threads() and "reproducible bit for bit" in choice.reason


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "MKL_NUM_THREADS", device.ENV_VAR])
def test_each_variable_wins_over_the_rule(clean: pytest.MonkeyPatch, var: str) -> None:
    clean.setenv(var, "1")
    torch.set_num_threads(device.torch_default_threads())  # as a process started with the variable set
    clean.setattr(device, "idle_cores", lambda window_s=0.0: (2.0, "patched"))
    for steady in (False, True):
        choice = device.pick_threads(steady=steady)
        assert choice.threads == 1 == torch.get_num_threads()
        assert choice.reason == f"1 thread(s): set by {var}"


def test_the_order_between_settings(clean: pytest.MonkeyPatch) -> None:
    """DDIM_LESSON_THREADS > torch.set_num_threads > OMP_NUM_THREADS > MKL_NUM_THREADS (each removed in turn)."""
    cores = device.available_cores()
    other = 1 if device.torch_default_threads() != 1 else 2  # a count torch would not start with
    if other > cores and other != 1:
        pytest.skip("needs a count other than torch's default that fits this machine")
    clean.setenv("MKL_NUM_THREADS", "3")
    clean.setenv("OMP_NUM_THREADS", "4")
    torch.set_num_threads(other)
    clean.setenv(device.ENV_VAR, "1")
    assert device.pick_threads(apply=False).reason.endswith(f"set by {device.ENV_VAR}")
    clean.delenv(device.ENV_VAR)
    choice = device.pick_threads(apply=False)
    assert choice.threads == other and "torch.set_num_threads" in choice.reason
    torch.set_num_threads(device.torch_default_threads())
    choice = device.pick_threads(apply=False)
    assert choice.threads == 4 and "OMP_NUM_THREADS" in choice.reason
    clean.delenv("OMP_NUM_THREADS")
    choice = device.pick_threads(apply=False)
    assert choice.threads == 3 and "MKL_NUM_THREADS" in choice.reason


def test_a_user_call_after_the_rule_is_kept(clean: pytest.MonkeyPatch) -> None:
    clean.setattr(device, "idle_cores", lambda window_s=0.0: (float(device.available_cores()), "patched"))
    first = device.pick_threads()
    mine = 1 if first.threads != 1 else 3
    torch.set_num_threads(mine)
    if mine == device.torch_default_threads():
        pytest.skip("the user's count equals torch's default here")
    assert device.pick_threads().threads == mine == torch.get_num_threads()


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_omp_value_is_named(clean: pytest.MonkeyPatch, bad: str) -> None:
    clean.setenv("OMP_NUM_THREADS", bad)
    with pytest.raises(ValueError, match=r"OMP_NUM_THREADS.*>= 1.*OMP_NUM_THREADS="):
        device.pick_threads(apply=False)


def test_omp_list_form_takes_the_outer_count(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("OMP_NUM_THREADS", "1,4")
    torch.set_num_threads(device.torch_default_threads())
    assert device.pick_threads(apply=False).threads == 1


# -- the load rule: one torch thread per idle core, measured from the machine as it is now ----------
@pytest.mark.parametrize(("idle", "cores", "want"), [
    (2.0, 2, 2), (1.9, 2, 2), (1.8, 2, 2), (1.7, 2, 1), (1.0, 2, 1), (0.2, 2, 1), (0.0, 2, 1),
    (7.9, 8, 8), (5.5, 8, 5), (3.0, 4, 3), (9.0, 4, 4),
])  # fmt: skip
def test_one_thread_per_idle_core(idle: float, cores: int, want: int) -> None:
    assert device.threads_for(idle, cores) == want


def _old_reason(idle: float, cores: int) -> str:  # the planted bug: busy cores taken as cores - threads
    n = device.threads_for(idle, cores)
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
    reason = device.load_rule_reason(idle, cores, "x")
    assert _reason_is_true(reason, idle, cores), reason
    if idle + 0.25 < 1 < cores:  # nothing counts as idle: the planted bug says one core fewer is busy
        assert not _reason_is_true(_old_reason(idle, cores), idle, cores)


def test_pick_threads_says_all_busy_when_nothing_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in device.USER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(device, "idle_cores", lambda window_s=0.0: (0.0, "patched: nothing idle"))
    monkeypatch.setattr(device, "available_cores", lambda: 2)
    monkeypatch.setattr(device, "user_threads", lambda: None)
    choice = device.pick_threads(apply=False)
    assert choice.threads == 1 and "all 2 core(s) are busy" in choice.reason, choice.reason
    assert "1 of 2 core(s) are busy" not in choice.reason


def test_pick_threads_sets_torch_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in device.USER_VARS:  # nothing set by the user: the load rule chooses
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(device.torch_default_threads())
        choice = device.pick_threads(window_s=0.05)
        assert torch.get_num_threads() == choice.threads
        assert 1 <= choice.threads <= choice.cores == device.available_cores()
        assert 0.0 <= choice.idle_cores <= choice.cores
        assert f"{choice.threads} of {choice.cores}" in choice.reason and "idle" in choice.reason
    finally:
        torch.set_num_threads(before)


def test_a_busy_core_is_seen() -> None:
    """A process spinning on one core lowers the measured idle cores by about one."""
    if device.available_cores() < 2:
        pytest.skip("needs 2 cores")
    quiet, _ = device.idle_cores(0.3)
    if quiet < 1.3:
        pytest.skip(f"only {quiet:.1f} cores idle: too busy to see one more busy core")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy, _ = device.idle_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy < quiet - 0.5, (quiet, busy)


def test_override_and_its_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(device.ENV_VAR, "1")
    assert device.pick_threads(apply=False).threads == 1
    for bad in ("0", "-1", str(device.available_cores() + 1)):
        monkeypatch.setenv(device.ENV_VAR, bad)
        with pytest.raises(ValueError, match=device.ENV_VAR):
            device.pick_threads(apply=False)
