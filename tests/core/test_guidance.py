"""Classifier-free guidance, SDEdit and fixed-point inversion: algebra, call counts, closed forms, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import GaussianEps
from torch import nn

from ddim_lesson import cfg, ddim_invert, ddim_sample, q_sample, sdedit
from ddim_lesson.core.guidance import sdedit_timestep
from ddim_lesson.nets.models import UNet, UNetConfig


class ToyConditional(nn.Module):
    """A nonlinear conditional ε model on (B, D): each label shifts and scales the output differently.

    Records the batch size of every call. The label ``num_classes`` ("no label") gets its own row too.
    """

    def __init__(self, num_classes: int = 4, dim: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.shift = nn.Parameter(torch.randn(num_classes + 1, dim, generator=g, dtype=torch.float64))
        self.gain = nn.Parameter(1 + 0.3 * torch.rand(num_classes + 1, 1, generator=g, dtype=torch.float64))
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        tt = t.to(x.dtype)[:, None] / 1000
        return self.gain[y] * torch.sin(1.3 * x + tt) + self.shift[y] * (1 - tt)


@pytest.fixture
def toy():
    return ToyConditional()


def test_cfg_scale_0_is_unconditional_and_1_conditional(toy):
    x, t, y = torch.randn(5, 3, dtype=torch.float64), torch.full((5,), 300), torch.tensor([0, 1, 2, 3, 1])
    null = torch.full((5,), 4)
    with torch.no_grad():
        torch.testing.assert_close(cfg(toy, y, 0.0, num_classes=4)(x, t), toy(x, t, null), atol=1e-12, rtol=0)
        torch.testing.assert_close(cfg(toy, y, 1.0, num_classes=4)(x, t), toy(x, t, y), atol=1e-12, rtol=0)
        # the "no label" token itself is allowed, and then guidance has nothing to push: every scale is ε_uncond
        torch.testing.assert_close(cfg(toy, 4, 7.0, num_classes=4)(x, t), toy(x, t, null), atol=1e-12, rtol=0)


def test_cfg_is_linear_in_the_scale_with_the_ho_salimans_form(toy):
    x, t, y = torch.randn(4, 3, dtype=torch.float64), torch.full((4,), 700), torch.tensor([2, 2, 0, 3])
    with torch.no_grad():
        e_c, e_u = toy(x, t, y), toy(x, t, torch.full((4,), 4))
        out = {s: cfg(toy, y, s, num_classes=4)(x, t) for s in (-1.0, 0.5, 2.0, 3.0, 7.5)}
    # second differences vanish: linear in the scale
    torch.testing.assert_close(out[3.0] - out[2.0], (out[7.5] - out[3.0]) / 4.5, atol=1e-12, rtol=0)
    torch.testing.assert_close(out[0.5] - out[-1.0], 1.5 * (out[3.0] - out[2.0]), atol=1e-12, rtol=0)
    w = 2.0  # Ho & Salimans eq. 6: (1 + w)·ε_c − w·ε_u is our scale 1 + w
    torch.testing.assert_close(out[3.0], (1 + w) * e_c - w * e_u, atol=1e-12, rtol=0)


def test_cfg_costs_one_batched_forward_of_2b_per_call(toy, linear_schedule):
    guided = cfg(toy, 1, 3.0, num_classes=4)
    ddim_sample(guided, linear_schedule, torch.randn(6, 3, dtype=torch.float64), steps=7, clip_x0=False)
    assert toy.batches == [12] * 7


def test_cfg_on_a_conditional_unet_reads_num_classes_from_its_config():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_classes=3)).eval()
    with torch.no_grad():  # trained-looking weights: the zero-initialised head and label embedding would hide y
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([500, 500])
    with torch.no_grad():
        g = cfg(net, torch.tensor([0, 2]), 2.0)(x, t)
        e_c, e_u = net(x, t, torch.tensor([0, 2])), net(x, t, torch.tensor([3, 3]))
    torch.testing.assert_close(g, e_u + 2.0 * (e_c - e_u), atol=1e-5, rtol=0)
    assert (e_c - e_u).abs().max() > 1e-3  # the labels do change the output


@pytest.mark.parametrize("y", [-1, 5, torch.tensor([0, 5]), torch.tensor([-1, 0])])
def test_cfg_refuses_labels_outside_0_num_classes(toy, y):
    with pytest.raises(ValueError, match=r"label .*\[0, 4\]"):
        cfg(toy, y, 2.0, num_classes=4)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -math.inf, "2", True])
def test_cfg_refuses_a_non_finite_scale(toy, scale):
    with pytest.raises(ValueError, match="scale must be a finite number"):
        cfg(toy, 0, scale, num_classes=4)


def test_cfg_refuses_an_unconditional_model_and_a_float_label(linear_schedule):
    with pytest.raises(ValueError, match="this model is not class-conditional"):
        cfg(UNet(UNetConfig(base_channels=8, channel_mults=(1, 2))), 0, 1.0)
    with pytest.raises(ValueError, match="int64"):
        cfg(ToyConditional(), torch.tensor([0.0, 1.0]), 1.0, num_classes=4)


# -- SDEdit ---------------------------------------------------------------------------------
def test_sdedit_at_strength_1_is_ddim_sampling_from_the_same_seeded_noise(gaussian, linear_schedule):
    x0 = torch.randn(8, 3, dtype=torch.float64)
    for eta in (0.0, 0.5):
        out = sdedit(gaussian, linear_schedule, x0, strength=1.0, steps=10, eta=eta, clip_x0=False,
                     generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        x_T = q_sample(x0, torch.full((8,), 999), linear_schedule, noise=noise)
        ref = ddim_sample(gaussian, linear_schedule, x_T, steps=10, eta=eta, clip_x0=False, generator=g)
        torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_sdedit_returns_its_input_as_strength_goes_to_0(gaussian, linear_schedule):
    x0 = gaussian.mu + gaussian.s * torch.randn(64, 3, dtype=torch.float64)  # data from the model's own law
    errs, noise_std = [], []
    for strength in (0.3, 0.1, 0.03, 0.01, 0.001):
        out = sdedit(gaussian, linear_schedule, x0, strength=strength, steps=1, clip_x0=False,
                     generator=torch.Generator().manual_seed(0))
        errs.append(float((out - x0).pow(2).mean().sqrt()))
        noise_std.append(math.sqrt(1 - linear_schedule.abar(sdedit_timestep(1000, strength))))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    # the edit moves x0 by less than the noise it added (the denoiser removes part of it), and that goes to 0
    assert all(e < s for e, s in zip(errs, noise_std)), (errs, noise_std)  # measured 0.015 vs 0.017 at the end
    assert errs[-1] < 0.02 and errs[0] > 30 * errs[-1], errs


def test_sdedit_costs_exactly_steps_calls_from_t0_down(gaussian, linear_schedule, counting):
    m = counting(gaussian)
    sdedit(m, linear_schedule, torch.zeros(2, 3, dtype=torch.float64), strength=0.5, steps=6,
           generator=torch.Generator().manual_seed(0))
    ts = [int(t[0]) for t in m.ts]
    assert m.calls == 6 and ts[0] == sdedit_timestep(1000, 0.5) == 500 and ts == sorted(set(ts), reverse=True)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.01, float("nan"), "0.5"])
def test_sdedit_refuses_a_strength_outside_0_1(gaussian, linear_schedule, strength):
    with pytest.raises(ValueError, match=r"strength must be a finite number in \(0.0, 1.0\]"):
        sdedit(gaussian, linear_schedule, torch.zeros(1, 3), strength=strength, steps=1)


def test_sdedit_refuses_more_steps_than_timesteps_below_t0(gaussian, linear_schedule):
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 11\].*t0 = 10"):
        sdedit(gaussian, linear_schedule, torch.zeros(1, 3), strength=0.01, steps=12)


# -- fixed-point inversion -------------------------------------------------------------------
def _roundtrip_error(model, schedule, x0, steps, k):
    x_T = ddim_invert(model, schedule, x0, steps=steps, fixed_point_iters=k)
    x_rec = ddim_sample(model, schedule, x_T, steps=steps, clip_x0=False)
    return float((x_rec - x0).pow(2).mean().sqrt())


def test_fixed_point_inversion_error_falls_toward_0_on_the_gaussian_closed_form(gaussian, linear_schedule):
    x0 = gaussian.mu + gaussian.s * torch.randn(256, 3, generator=torch.Generator().manual_seed(1),
                                                dtype=torch.float64)
    ks = (0, 1, 2, 3, 6, 12, 24, 48)
    errs = [_roundtrip_error(gaussian, linear_schedule, x0, 10, k) for k in ks]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    # measured: 0.25, 0.10, 0.054, 0.032, 0.011, 0.0017, 4.7e-5, <1e-7. The iteration contracts slowly at the
    # top step, where x_T ≈ ε and the exact ε(x_t) of wide data has slope ≈ 1 in x_t
    assert errs[0] > 0.1 and errs[1] < 0.5 * errs[0] and errs[-1] < 1e-6, errs


def test_fixed_point_inversion_costs_steps_times_1_plus_k(gaussian, linear_schedule, counting):
    for k in (0, 1, 3):
        m = counting(gaussian)
        ddim_invert(m, linear_schedule, torch.zeros(2, 3, dtype=torch.float64), steps=5, fixed_point_iters=k)
        ts = [int(t[0]) for t in m.ts]
        assert m.calls == 5 * (1 + k)
        assert ts == sorted(ts) and len(set(ts)) == 5  # each step's k extra calls stay at that step's t


class GaussianClasses(nn.Module):
    """Exact ε for class-conditional Gaussian data: class y ~ N(mu_y, 0.3²), "no label" ~ N(0, 1.2²)."""

    def __init__(self, schedule) -> None:
        super().__init__()
        mus = torch.tensor([[1.0, -1.0, 0.5], [-1.0, 0.5, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
        sds = torch.tensor([0.3, 0.3, 1.2], dtype=torch.float64)
        self.exact = [GaussianEps(schedule, mu, sd.expand(3)) for mu, sd in zip(mus, sds)]

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.exact[int(label)](xi[None], ti[None])[0] for xi, ti, label in zip(x, t, y)])


def test_guidance_breaks_plain_inversion_and_the_fixed_point_repairs_it(linear_schedule):
    """Exact class-conditional Gaussians: the plain round trip gets worse as the scale grows; with small
    enough steps the fixed point still retraces the sampling path; with big steps and strong guidance the
    iteration stops contracting and diverges (the course's notebook measures where, on the real model)."""
    exact = GaussianClasses(linear_schedule)
    x0 = exact.exact[0].mu + 0.3 * torch.randn(32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def err(scale, steps, k):
        return _roundtrip_error(cfg(exact, 0, scale, num_classes=2), linear_schedule, x0, steps, k)

    plain = [err(w, 50, 0) for w in (1.0, 2.0, 3.0)]  # measured 0.047, 0.11, 0.18
    fixed = [err(w, 50, 3) for w in (1.0, 2.0, 3.0)]  # measured 6e-5, 7e-4, 5e-3
    assert plain[0] < plain[1] < plain[2], plain
    assert all(f < 0.05 * p for f, p in zip(fixed, plain)), (plain, fixed)
    assert err(3.0, 10, 6) > 10 * err(3.0, 10, 1)  # measured 5.8 vs 0.19: S = 10 is too coarse at scale 3


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_fixed_point_iters_must_be_a_non_negative_integer(gaussian, linear_schedule, k):
    with pytest.raises(ValueError, match=r"fixed_point_iters must be an integer in \[0, 100\]"):
        ddim_invert(gaussian, linear_schedule, torch.zeros(1, 3), steps=5, fixed_point_iters=k)
