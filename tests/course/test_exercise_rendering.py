"""How an exercise reaches the learner: a wrong answer as its hint alone (no checker frames, also in a
real IPython shell), and the reference solution checked quietly, shown only when asked for."""

from __future__ import annotations

import pytest

import ddim_lesson.course.exercises as E
from ddim_lesson.course.exercises.harness import CheckFailed, checker


def _wrong_ddim_step(x_t, eps, abar_t, abar_prev, eta, noise):
    x0 = (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5
    return abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * eps + 0 * noise, x0  # the η-blind eps coefficient


def test_a_wrong_answer_is_check_failed_and_renders_as_the_hint_alone():
    with pytest.raises(CheckFailed) as info:
        E.check_ddim_step(_wrong_ddim_step)
    lines = info.value._render_traceback_()
    text = "\n".join(lines)
    assert "x_prev is wrong" in text and "Hint:" in text
    assert "Not yet:" in lines[0]
    assert "File " not in text and "Traceback" not in text and "raise" not in text  # no checker source


def test_ipython_shows_the_hint_without_the_checker_frames():
    IPython = pytest.importorskip("IPython")
    from IPython.utils.capture import capture_output

    shell = IPython.core.interactiveshell.InteractiveShell.instance()
    shell.user_ns.update(E=E, wrong=_wrong_ddim_step)
    with capture_output() as out:
        shell.run_cell("E.check_ddim_step(wrong)")
    shown = out.stdout + out.stderr
    assert "x_prev is wrong" in shown
    assert "harness.py" not in shown and "ddim.py" not in shown and "raise AssertionError" not in shown
    # planted: a bare AssertionError, as checkers raised before, does show IPython's traceback and frames
    with capture_output() as out:
        shell.run_cell("def f():\n    raise AssertionError('hint')\nf()")
    assert "Traceback" in out.stdout + out.stderr or "----> " in out.stdout + out.stderr


def test_checker_keeps_passing_results_and_learner_errors():
    @checker
    def passes(fn):
        return True

    @checker
    def fails(fn):
        raise AssertionError("x is wrong")

    assert passes(None) is True
    with pytest.raises(CheckFailed, match="x is wrong"):
        fails(None)


@pytest.mark.parametrize("name", sorted(E.SOLUTIONS))
def test_solution_checks_quietly_and_shows_only_when_asked(name, capsys):
    assert E.solution(name) is True
    out = capsys.readouterr().out
    assert "def reference_" not in out and "passes the same checker" in out
    assert "Correct: your" not in out  # the checker's words to a learner are not printed for the reference
    E.solution(name, show=True)
    assert f"def {E.SOLUTIONS[name].__name__}" in capsys.readouterr().out


def test_every_exercise_has_a_checker_and_unknown_names_are_refused():
    assert set(E.CHECKERS) == set(E.SOLUTIONS)
    with pytest.raises(ValueError, match="unknown exercise 'nope'; allowed: q_sample"):
        E.solution("nope")


def test_solution_fails_loudly_when_the_reference_does_not_pass(monkeypatch):
    monkeypatch.setitem(E.SOLUTIONS, "ddim_step", _wrong_ddim_step)  # planted: a broken reference
    with pytest.raises(AssertionError):
        E.solution("ddim_step")
