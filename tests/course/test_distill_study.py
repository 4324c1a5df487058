"""course.distill_study.distill_sample: each method at k model calls is the sampler it names, calls counted.

(k = 8: at 4 steps 3M takes no third-order step, so its two rungs agree there; at 8 they do not.)

Against direct calls of ``ddim_sample`` and ``ode_sample`` on small random MLPs, with the model calls counted
by the test's own wrapper; a planted mix-up (3M as diffusers writes it for the exact rung) differs.
"""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, ode_sample
from ddim_lesson.course.distill_study import DISTILL_SAMPLERS, distill_sample
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser


def _mlp(seed: int) -> MLPDenoiser:
    torch.manual_seed(seed)
    m = MLPDenoiser(MLPConfig(hidden=16, depth=2)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


def test_each_method_is_its_sampler_at_k_calls() -> None:
    schedule, teacher, students = NoiseSchedule.linear(), _mlp(0), {4: _mlp(1), 8: _mlp(2)}
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = {"student": ddim_sample(students[8], schedule, x_T, steps=8, clip_x0=False),
                "DDIM": ddim_sample(teacher, schedule, x_T, steps=8, clip_x0=False),
                "DPM-Solver++ 2M": ode_sample(teacher, schedule, x_T, steps=8, solver="dpmpp_2m"),
                "DPM-Solver++ 3M": ode_sample(teacher, schedule, x_T, steps=8, solver="dpmpp_3m_exact")}
        planted = ode_sample(teacher, schedule, x_T, steps=8, solver="dpmpp_3m")
    assert set(want) == set(DISTILL_SAMPLERS)
    for method, x in want.items():
        got, calls = distill_sample(students, teacher, schedule, method, 8, x_T)
        assert calls == 8 and torch.equal(got, x), method
    assert not torch.allclose(want["DPM-Solver++ 3M"], planted, atol=1e-6)
    x16, calls16 = distill_sample(students, teacher, schedule, "DDIM", 16, x_T)  # the teacher: any k
    assert calls16 == 16 and x16.shape == x_T.shape


def test_bad_method_or_round_names_the_allowed_ones() -> None:
    schedule, teacher, students = NoiseSchedule.linear(), _mlp(0), {4: _mlp(1)}
    x_T = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="not a round's step count; allowed: 4"):
        distill_sample(students, teacher, schedule, "student", 8, x_T)
    with pytest.raises(ValueError, match="method"):
        distill_sample(students, teacher, schedule, "heun", 4, x_T)
    with pytest.raises(ValueError, match="k must be an integer"):
        distill_sample(students, teacher, schedule, "DDIM", 0, x_T)
