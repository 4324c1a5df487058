"""The deliberately wrong recipes are wrong in exactly the way notebook 03 says, and right otherwise."""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, ddim_step, ddim_timesteps, naive_timesteps
from ddim_lesson.course.pitfalls import naive_ddim_sample


@pytest.mark.parametrize("S, calls", [(10, 11), (3, 4), (7, 9), (50, 51)])
def test_naive_recipe_costs_more_calls_than_asked(
    S: int, calls: int, gaussian, counting, linear_schedule: NoiseSchedule
) -> None:
    """range(0, T, T // S) + [T - 1]: S = 10 -> 0, 100, ..., 900 and 999 (11); S = 7 -> 8 entries + 999 (9)."""
    model = counting(gaussian)
    x_T = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    naive_ddim_sample(model, linear_schedule, x_T, S)
    stride = linear_schedule.T // S
    want = sorted(set(range(0, linear_schedule.T, stride)) | {linear_schedule.T - 1}, reverse=True)  # by hand
    assert model.calls == calls == len(want) and model.timesteps == want
    model.reset()
    ddim_sample(model, linear_schedule, x_T, steps=S)
    assert model.calls == S  # the library's sampler makes the calls asked for


def test_naive_loop_is_ddim_over_its_sequence(gaussian, linear_schedule: NoiseSchedule) -> None:
    """After its first step (999 -> 900), the naive S = 10 run is exactly DDIM with leading spacing (900, ..., 0)."""
    sch = linear_schedule
    assert naive_timesteps(sch.T, 10).tolist()[1:] == ddim_timesteps(sch.T, 10, "leading").tolist()
    x_T = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t999 = torch.full((6,), 999)
    x_900, _ = ddim_step(x_T, gaussian(x_T, t999), sch.abar(999), sch.abar(900), clip_x0=True)  # eq. 12 by hand
    want = ddim_sample(gaussian, sch, x_900, steps=10, spacing="leading")
    torch.testing.assert_close(naive_ddim_sample(gaussian, sch, x_T, 10), want, rtol=0, atol=1e-12)
    # planted bug: t_prev recomputed from the stride (999 -> 899) instead of read from the sequence
    x_899, _ = ddim_step(x_T, gaussian(x_T, t999), sch.abar(999), sch.abar(899), clip_x0=True)
    wrong = ddim_sample(gaussian, sch, x_899, steps=10, spacing="leading")
    assert float((wrong - want).abs().max()) > 1e-6


def test_bad_input_is_refused(gaussian, linear_schedule: NoiseSchedule) -> None:
    x_T = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps"):
        naive_ddim_sample(gaussian, linear_schedule, x_T, 0)
    with pytest.raises(ValueError, match="steps"):
        naive_ddim_sample(gaussian, linear_schedule, x_T, 1001)
    with pytest.raises(ValueError, match="x_T must be a torch.Tensor"):
        naive_ddim_sample(gaussian, linear_schedule, [[0.0, 0.0, 0.0]], 10)  # type: ignore[arg-type]
