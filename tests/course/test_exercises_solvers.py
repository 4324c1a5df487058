"""Notebook 06's exercise: the Heun step checker (course.exercises.solvers) accepts the reference and names
the usual mistakes."""

from __future__ import annotations

import math

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.course.exercises import solvers as ex
from ddim_lesson.evaluate.solver_study import gaussian_data


# -- the exercise checker ---------------------------------------------------------------------------
def _step(kind: str):
    """A learner's Heun step with one planted mistake (``right``: none)."""
    def fn(x, s, sn, f):
        h = sn - s
        d = f(x, s)
        p = x + h * d
        if kind == "typo":
            return x + h * f(x)
        if kind == "euler" or (sn == 0 and kind != "always_correct"):
            return p
        if kind == "wrong_sigma":
            return x + h * 0.5 * (d + f(p, s))
        if kind == "wrong_point":
            return x + h * 0.5 * (d + f(x, sn))
        if kind == "end_only":
            return x + h * f(p, sn)
        if kind == "three_calls":
            f(x, s)
        return x + h * 0.5 * (d + f(p, sn))  # right, always_correct, three_calls
    return fn


def test_checker_accepts_the_reference_and_a_correct_step(capsys) -> None:
    assert ex.check_heun_step(ex.reference_heun_step) and ex.check_heun_step(_step("right"))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("kind,hint", [
    ("euler", "Euler"), ("wrong_sigma", "wrong noise level"), ("wrong_point", "old point"),
    ("end_only", "only the end slope"), ("always_correct", "skip the corrector"), ("three_calls", "exactly 2"),
    ("typo", "raised TypeError"),
])  # fmt: skip
def test_checker_names_the_usual_mistakes(kind: str, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        ex.check_heun_step(_step(kind))


def test_checker_says_not_attempted(capsys) -> None:
    def todo(*_):
        raise NotImplementedError

    assert ex.check_heun_step(todo) is False
    assert "not attempted" in capsys.readouterr().out


def test_reference_heun_step_is_the_library_step() -> None:
    """One grid step of sample_heun equals the exercise's reference step with slope = ε at the grid points."""
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x_T = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = dl.core.solvers.make_grid(sch, 4, "trailing")
    t_of = {s: t for s, t in zip(grid.sigma, grid.ts)}

    def slope(xbar, sigma):
        return data.eps(xbar * math.sqrt(1 / (1 + sigma**2)), torch.full((xbar.shape[0],), t_of[sigma]))

    first = next(iter(dl.ode_progressive(data.eps, sch, x_T, steps=7, solver="heun")))
    xbar1 = ex.reference_heun_step(x_T / grid.scale(0), grid.sigma[0], grid.sigma[1], slope)
    assert float((first.x - xbar1 * grid.scale(1)).abs().max()) < 1e-10


def test_checker_refuses_an_in_place_answer_through_the_harness() -> None:
    """Right values, but xbar changed in place: refused as in every other exercise (it was accepted before)."""
    def in_place(x, s, sn, f):
        h = sn - s
        d = f(x, s)
        if sn == 0:
            return x.add_(h * d)
        d_next = f(x + h * d, sn)
        return x.add_(h * 0.5 * (d + d_next))

    with pytest.raises(AssertionError, match="changed its input `x` in place"):
        ex.check_heun_step(in_place)


def test_checker_names_float32_as_the_cause() -> None:
    """The right maths in float32: the hint names the dtype, not a generic 'wrong'; a float32 answer with a real
    mistake still gets that mistake's hint."""
    def f32(x, s, sn, f):
        return ex.reference_heun_step(x, s, sn, f).float()

    with pytest.raises(AssertionError, match="torch.float32.*7 digits"):
        ex.check_heun_step(f32)
    with pytest.raises(AssertionError, match="Euler") as e:
        ex.check_heun_step(lambda x, s, sn, f: (x + (sn - s) * f(x, s)).float())
    assert "float32" not in str(e.value)
