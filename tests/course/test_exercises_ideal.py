"""Notebook 09's exercise: the ideal denoiser's weights (course.exercises.ideal); the usual mistakes are named."""

from __future__ import annotations

import math

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.course.exercises import ideal as ex


def _weights(kind: str):
    """A learner's weights with one planted mistake (``right``: none)."""
    def fn(x_t, data, abar):
        scale = 1.0 if kind == "no_sqrt" else math.sqrt(abar)
        sq = (x_t[:, None, :] - scale * data[None]).pow(2).sum(-1)  # (B, N)
        temp = {"temperature": 1 - abar, "std": 2 * math.sqrt(1 - abar)}.get(kind, 2 * (1 - abar))
        sign = 1.0 if kind == "sign" else -1.0
        if kind == "in_place":
            x_t.mul_(1.0)
            x_t += 1.0
        if kind == "typo":
            return torch.softmax(sq / temp)
        return torch.softmax(sign * sq / temp, dim=0 if kind == "dim" else 1)
    return fn


def test_checker_accepts_the_reference_and_a_correct_answer(capsys) -> None:
    assert ex.check_ideal_weights(ex.reference_ideal_weights) and ex.check_ideal_weights(_weights("right"))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("kind, hint", [
    ("no_sqrt", "√ᾱ·x_i"), ("temperature", "off by 2"), ("std", "variance is 1 − ᾱ"), ("sign", "MINUS"),
    ("dim", "dim=1"), ("typo", "raised TypeError"), ("in_place", "in place"),
])
def test_checker_names_the_usual_mistakes(kind: str, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        ex.check_ideal_weights(_weights(kind))


def test_checker_says_not_attempted(capsys) -> None:
    def todo(*_):
        raise NotImplementedError

    assert ex.check_ideal_weights(todo) is False
    out = capsys.readouterr().out
    assert "not attempted" in out
    assert "softmax" not in out and "abar" not in out, "a hint only: the stub's message must not print the solution"


def test_reference_is_the_package_posterior() -> None:
    """Written from the equation, the reference agrees with IdealDenoiser: each is a test of the other."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn((30, 5), generator=g, dtype=torch.float64)  # (N, D)
    x = torch.randn((6, 5), generator=g, dtype=torch.float64)  # (B, D)
    schedule = dl.NoiseSchedule.linear()
    t = torch.full((6,), 300)
    w = ex.reference_ideal_weights(x, data, float(schedule.alphas_cumprod[300]))
    post = dl.IdealDenoiser(data, schedule, chunk=7).posterior(x, t)
    torch.testing.assert_close(post.x0_pred, w @ data, atol=1e-12, rtol=0)
    torch.testing.assert_close(post.w_max, w.max(1).values, atol=1e-12, rtol=0)


def test_registered_with_the_course_harness(capsys) -> None:
    from ddim_lesson.course.exercises import CHECKERS, SOLUTIONS, CheckFailed, solution

    assert CHECKERS["ideal_weights"] is ex.check_ideal_weights
    assert SOLUTIONS["ideal_weights"] is ex.reference_ideal_weights
    assert solution("ideal_weights") is True
    assert "solution('ideal_weights', show=True)" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="off by 2"):
        ex.check_ideal_weights(_weights("temperature"))
