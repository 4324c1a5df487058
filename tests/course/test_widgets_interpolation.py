"""course/widgets/interpolation, imported itself: rms_norm against its closed form, and interpolation_run's
norms and decodings against slerp, lerp and ddim_sample run apart; on orthogonal latents of equal length slerp
keeps the norm exactly and lerp shrinks it to √((1-α)² + α²), so a run that decoded lerp as slerp would fail."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson.core.inversion import lerp, slerp
from ddim_lesson.core.samplers import ddim_sample
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.course.widgets import interpolation as W

SCHED = NoiseSchedule.linear(1000)


def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * x + 0.01 * t.view(-1, *([1] * (x.ndim - 1))).to(x.dtype) / 1000  # smooth, depends on x and t


def test_rms_norm_is_the_norm_over_root_d() -> None:
    z = torch.stack([torch.full((2, 3, 3), 2.0), torch.full((2, 3, 3), -0.5)])  # (2, 2, 3, 3)
    torch.testing.assert_close(W.rms_norm(z), torch.tensor([2.0, 0.5]))
    g = torch.Generator().manual_seed(0)
    assert abs(float(W.rms_norm(torch.randn(1, 20000, generator=g))[0]) - 1) < 0.02  # a N(0, I) latent: about 1


@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_the_run_decodes_slerp_and_lerp_and_says_their_norms(alpha: float) -> None:
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(1, 4, 4, generator=g), torch.randn(1, 4, 4, generator=g)
    z1 = z1 - (z1 * z0).sum() / (z0 * z0).sum() * z0
    z1 = z1 * z0.norm() / z1.norm()  # orthogonal to z0, as long
    run = W.interpolation_run(model, SCHED, z0, z1, alpha, steps=5)
    r0 = float(W.rms_norm(z0[None])[0])
    assert run.norms["slerp"] == pytest.approx(r0, rel=1e-5)  # slerp keeps the norm
    assert run.norms["lerp"] == pytest.approx(r0 * math.sqrt((1 - alpha) ** 2 + alpha**2), rel=1e-5)
    assert abs(run.norms["lerp"] - r0) > 0.1 * r0  # the planted swap (lerp decoded as slerp) would be seen
    zs = torch.stack([z0, slerp(z0[None], z1[None], alpha)[0], lerp(z0, z1, alpha), z1])
    torch.testing.assert_close(run.images, ddim_sample(model, SCHED, zs, steps=5, eta=0.0), rtol=1e-5, atol=1e-6)
    assert run.alpha == alpha and run.seconds >= 0


def test_one_latent_only() -> None:
    with pytest.raises(ValueError, match=r"one latent.*\(2, 1, 4, 4\)"):
        W.interpolation_run(model, SCHED, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), 0.5)
