"""evaluate.sampler_loops.diffusers_ddim_sample: diffusers' DDIM loop, with and without its clipped-output flag.

With ``use_clipped_model_output=True`` it is our ``ddim_sample(clip_x0=True)`` on the same spacing; with diffusers'
default it is the other sampler, written out here from its formula: x_prev = √ᾱ_prev·clip(x̂0) + √(1-ᾱ_prev)·ε̂
with the model's own ε̂. Each run is checked against the independent one and must differ from the other (a planted
mix-up of the two conventions fails), on a model whose x̂0 leaves [-1, 1].
"""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, ddim_timesteps
from ddim_lesson.evaluate.sampler_loops import diffusers_ddim_sample

pytest.importorskip("diffusers")


def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Nonlinear and t-dependent; its x̂0 leaves [-1, 1] on most samples at high noise. (B, 2) -> (B, 2)."""
    tt = t.to(x_t.dtype).view(-1, 1)
    return 0.8 * torch.sin(1.3 * x_t + tt / 137.0) + 0.3 * torch.tanh(x_t) * torch.cos(tt / 311.0)


def keep_eps_loop(schedule: NoiseSchedule, x_T: torch.Tensor, steps: int, spacing: str) -> torch.Tensor:
    """DDIM with x̂0 clipped but the model's ε kept in the direction term (diffusers' default), written out."""
    abar = schedule.alphas_cumprod.tolist()
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()
    x = x_T
    for i, t in enumerate(ts):
        a, a_prev = abar[t], (abar[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        eps = eps_model(x, torch.full((x.shape[0],), t))
        x0 = ((x - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-1, 1)
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x


# S divides T: else diffusers' trailing steps are not ours (tests/core/test_reference_diffusers.py)
@pytest.mark.parametrize("spacing,steps", [("leading", 10), ("trailing", 20)])
def test_both_conventions_against_independent_loops(spacing: str, steps: int) -> None:
    schedule = NoiseSchedule.linear()
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    ours = ddim_sample(eps_model, schedule, x_T, steps=steps, spacing=spacing, clip_x0=True)
    keep = keep_eps_loop(schedule, x_T, steps, spacing)
    clipped = diffusers_ddim_sample(eps_model, schedule, x_T, steps=steps, spacing=spacing)
    default = diffusers_ddim_sample(eps_model, schedule, x_T, steps=steps, spacing=spacing,
                                    use_clipped_model_output=False)
    assert float((clipped - ours).abs().max()) < 1e-4
    assert float((default - keep).abs().max()) < 1e-4
    assert float((default - ours).abs().max()) > 0.1  # the two conventions differ: a mix-up fails the checks above
    assert float((clipped - keep).abs().max()) > 0.1


def test_bad_arguments_name_the_allowed_values() -> None:
    schedule, x = NoiseSchedule.linear(), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="spacing"):
        diffusers_ddim_sample(eps_model, schedule, x, steps=5, spacing="logsnr")
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000\]"):
        diffusers_ddim_sample(eps_model, schedule, x, steps=0)
    with pytest.raises(ValueError, match="linear schedule, got 'cosine'"):
        diffusers_ddim_sample(eps_model, NoiseSchedule.cosine(), x, steps=5)
