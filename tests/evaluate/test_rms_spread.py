"""evaluate.moons.rms_spread: the RMS distance of points from a centre, per coordinate.

Against a loop over the points written here, and the closed form for a standard normal cloud (RMS → 1 about
its mean); a planted Euclidean-norm version (√2 too large in 2-D) fails the same check.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson.evaluate.moons import rms_spread


def test_rms_spread_against_a_loop_and_a_closed_form() -> None:
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0], [3.0, 3.0]])
    c = torch.tensor([1.0, 0.5])
    loop = math.sqrt(sum((float(p[i]) - float(c[i])) ** 2 for p in x for i in range(2)) / 6)
    assert rms_spread(x, c) == pytest.approx(loop, rel=1e-6)
    cloud = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert rms_spread(cloud, torch.zeros(2, dtype=torch.float64)) == pytest.approx(1.0, abs=0.01)
    planted = float((cloud.norm(dim=1) ** 2).mean().sqrt())  # per point, not per coordinate
    assert abs(planted - 1.0) > 0.3
    with pytest.raises(ValueError, match=r"x must be \(N, d\) points .* got \(3, 2\) and \(3,\)"):
        rms_spread(x, torch.zeros(3))
