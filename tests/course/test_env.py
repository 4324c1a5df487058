"""course/env.py: the notebooks' environment check, which takes the thread rule from store.device (its tests are
tests/store/test_thread_rule.py) and reports the choice once, in the announcement's words, on stdout (a notebook
paints stderr red); and course.measure's medians."""

from __future__ import annotations

import time

import pytest

from ddim_lesson.course import env
from ddim_lesson.course.measure import timed
from ddim_lesson.store import device


def test_the_thread_rule_is_store_devices_under_its_old_names() -> None:
    """Notebooks and scripts that import the rule from course.env get the one rule, not a copy."""
    for name in ("pick_threads", "threads_for", "user_threads", "ThreadChoice", "torch_default_threads",
                 "available_cores", "idle_cores", "ENV_VAR", "USER_VARS", "announce_threads"):
        assert getattr(env, name) is getattr(device, name), name
    assert env.ENV_VAR == "DDIM_LESSON_THREADS"


def test_check_environment_reports_the_threads_once_on_stdout(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One line, worded by store.device.thread_line like the CLI's announcement, on stdout: nothing on stderr, which
    JupyterLab would show as an error."""
    monkeypatch.setenv(device.ENV_VAR, "1")  # no load measurement
    info = env.check_environment()
    out, err = capsys.readouterr()
    assert out.splitlines().count(device.thread_line(info["threads_reason"])) == 1, out
    assert sum("torch uses" in ln for ln in out.splitlines()) == 1 and "torch uses" not in err, (out, err)
    assert info["cpu_threads"] == 1 and "set by DDIM_LESSON_THREADS" in info["threads_reason"]


def test_timed_is_a_median_of_repeats() -> None:
    calls = []
    t = timed(lambda: calls.append(time.sleep(0.002)), repeats=5, warmup=2)
    assert len(calls) == 7 and len(t.runs_ms) == 5
    assert t.median_ms == sorted(t.runs_ms)[2] and t.median_ms >= 2.0
    assert t.per_call(4) == pytest.approx(t.median_ms / 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="repeats"):
            timed(lambda: None, repeats=bad)
