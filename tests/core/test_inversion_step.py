"""core.inversion's one inversion update, invert_step: eq. 12 at η = 0 read upward (ᾱ_from -> ᾱ_to < ᾱ_from),
against the equation written out in float64, and against its inverse, core.updates.ddim_step run back down; a
planted bug (the two levels swapped) fails the same check."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson.core import inversion
from ddim_lesson.core.updates import ddim_step

CASES = ((1.0, 0.99), (0.99, 0.9), (0.9, 0.5), (0.5, 0.02), (0.3, 1e-4))  # (ᾱ_from, ᾱ_to): from clean data up


def written_out(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """x_to = √ᾱ_to · x0_pred + √(1-ᾱ_to) · ε with x0_pred = (x - √(1-ᾱ_from) ε)/√ᾱ_from (eq. 9, eq. 12 at σ = 0)."""
    x0_pred = (x - math.sqrt(1 - abar_from) * eps) / math.sqrt(abar_from)
    return math.sqrt(abar_to) * x0_pred + math.sqrt(1 - abar_to) * eps


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 1, 4, 4, generator=g,
                                                                                 dtype=torch.float64)


@pytest.mark.parametrize(("abar_from", "abar_to"), CASES)
def test_invert_step_is_eq_12_read_upward(abar_from: float, abar_to: float) -> None:
    x, eps = _pair(0)
    got = inversion.invert_step(x, eps, abar_from, abar_to)
    torch.testing.assert_close(got, written_out(x, eps, abar_from, abar_to), rtol=1e-12, atol=1e-12)
    swapped = written_out(x, eps, abar_to, abar_from)  # the planted bug: the levels the wrong way round
    assert (swapped - got).abs().max() > 1e-3


@pytest.mark.parametrize(("abar_from", "abar_to"), CASES[1:])
def test_ddim_step_down_undoes_invert_step_with_the_same_eps(abar_from: float, abar_to: float) -> None:
    """With ε held fixed, one DDIM step (η = 0) from ᾱ_to back to ᾱ_from returns x: the step is invertible."""
    x, eps = _pair(1)
    up = inversion.invert_step(x, eps, abar_from, abar_to)
    back, x0_pred = ddim_step(up, eps, abar_to, abar_from)
    torch.testing.assert_close(back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(x0_pred, (x - math.sqrt(1 - abar_from) * eps) / math.sqrt(abar_from))
