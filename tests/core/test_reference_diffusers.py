"""ddim_sample against an independent implementation: diffusers' DDIMScheduler.

Why only some cases can agree: diffusers' ``step`` does not read t_prev from its own timestep
array; it recomputes it as ``t_prev = t - T // S`` (and uses ᾱ = 1 once that is negative).
Our sampler takes t_prev from the sequence itself. The two coincide exactly when the sequence
has a constant stride of T // S that ends at t = T // S - 1 or below:

- ``leading``: t_i = i·(T//S), stride T//S, the last t is 0 -> agree for every S;
- ``trailing`` with S dividing T: t_i = T - 1 - i·T/S, stride T/S = T//S, last t = T/S - 1 -> agree;
- ``trailing`` with S not dividing T: the stride alternates between ⌊T/S⌋ and ⌈T/S⌉, so diffusers
  jumps to the wrong noise level, and its last step goes to ᾱ_{t - T//S} with t - T//S >= 0
  instead of ᾱ = 1, leaving noise in the output. That case is shown, not matched, below.

Both libraries are given the same ᾱ table (ours, float64) for the sampling comparisons, so they
agree to float64 round-off; diffusers' own float32 table is compared with ours separately.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import DDIMScheduler  # noqa: E402

from ddim_lesson import NoiseSchedule, ddim_progressive, ddim_sample, ddim_step, ddim_timesteps  # noqa: E402

T = 1000
F64 = torch.float64


def _scheduler(spacing: str, schedule: NoiseSchedule | None = None) -> DDIMScheduler:
    ds = DDIMScheduler(
        num_train_timesteps=T,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing=spacing,
    )
    if schedule is not None:  # share our float64 ᾱ so the comparison is of the update and bookkeeping only
        ds.alphas_cumprod = schedule.alphas_cumprod.clone()
    return ds


def _diffusers_loop(ds: DDIMScheduler, model, x_T: torch.Tensor, S: int, eta: float, noises: list) -> torch.Tensor:
    """diffusers' documented sampling loop: set_timesteps, then model call + step per timestep."""
    ds.set_timesteps(S)
    x = x_T
    for i, t in enumerate(ds.timesteps):
        eps = model(x, t.expand(x.shape[0]))
        x = ds.step(eps, int(t), x, eta=eta, variance_noise=noises[i] if eta > 0 else None).prev_sample
    return x


def _our_noises(x_T: torch.Tensor, S: int, seed: int) -> list[torch.Tensor]:
    """The noise our sampler draws from a generator seeded with ``seed``: one tensor like x_T per step
    with σ > 0, i.e. every step but the last (which goes to ᾱ = 1, where σ = 0)."""
    g = torch.Generator().manual_seed(seed)
    noises = [torch.randn(x_T.shape, generator=g, dtype=x_T.dtype) for _ in range(S - 1)]
    return noises + [torch.zeros_like(x_T)]


def test_schedule_matches_diffusers(linear_schedule: NoiseSchedule) -> None:
    ds = _scheduler("leading")
    np.testing.assert_allclose(ds.betas.double().numpy(), linear_schedule.betas.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.alphas_cumprod.double().numpy(), linear_schedule.alphas_cumprod.numpy(), rtol=1e-5)
    assert float(ds.final_alpha_cumprod) == 1.0


def test_timestep_arrays_match_diffusers() -> None:
    ds_lead, ds_trail = _scheduler("leading"), _scheduler("trailing")
    for S in range(1, T + 1):
        ds_lead.set_timesteps(S)
        assert ds_lead.timesteps.tolist() == ddim_timesteps(T, S, "leading").tolist(), S
    for S in [d for d in range(1, T + 1) if T % d == 0]:
        ds_trail.set_timesteps(S)
        assert ds_trail.timesteps.tolist() == ddim_timesteps(T, S, "trailing").tolist(), S


@pytest.mark.parametrize(
    "spacing,S,eta",
    [
        ("leading", 1, 0.0),
        ("leading", 7, 0.0),
        ("leading", 50, 0.0),
        ("leading", 333, 0.0),
        ("leading", 50, 0.5),
        ("trailing", 1, 0.0),
        ("trailing", 8, 0.0),
        ("trailing", 50, 0.0),
        ("trailing", 1000, 0.0),
        ("trailing", 40, 1.0),
    ],
)
def test_outputs_match_diffusers(smooth_model, linear_schedule: NoiseSchedule, spacing: str, S: int, eta: float):
    """Same model, same x_T, same noise (fed to diffusers through ``variance_noise``): same x0."""
    x_T = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(S), dtype=F64)
    ours = ddim_sample(smooth_model, linear_schedule, x_T, steps=S, eta=eta, spacing=spacing, clip_x0=False,
                       generator=torch.Generator().manual_seed(123))  # fmt: skip
    ref = _diffusers_loop(_scheduler(spacing, linear_schedule), smooth_model, x_T, S, eta, _our_noises(x_T, S, 123))
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=0, atol=1e-9)
    assert float(ours.abs().max()) > 0.1  # not a degenerate all-zero comparison


def _manual_loop(sch: NoiseSchedule, model, x_T: torch.Tensor, ts: list[int], t_prevs: list[int]) -> torch.Tensor:
    """η = 0 DDIM with explicit (t, t_prev) pairs, built from ddim_step. t_prev < 0 means ᾱ = 1."""
    x = x_T
    for t, tp in zip(ts, t_prevs):
        x, _ = ddim_step(x, model(x, torch.full((x.shape[0],), t)), sch.abar(t), sch.abar(max(tp, -1)))
    return x


@pytest.mark.parametrize("S", [3, 7, 64])
def test_trailing_disagrees_when_S_does_not_divide_T(smooth_model, linear_schedule: NoiseSchedule, S: int) -> None:
    """The pitfall: for trailing spacing with T % S != 0, diffusers recomputes t_prev = t - T//S.

    The timestep arrays are identical, yet the outputs differ: ours equals the loop that takes t_prev
    from the sequence (ending at ᾱ = 1); diffusers' equals the loop that takes t_prev = t - T//S.
    """
    assert T % S != 0
    sch = linear_schedule
    ts = ddim_timesteps(T, S, "trailing").tolist()
    ds = _scheduler("trailing", sch)
    ds.set_timesteps(S)
    assert ds.timesteps.tolist() == ts
    x_T = torch.randn(4, 3, generator=torch.Generator().manual_seed(S), dtype=F64)
    ours = ddim_sample(smooth_model, sch, x_T, steps=S, spacing="trailing", clip_x0=False)
    ref = _diffusers_loop(ds, smooth_model, x_T, S, 0.0, [])
    assert float((ours - ref).abs().max()) > 1e-3

    seq_prev = ts[1:] + [-1]
    stride_prev = [t - T // S for t in ts]
    assert seq_prev != stride_prev
    # When frac(T/S) >= 1/2 (S = 7: last t = 142 = T//S) diffusers' last step even stops short of ᾱ = 1.
    assert (stride_prev[-1] >= 0) == (round(T / S) > T // S)
    np.testing.assert_allclose(ours.numpy(), _manual_loop(sch, smooth_model, x_T, ts, seq_prev).numpy(), atol=1e-12)
    np.testing.assert_allclose(ref.numpy(), _manual_loop(sch, smooth_model, x_T, ts, stride_prev).numpy(), atol=1e-9)
    steps = list(ddim_progressive(smooth_model, sch, x_T, steps=S, spacing="trailing", clip_x0=False))
    assert [(st.t, st.t_prev) for st in steps] == list(zip(ts, seq_prev))


def test_trailing_pitfall_leaves_noise_in_output(linear_schedule: NoiseSchedule) -> None:
    """With a model that knows x0 (it returns the true noise), ours recovers x0 exactly for S = 7;
    diffusers, whose last step goes to ᾱ_0 instead of 1, leaves about √(1-ᾱ_0)·ε ≈ 0.01·ε."""
    sch, S = linear_schedule, 7
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(16, 3, generator=g, dtype=F64) * 2 - 1, torch.randn(16, 3, generator=g, dtype=F64)
    abar = sch.alphas_cumprod

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t].view(-1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    x_T = abar[-1].sqrt() * x0 + (1 - abar[-1]).sqrt() * eps
    ours = ddim_sample(oracle, sch, x_T, steps=S, spacing="trailing", clip_x0=False)
    ref = _diffusers_loop(_scheduler("trailing", sch), oracle, x_T, S, 0.0, [])
    assert float((ours - x0).abs().max()) < 1e-9
    err = float((ref - x0).abs().max())
    assert err > 0.5 * math.sqrt(1 - float(abar[0])) * float(eps.abs().max()), err
