"""Notebook 10's checker: the reference passes, the stub is "not attempted", each usual mistake gets its hint."""

from __future__ import annotations

import math

import pytest

from ddim_lesson.course.exercises import flow as ex


def test_reference_passes(capsys) -> None:
    assert ex.check_to_flow(ex.reference_to_flow) is True
    assert "Correct" in capsys.readouterr().out


def test_stub_is_not_attempted(capsys) -> None:
    def stub(x_t, eps, abar):
        raise NotImplementedError

    assert ex.check_to_flow(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def _variant(s_fn=None, xs_fn=None, v_fn=None):
    def fn(x_t, eps, abar):
        s, x_s, v = ex.reference_to_flow(x_t, eps, abar)
        a, b = math.sqrt(abar), math.sqrt(1 - abar)
        x0 = (x_t - b * eps) / a
        return (s_fn(a, b) if s_fn else s, xs_fn(x_t, a, b) if xs_fn else x_s, v_fn(eps, x0, x_t) if v_fn else v)
    return fn


@pytest.mark.parametrize("fn,hint", [
    (_variant(s_fn=lambda a, b: b / a), "σ̄ = √(1-ᾱ)/√ᾱ"),
    (_variant(s_fn=lambda a, b: b), "divide by the sum of both weights"),
    (_variant(s_fn=lambda a, b: b * b), "s uses square roots"),
    (_variant(xs_fn=lambda x, a, b: x), "x_t unchanged"),
    (_variant(xs_fn=lambda x, a, b: x / a), "x̄ = x_t/√ᾱ"),
    (_variant(v_fn=lambda e, x0, xt: x0 - e), "the sign is flipped"),
    (_variant(v_fn=lambda e, x0, xt: e - xt), "x_t is not x̂0"),
    (_variant(v_fn=lambda e, x0, xt: 2 * (e - x0)), "v = ε - x̂0 with x̂0"),
])
def test_mistakes_get_their_hint(fn, hint) -> None:
    with pytest.raises(AssertionError, match="Hint") as err:
        ex.check_to_flow(fn)
    assert hint in str(err.value)


def test_wrong_return_type_and_learner_errors() -> None:
    with pytest.raises(AssertionError, match=r"return the tuple \(s, x_s, v\)"):
        ex.check_to_flow(lambda x_t, eps, abar: x_t)
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        ex.check_to_flow(lambda x_t, eps, abar: 1 / 0)


def test_registered_with_the_course_harness(capsys) -> None:
    from ddim_lesson.course.exercises import CHECKERS, SOLUTIONS, CheckFailed, solution

    assert CHECKERS["to_flow"] is ex.check_to_flow
    assert SOLUTIONS["to_flow"] is ex.reference_to_flow
    assert solution("to_flow") is True
    out = capsys.readouterr().out
    assert "solution('to_flow', show=True)" in out and "def reference_to_flow" not in out  # no spoiler by default
    solution("to_flow", show=True)
    assert "def reference_to_flow" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="the sign is flipped"):  # rendered as the hint alone in Jupyter
        ex.check_to_flow(_variant(v_fn=lambda e, x0, xt: x0 - e))
