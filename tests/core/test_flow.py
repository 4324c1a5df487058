"""core.flow: DDIM (η = 0, no clipping) is Euler on dx/ds = v in flow-matching coordinates, to float64 round-off.

Checked against ddim_sample on every spacing (a closed-form Gaussian ε-model and a random float64 MLP), against
the closed-form Gaussian flow (Euler's order measured), and against diffusers' FlowMatchEulerDiscreteScheduler
given the same sigmas. Planted bugs (no rescaling of x, v without 1/(1 - s), a grid one timestep off, a wrong
Euler sign) must fail the same checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim_lesson import SPACINGS, NoiseSchedule, ddim_progressive, ddim_sample, ddim_timesteps
from ddim_lesson.core.flow import (
    EpsVelocity,
    eps_to_velocity,
    euler_xt_sample,
    flow_grid,
    flow_progressive,
    flow_sample,
    pair_flow_loss,
    s_of_abar,
)
from ddim_lesson.nets.models import MLPConfig, build_model

F64 = torch.float64
MU = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
SD = torch.tensor([0.5, 1.5, 0.2], dtype=F64)


def _x_s(schedule: NoiseSchedule, x_T: torch.Tensor, spacing: str, S: int) -> torch.Tensor:
    """x_T / (√ᾱ + √(1-ᾱ)) at the first timestep of the grid."""
    a = schedule.alphas_cumprod[int(ddim_timesteps(schedule.T, S, spacing)[0])]
    return x_T / (a.sqrt() + (1 - a).sqrt())


def _mlp() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model("mlp", MLPConfig(dim=3, hidden=32, depth=2).to_dict()).double().eval()


def gaussian_velocity(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The exact marginal velocity E[ε - x0 | x_s] for x0 ~ N(MU, SD²) per dimension. x: (B, 3), s: (B,)."""
    s = s.to(x.dtype).view(-1, 1)
    mu, sd = MU.to(x.dtype), SD.to(x.dtype)
    var = (1 - s) ** 2 * sd**2 + s**2  # Var(x_s)
    return -mu + (s - (1 - s) * sd**2) / var * (x - (1 - s) * mu)


def exact_flow(x1: torch.Tensor) -> torch.Tensor:
    """The exact ODE map s = 1 -> 0 of gaussian_velocity: the standard score is kept, x0 = MU + SD·x1."""
    return MU + SD * x1


# ---------------------------------------------------------------- the identity
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("S", [1, 2, 7, 50])
def test_flow_euler_on_flow_grid_is_ddim(gaussian, linear_schedule, spacing: str, S: int) -> None:
    x_T = torch.randn(64, 3, generator=torch.Generator().manual_seed(S), dtype=F64)
    for model in (gaussian, _mlp()):
        ddim = ddim_sample(model, linear_schedule, x_T, steps=S, spacing=spacing, eta=0.0, clip_x0=False)
        flow = flow_sample(eps_to_velocity(model, linear_schedule), _x_s(linear_schedule, x_T, spacing, S),
                           s_grid=flow_grid(linear_schedule, S, spacing))
        assert float((flow - ddim).abs().max()) < 1e-10
        assert float(ddim.abs().max()) > 0.5  # not a comparison of zeros


def test_identity_step_by_step(gaussian, linear_schedule) -> None:
    """Every intermediate state: x_s = x_t/(√ᾱ+√(1-ᾱ)) and the same x̂0, step for step."""
    S, spacing = 10, "trailing"
    x_T = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    ddim = list(ddim_progressive(gaussian, linear_schedule, x_T, steps=S, spacing=spacing, clip_x0=False))
    flow = list(flow_progressive(eps_to_velocity(gaussian, linear_schedule), _x_s(linear_schedule, x_T, spacing, S),
                                 s_grid=flow_grid(linear_schedule, S, spacing)))
    assert len(ddim) == len(flow) == S
    for d, f in zip(ddim, flow):
        a = linear_schedule.abar(d.t_prev)
        assert abs(f.s_next - float(s_of_abar(a))) < 1e-15
        assert float((f.x - d.x / (math.sqrt(a) + math.sqrt(1 - a))).abs().max()) < 1e-12
        assert float((f.x0_pred - d.x0_pred).abs().max()) < 1e-12


class _NoRescale(EpsVelocity):
    """Planted bug: the ε-model is handed x_s itself, as if x_s were x_t."""

    def __call__(self, x_s, s):
        t = self.timestep(s)
        s_t = self.s_table[t].view(-1, 1)
        return (self.model(x_s, t) - x_s) / (1 - s_t)


class _NoDivide(EpsVelocity):
    """Planted bug: v = ε̂ - x_s (forgets the 1/(1 - s): that is not ε̂ - x̂0)."""

    def __call__(self, x_s, s):
        t = self.timestep(s)
        return self.model(x_s * self.scale[t].view(-1, 1), t) - x_s


@pytest.mark.parametrize("bug", ["no_rescale", "no_divide", "grid_off_by_one", "euler_sign"])
def test_planted_bugs_break_the_identity(gaussian, linear_schedule, bug: str) -> None:
    S, spacing = 10, "trailing"
    x_T = torch.randn(64, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    ddim = ddim_sample(gaussian, linear_schedule, x_T, steps=S, spacing=spacing, clip_x0=False)
    grid = flow_grid(linear_schedule, S, spacing)
    velocity = eps_to_velocity(gaussian, linear_schedule)
    x1 = _x_s(linear_schedule, x_T, spacing, S)
    if bug == "no_rescale":
        velocity = _NoRescale(gaussian, linear_schedule)
    elif bug == "no_divide":
        velocity = _NoDivide(gaussian, linear_schedule)
    elif bug == "grid_off_by_one":  # the s of t - 1 instead of t (still on the clock)
        ts = ddim_timesteps(1000, S, spacing)
        grid = torch.cat([s_of_abar(linear_schedule.alphas_cumprod[ts - 1]), torch.zeros(1, dtype=F64)])
    if bug == "euler_sign":
        out = x1
        for s, sn in zip(grid[:-1].tolist(), grid[1:].tolist()):
            out = out - (sn - s) * velocity(out, torch.full((64,), s, dtype=F64))
    else:
        out = flow_sample(velocity, x1, s_grid=grid)
    assert float((out - ddim).abs().max()) > 1e-3, bug


def test_sbar_difference_formula() -> None:
    """σ̄' - σ̄ = (s' - s)/((1 - s)(1 - s')), with σ̄ = s/(1 - s) = √(1-ᾱ)/√ᾱ."""
    abar = torch.linspace(0.01, 0.99, 50, dtype=F64)
    s, sbar = s_of_abar(abar), ((1 - abar) / abar).sqrt()
    assert float((s / (1 - s) - sbar).abs().max()) < 1e-13
    ds = (s[1:] - s[:-1]) / ((1 - s[1:]) * (1 - s[:-1]))
    assert float((ds - (sbar[1:] - sbar[:-1])).abs().max()) < 1e-12
    assert float(s_of_abar(1.0)) == 0.0 and float(s_of_abar(0.0)) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        s_of_abar(1.5)


# ---------------------------------------------------------------- Euler's order, calls, grids
def _fitted_slope(ns: list[int], errs: list[float]) -> float:
    return float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


def test_flow_sample_is_first_order_on_the_gaussian_flow() -> None:
    x1 = torch.randn(256, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    ns = [8, 16, 32, 64, 128]
    errs = [float((flow_sample(gaussian_velocity, x1, steps=n) - exact_flow(x1)).abs().max()) for n in ns]
    slope = _fitted_slope(ns, errs)
    assert -1.1 < slope < -0.9, (slope, errs)
    assert errs[-1] < errs[0] / 10 and errs[-1] < 0.1

    def wrong_s(x, s):  # planted: the velocity at the wrong noise level (s and 1 - s swapped)
        return gaussian_velocity(x, 1 - s)

    bad = [float((flow_sample(wrong_s, x1, steps=n) - exact_flow(x1)).abs().max()) for n in ns]
    assert min(bad) > 0.1 and _fitted_slope(ns, bad) > -0.5


def test_exact_calls_and_uniform_grid(counting) -> None:
    m = counting(gaussian_velocity)
    x1 = torch.randn(4, 3, dtype=F64)
    steps = list(flow_progressive(m, x1, steps=5))
    assert m.calls == 5 and np.allclose([st.s for st in steps], [1.0, 0.8, 0.6, 0.4, 0.2], rtol=0, atol=1e-15)
    assert steps[-1].s_next == 0.0 and all(float(t[0]) > 0 for t in m.ts)  # never called at s = 0
    m2 = counting(gaussian_velocity)
    flow_sample(m2, x1, s_grid=[0.9, 0.5, 0.3])
    assert m2.calls == 2 and [round(float(t[0]), 12) for t in m2.ts] == [0.9, 0.5]
    assert m2.ts[0].shape == (4,) and m2.ts[0].dtype == F64


def test_progressive_chains_and_matches_sample() -> None:
    x1 = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    steps = list(flow_progressive(gaussian_velocity, x1, steps=6))
    assert torch.equal(steps[-1].x, flow_sample(gaussian_velocity, x1, steps=6))
    for a, b in zip(steps[:-1], steps[1:]):
        assert a.s_next == b.s
    first = steps[0]  # x0_pred = x1 - 1·v(x1, 1) = E[x0 | x1] for the exact flow at s = 1: the mean
    assert float((first.x0_pred - MU).abs().max()) < 1e-12


def test_flow_grid_is_the_ddim_grid(linear_schedule) -> None:
    for spacing in SPACINGS:
        g = flow_grid(linear_schedule, 10, spacing)
        ts = ddim_timesteps(1000, 10, spacing)
        assert g.shape == (11,) and g[-1] == 0 and bool((g[1:] < g[:-1]).all())
        assert torch.equal(g[:-1], s_of_abar(linear_schedule.alphas_cumprod[ts]))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one of steps and s_grid"),
    ({"steps": 3, "s_grid": [1.0, 0.0]}, "exactly one of steps and s_grid"),
    ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
    ({"steps": 2.0}, r"steps must be an integer"),
    ({"steps": True}, r"steps must be an integer"),
    ({"s_grid": [1.0]}, "at least 2"),
    ({"s_grid": [0.2, 0.5, 0.0]}, "strictly decreasing"),
    ({"s_grid": [1.2, 0.0]}, r"in \[0, 1\]"),
    ({"s_grid": [float("nan"), 0.0]}, r"finite"),
])
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        flow_sample(gaussian_velocity, torch.zeros(2, 3, dtype=F64), **kwargs)


def test_bad_inputs_and_outputs(linear_schedule) -> None:
    with pytest.raises(ValueError, match="x1 must be finite"):
        flow_sample(gaussian_velocity, torch.tensor([[float("nan"), 0.0, 0.0]], dtype=F64), steps=2)
    with pytest.raises(ValueError, match="velocity output shape"):
        flow_sample(lambda x, s: x[:, :2], torch.zeros(2, 3, dtype=F64), steps=2)
    with pytest.raises(ValueError, match="velocity stopped being finite at s=1"):
        flow_sample(lambda x, s: x / 0.0 + float("inf"), torch.ones(2, 3, dtype=F64), steps=2)
    with pytest.raises(ValueError, match="x1 must have shape"):  # checked against the ε-model behind the velocity
        flow_sample(eps_to_velocity(_mlp(), linear_schedule), torch.zeros(2, 5, dtype=F64), steps=2)


def test_eps_velocity_refuses_s_off_its_clock(gaussian, linear_schedule) -> None:
    v = eps_to_velocity(gaussian, linear_schedule)
    table = s_of_abar(linear_schedule.alphas_cumprod)
    mid = float(table[500] + table[501]) / 2
    with pytest.raises(ValueError, match=r"nearest allowed: s=0\.\d+ \(t=500\), s=0\.\d+ \(t=501\)"):
        v(torch.zeros(2, 3, dtype=F64), torch.full((2,), mid, dtype=F64))
    with pytest.raises(ValueError, match=r"not on this ε-model's clock.*t=999"):
        flow_sample(v, torch.zeros(2, 3, dtype=F64), steps=4)  # s = 1 is pure noise: ᾱ = 0 is not a timestep
    s32 = torch.full((2,), float(table[123]), dtype=torch.float32)  # float32 round-off is still timestep 123
    assert v.timestep(s32).tolist() == [123, 123]


# ---------------------------------------------------------------- Euler in the wrong coordinates
def test_euler_in_t_is_not_ddim_but_the_same_ode(gaussian, linear_schedule, counting) -> None:
    """Euler in (t, x_t) takes other steps than DDIM on the same grid, and converges to the same ODE map."""
    x_T = torch.randn(256, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    exact = gaussian.ode_solution(x_T, float(linear_schedule.alphas_cumprod[-1]))
    m = counting(gaussian)
    xt10 = euler_xt_sample(m, linear_schedule, x_T, steps=10)
    assert m.calls == 10 and [int(t[0]) for t in m.ts] == ddim_timesteps(1000, 10).tolist()
    ddim10 = ddim_sample(gaussian, linear_schedule, x_T, steps=10, clip_x0=False)
    assert float((xt10 - ddim10).abs().max()) > 0.1  # not DDIM
    ns = [10, 100, 1000]  # (the integer clock sets a floor near 1000 steps, so no order is fitted here)
    errs = [float((euler_xt_sample(gaussian, linear_schedule, x_T, steps=n) - exact).abs().max()) for n in ns]
    assert errs[2] < errs[1] < errs[0] and errs[2] < 0.02 < errs[0] / 5, errs


# ---------------------------------------------------------------- diffusers
def test_matches_diffusers_flow_match_euler(gaussian, linear_schedule) -> None:
    """The same sigmas: diffusers' sigmas are our s (float32), its timesteps s·1000, its shift the identity at 1."""
    pytest.importorskip("diffusers")
    from diffusers import FlowMatchEulerDiscreteScheduler

    x_T = torch.randn(32, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float32)
    for spacing, S in [("trailing", 10), ("leading", 7), ("linspace", 25), ("logsnr", 5)]:
        grid = flow_grid(linear_schedule, S, spacing)
        v = eps_to_velocity(gaussian, linear_schedule)
        ds = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
        ds.set_timesteps(sigmas=grid[:-1].tolist())
        assert np.allclose(ds.sigmas.double().numpy(), grid.numpy(), rtol=0, atol=1e-7)  # it appends s = 0 itself
        x = _x_s(linear_schedule, x_T.double(), spacing, S).float()
        ours = flow_sample(v, x, s_grid=grid)
        for t in ds.timesteps:
            x = ds.step(v(x, (t / 1000).expand(x.shape[0])), t, x).prev_sample
        assert float((ours - x).abs().max()) < 1e-5 * max(1.0, float(ours.abs().max())), spacing
    ds = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    ds.set_timesteps(8)  # its default grid: linspace(1, 1/T, N), then 0, not linspace(1, 0, N + 1)
    assert np.allclose(ds.sigmas.numpy(), np.r_[np.linspace(1, 1e-3, 8), 0.0], atol=1e-6)
    assert not np.allclose(ds.sigmas.numpy(), np.linspace(1, 0, 9), atol=1e-3)
    shifted = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    shifted.set_timesteps(sigmas=[0.9, 0.5, 0.1])  # given sigmas still pass through its shift
    assert np.allclose(shifted.sigmas[:-1].numpy(), [3 * s / (1 + 2 * s) for s in (0.9, 0.5, 0.1)], atol=1e-6)


def test_uniform_grid_matches_diffusers_on_a_flow_model() -> None:
    pytest.importorskip("diffusers")
    from diffusers import FlowMatchEulerDiscreteScheduler

    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    ours = flow_sample(gaussian_velocity, x, steps=12)
    ds = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    ds.set_timesteps(sigmas=torch.linspace(1, 0, 13)[:-1].tolist())
    for t in ds.timesteps:
        x = ds.step(gaussian_velocity(x, (t / 1000).expand(x.shape[0])), t, x).prev_sample
    assert float((ours - x).abs().max()) < 1e-5 and float(ours.abs().max()) > 1


# ---------------------------------------------------------------- reflow's loss
def test_pair_flow_loss_is_zero_for_the_straight_velocity() -> None:
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(8))
    c = torch.tensor([0.3, -1.2])
    x1 = x0 + c  # every pair joined by the same straight segment: v = c exactly
    g = torch.Generator().manual_seed(0)
    assert float(pair_flow_loss(lambda x, s: c.expand_as(x), x0, x1, g)) < 1e-12
    wrong = float(pair_flow_loss(lambda x, s: -c.expand_as(x), x0, x1, g))  # planted: x0 - x1
    assert abs(wrong - float(((2 * c) ** 2).mean())) < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        pair_flow_loss(lambda x, s: x, x0, x1[:3], g)
