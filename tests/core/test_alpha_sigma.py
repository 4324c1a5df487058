"""core.distill.alpha_sigma: (√ᾱ_t, √(1-ᾱ_t)) with t = -1 as clean data, against the schedule read directly.

α² + σ² = 1 at every t; t = -1 gives (1, 0); a planted bug (the index one off, as if t counted from 1) fails.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import NoiseSchedule
from ddim_lesson.core.distill import alpha_sigma


def test_alpha_sigma_reads_the_schedule_and_maps_minus_one_to_clean_data() -> None:
    schedule = NoiseSchedule.linear()
    t = torch.tensor([[-1, 0, 5], [250, 998, 999]])
    a, s = alpha_sigma(schedule, t)
    assert a.shape == s.shape == t.shape and a.dtype == s.dtype == torch.float64
    abar = schedule.alphas_cumprod.tolist()
    for (i, j), tt in ((ij, int(t[ij])) for ij in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]):
        want = (1.0, 0.0) if tt < 0 else (math.sqrt(abar[tt]), math.sqrt(1 - abar[tt]))
        assert (float(a[i, j]), float(s[i, j])) == pytest.approx(want, abs=1e-15)
        if tt >= 0:  # planted bug: t read as the paper's 1-based index
            off = (math.sqrt(abar[tt - 1]), math.sqrt(1 - abar[tt - 1])) if tt > 0 else (1.0, 0.0)
            assert (float(a[i, j]), float(s[i, j])) != pytest.approx(off, abs=1e-9)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a), atol=1e-15)


def test_alpha_sigma_refuses_timesteps_off_the_clock() -> None:
    with pytest.raises(ValueError, match=r"\[-1, 999\], got -2..3"):
        alpha_sigma(NoiseSchedule.linear(), torch.tensor([-2, 3]))
