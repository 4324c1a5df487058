"""The checkers of notebooks 04-05's latent-space exercises (course/exercises/latents.py): slerp and
one inversion step."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import lerp
from ddim_lesson.course.exercises import (
    SOLUTIONS,
    check_invert_step,
    check_slerp,
    reference_invert_step,
    reference_slerp,
)


def not_yet(*_):
    raise NotImplementedError

# -- slerp ---------------------------------------------------------------------------------------
def test_check_slerp():
    assert check_slerp(reference_slerp) is True
    assert check_slerp(not_yet) is False
    with pytest.raises(AssertionError, match="that is lerp"):
        check_slerp(lerp)
    with pytest.raises(AssertionError, match="norm 1"):
        check_slerp(lambda a, b, t: reference_slerp(a, b, t) / reference_slerp(a, b, t).norm(dim=-1, keepdim=True))


def test_reference_slerp_keeps_norm_of_orthogonal_pair():
    z0, z1 = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    mid = reference_slerp(z0, z1, 0.5)
    torch.testing.assert_close(mid, torch.tensor([[3 / math.sqrt(2), 3 / math.sqrt(2)]]))


# -- the inversion step --------------------------------------------------------------------------
def test_reference_invert_step_is_undone_by_ddim_step():
    from ddim_lesson import ddim_step

    x, eps = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    up = reference_invert_step(x, eps, 0.9, 0.4)
    back, _ = ddim_step(up, eps, 0.4, 0.9)  # the same eps: the step is exactly undone
    torch.testing.assert_close(back, x)


def test_check_invert_step():
    assert check_invert_step(reference_invert_step) is True
    assert check_invert_step(not_yet) is False
    with pytest.raises(AssertionError, match="wrong way"):
        check_invert_step(lambda x, e, a, b: reference_invert_step(x, e, b, a) if a < 1 else
                          reference_invert_step(x, e, a, b))
    with pytest.raises(AssertionError, match="square roots"):
        check_invert_step(lambda x, e, a, b: b * (x - (1 - a) * e) / a + (1 - b) * e)


def test_solutions_registered():
    assert {"step_sigmas", "slerp", "invert_step"} <= set(SOLUTIONS)
