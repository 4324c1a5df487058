"""inversion_eps_gap against closed forms: zero for an ε that ignores x, exact for a linear ε, shrinking with S."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_invert, ddim_timesteps
from ddim_lesson.evaluate.inversion_gap import inversion_eps_gap

F64 = torch.float64


def _x0(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_eps_that_ignores_x_has_no_gap(linear_schedule: NoiseSchedule) -> None:
    def by_t_only(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # the same ε wherever x is
        return torch.ones_like(x) * (t[:, None].to(x.dtype) + 1) / 1000

    res = inversion_eps_gap(by_t_only, linear_schedule, _x0(), steps=10)
    assert torch.equal(res.timesteps, ddim_timesteps(1000, 10, "trailing").flip(0))
    assert float(res.gap.abs().max()) == 0.0


def test_linear_eps_one_step_closed_form(linear_schedule: NoiseSchedule) -> None:
    """ε = a·x, one step from x0 to t = 999: x_T = c·x0 with c = √ᾱ + a√(1-ᾱ), gap = |1 - c| / |c|."""
    a = 0.7
    x0 = _x0()
    res = inversion_eps_gap(lambda x, t: a * x, linear_schedule, x0, steps=1)
    abar = float(linear_schedule.alphas_cumprod[999])
    c = math.sqrt(abar) + a * math.sqrt(1 - abar)
    assert res.gap.shape == (1,) and int(res.timesteps[0]) == 999
    assert float(res.gap[0]) == pytest.approx(abs(1 - c) / abs(c), rel=1e-9)


def test_gap_shrinks_with_shorter_steps(gaussian, linear_schedule: NoiseSchedule, counting) -> None:
    """With the exact Gaussian ε, the median gap falls about as 1/S; 2·S model calls; the inversion is ddim_invert's.

    Measured medians: S = 20: 0.058, 80: 0.020, 320: 0.0056.
    """
    x0 = gaussian.mu + gaussian.s * _x0(64, seed=1)
    median = []
    for S in (20, 80, 320):
        m = counting(gaussian)
        res = inversion_eps_gap(m, linear_schedule, x0, steps=S)
        assert m.calls == 2 * S and res.gap.shape == (S,)
        median.append(float(res.gap.median()))
    assert median[1] < 0.5 * median[0] and median[2] < 0.5 * median[1], median
    # the points it measured at are ddim_invert's: the last one is the latent itself
    seen = []
    m = counting(lambda x, t: (seen.append(x), gaussian(x, t))[1])
    inversion_eps_gap(m, linear_schedule, x0, steps=4)
    torch.testing.assert_close(seen[-1], ddim_invert(gaussian, linear_schedule, x0, steps=4))
