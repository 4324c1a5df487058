"""core.flow.flow_start: DDIM's x_T as the flow's start x_s, so that flow Euler from it is DDIM (float64).

Checked against the closed form x_T/(√ᾱ + √(1-ᾱ)) at each spacing's first timestep (read off ``ddim_timesteps``
independently), and end to end: ``flow_sample`` from it on ``flow_grid`` equals ``ddim_sample`` from x_T on a
closed-form Gaussian ε-model. A planted bug (the start at t = T-1 whatever the spacing) fails for leading steps.
"""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, ddim_timesteps
from ddim_lesson.core.exact_gaussian import gaussian_eps
from ddim_lesson.core.flow import eps_to_velocity, flow_grid, flow_sample, flow_start

F64 = torch.float64


@pytest.mark.parametrize("spacing,S", [("trailing", 10), ("leading", 10), ("logsnr", 5), ("linspace", 7)])
def test_flow_start_is_x_T_rescaled_at_the_first_timestep(spacing: str, S: int) -> None:
    schedule = NoiseSchedule.linear()
    x_T = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    t0 = int(ddim_timesteps(schedule.T, S, spacing, schedule=schedule)[0])
    a = float(schedule.alphas_cumprod[t0])
    assert torch.allclose(flow_start(x_T, schedule, S, spacing), x_T / (a**0.5 + (1 - a) ** 0.5), rtol=1e-15, atol=0)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gaussian_eps(x, schedule.alphas_cumprod[t].view(-1, 1), 0.5, 0.3)

    ddim = ddim_sample(model, schedule, x_T, steps=S, spacing=spacing, clip_x0=False)
    flow = flow_sample(eps_to_velocity(model, schedule), flow_start(x_T, schedule, S, spacing),
                       s_grid=flow_grid(schedule, S, spacing))
    assert float((flow - ddim).abs().max()) < 1e-10
    if spacing == "leading":  # a planted bug: the start taken at t = T-1 for every spacing
        aT = float(schedule.alphas_cumprod[-1])
        planted = x_T / (aT**0.5 + (1 - aT) ** 0.5)
        assert float((planted - flow_start(x_T, schedule, S, spacing)).abs().max()) > 1e-3


def test_flow_start_refuses_bad_steps_and_spacing() -> None:
    schedule, x = NoiseSchedule.linear(), torch.zeros(1, 2)
    with pytest.raises(ValueError, match="steps"):
        flow_start(x, schedule, 0)
    with pytest.raises(ValueError, match="spacing"):
        flow_start(x, schedule, 10, "nope")
