"""The thread rule's order: the user's setting wins (DDIM_LESSON_THREADS, torch.set_num_threads, OMP_NUM_THREADS,
MKL_NUM_THREADS, in that order); the rule chooses only when nothing is set, and the reason says which applied."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from ddim_lesson.course import env


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No user setting in the environment, torch at its start-up count; torch's count restored afterwards."""
    for var in env.USER_VARS:
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(env.torch_default_threads())
    monkeypatch.setattr(env, "_applied", None)
    yield monkeypatch
    torch.set_num_threads(before)


def _fresh_torch_threads(**extra: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in env.USER_VARS} | extra
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=environ,
                         capture_output=True, text=True, check=True, timeout=120)
    return int(out.stdout.strip())


def test_torch_default_is_known_without_starting_torch_anew() -> None:
    """The start-up count env computes is the one a fresh torch has (else a user's call could not be told)."""
    assert env.torch_default_threads() == _fresh_torch_threads()  # nothing set
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        assert env.torch_default_threads() == 1 == _fresh_torch_threads(OMP_NUM_THREADS="1")
    finally:
        del os.environ["OMP_NUM_THREADS"]


def test_nothing_set_the_load_rule_chooses_and_says_so(clean: pytest.MonkeyPatch) -> None:
    choice = env.pick_threads(window_s=0.05)
    assert "the load rule (nothing set)" in choice.reason and "idle" in choice.reason
    assert torch.get_num_threads() == choice.threads == env.threads_for(choice.idle_cores, choice.cores)
    # what the rule set is not mistaken for the user's: a second call chooses again, from the load
    assert "the load rule" in env.pick_threads(window_s=0.05).reason


def test_training_rule_is_one_thread_whatever_the_load(clean: pytest.MonkeyPatch) -> None:
    clean.setattr(env, "idle_cores", lambda window_s=0.0: (float(env.available_cores()), "patched: all idle"))
    assert env.pick_threads(apply=False).threads == env.available_cores()  # the load rule would use every core
    choice = env.pick_threads(steady=True)
    assert choice.threads == 1 == torch.get_num_threads() and "reproducible bit for bit" in choice.reason


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "MKL_NUM_THREADS", env.ENV_VAR])
def test_each_variable_wins_over_the_rule(clean: pytest.MonkeyPatch, var: str) -> None:
    clean.setenv(var, "1")
    torch.set_num_threads(env.torch_default_threads())  # as a process started with the variable set
    clean.setattr(env, "idle_cores", lambda window_s=0.0: (2.0, "patched"))
    for steady in (False, True):
        choice = env.pick_threads(steady=steady)
        assert choice.threads == 1 == torch.get_num_threads()
        assert choice.reason == f"1 thread(s): set by {var}"


def test_the_order_between_settings(clean: pytest.MonkeyPatch) -> None:
    """DDIM_LESSON_THREADS > torch.set_num_threads > OMP_NUM_THREADS > MKL_NUM_THREADS (each removed in turn)."""
    cores = env.available_cores()
    other = 1 if env.torch_default_threads() != 1 else 2  # a count torch would not start with
    if other > cores and other != 1:
        pytest.skip("needs a count other than torch's default that fits this machine")
    clean.setenv("MKL_NUM_THREADS", "3")
    clean.setenv("OMP_NUM_THREADS", "4")
    torch.set_num_threads(other)
    clean.setenv(env.ENV_VAR, "1")
    assert env.pick_threads(apply=False).reason.endswith(f"set by {env.ENV_VAR}")
    clean.delenv(env.ENV_VAR)
    choice = env.pick_threads(apply=False)
    assert choice.threads == other and "torch.set_num_threads" in choice.reason
    torch.set_num_threads(env.torch_default_threads())
    assert env.pick_threads(apply=False).threads == 4 and "OMP_NUM_THREADS" in env.pick_threads(apply=False).reason
    clean.delenv("OMP_NUM_THREADS")
    assert env.pick_threads(apply=False).threads == 3 and "MKL_NUM_THREADS" in env.pick_threads(apply=False).reason


def test_a_user_call_after_the_rule_is_kept(clean: pytest.MonkeyPatch) -> None:
    clean.setattr(env, "idle_cores", lambda window_s=0.0: (float(env.available_cores()), "patched"))
    first = env.pick_threads()
    mine = 1 if first.threads != 1 else 3
    torch.set_num_threads(mine)
    if mine == env.torch_default_threads():
        pytest.skip("the user's count equals torch's default here")
    assert env.pick_threads().threads == mine == torch.get_num_threads()


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_omp_value_is_named(clean: pytest.MonkeyPatch, bad: str) -> None:
    clean.setenv("OMP_NUM_THREADS", bad)
    with pytest.raises(ValueError, match=r"OMP_NUM_THREADS.*>= 1.*OMP_NUM_THREADS="):
        env.pick_threads(apply=False)


def test_omp_list_form_takes_the_outer_count(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("OMP_NUM_THREADS", "1,4")
    torch.set_num_threads(env.torch_default_threads())
    assert env.pick_threads(apply=False).threads == 1
