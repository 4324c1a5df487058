"""core.exact_gaussian: the exact ε of Gaussian data and its classifier-free guided form.

ε is checked against an independent computation, -√(1-ᾱ)·∇ log p_t by autograd of the Gaussian density of x_t,
and against a Monte Carlo posterior mean E[ε | x_t]; the guided form against ``cfg`` wrapped around a
class-conditional model built from the unguided one. Planted bugs (the data variance without its ᾱ factor, the
guidance scale read as w = scale - 1) fail the same checks.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import NoiseSchedule, cfg
from ddim_lesson.core.exact_gaussian import gaussian_eps, guided_gaussian_eps

F64 = torch.float64


def score_eps(x_t: torch.Tensor, abar: torch.Tensor, mean: float, var: float) -> torch.Tensor:
    """-√(1-ᾱ) ∇_x log N(x; √ᾱ mean, ᾱ var + 1 - ᾱ), by autograd (independent of the closed form)."""
    x = x_t.clone().requires_grad_(True)
    dist = torch.distributions.Normal(abar.sqrt() * mean, (abar * var + 1 - abar).sqrt())
    (grad,) = torch.autograd.grad(dist.log_prob(x).sum(), x)
    return -(1 - abar).sqrt() * grad


def test_gaussian_eps_is_minus_sigma_times_the_score() -> None:
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(64, 3, generator=g, dtype=F64) * 2
    abar = torch.rand(64, 1, generator=g, dtype=F64) * 0.98 + 0.01
    for mean, var in ((0.0, 1.0), (1.0, 0.25), (-2.0, 3.0)):
        want = score_eps(x_t, abar, mean, var)
        assert torch.allclose(gaussian_eps(x_t, abar, mean, var), want, rtol=1e-12, atol=1e-12)
        planted = (1 - abar).sqrt() * (x_t - abar.sqrt() * mean) / (var + 1 - abar)  # var without its ᾱ
        assert not torch.allclose(planted, want, rtol=1e-3, atol=1e-3)


def test_gaussian_eps_is_the_posterior_mean_of_the_noise() -> None:
    """Monte Carlo: draw (x0, ε), bin by x_t, and the mean ε in a bin is the closed form at its centre."""
    g = torch.Generator().manual_seed(1)
    a, mean, var = 0.3, 1.0, 0.25
    x0 = mean + math.sqrt(var) * torch.randn(2_000_000, generator=g, dtype=F64)
    eps = torch.randn(2_000_000, generator=g, dtype=F64)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    for centre in (-0.5, 0.5, 1.0):
        near = (x_t - centre).abs() < 0.01
        mc = float(eps[near].mean())
        exact = float(gaussian_eps(torch.tensor([[centre]], dtype=F64), torch.tensor([[a]], dtype=F64), mean, var))
        assert abs(mc - exact) < 0.02, (centre, mc, exact)


class TwoGaussians(torch.nn.Module):
    """model(x_t, t, y): class 0 is N(1, 0.25); label 1 ("no label") is N(0, 1); a conditional model cfg takes."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.abar = schedule.alphas_cumprod
        self.config = type("Config", (), {"num_classes": 1})()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1)
        return torch.where(y.view(-1, 1) == 0, gaussian_eps(x_t, a, 1.0, 0.25), gaussian_eps(x_t, a, 0.0, 1.0))


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0, -0.5])
def test_guided_gaussian_eps_is_cfg_of_the_two_exact_models(scale: float) -> None:
    schedule = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(2)
    x_t, t = torch.randn(32, 1, generator=g, dtype=F64), torch.randint(0, 1000, (32,), generator=g)
    want = cfg(TwoGaussians(schedule), 0, scale)(x_t, t)
    a = schedule.alphas_cumprod[t].view(-1, 1)
    got = guided_gaussian_eps(x_t, a, uncond=(0.0, 1.0), cond=(1.0, 0.25), scale=scale)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    if scale not in (1.0, 0.0):  # w = scale - 1 read as the scale: a planted bug
        planted = guided_gaussian_eps(x_t, a, uncond=(0.0, 1.0), cond=(1.0, 0.25), scale=scale - 1)
        assert not torch.allclose(planted, want, rtol=1e-3, atol=1e-3)


def test_bad_input_names_the_value_and_the_range() -> None:
    x, a = torch.zeros(2, 1, dtype=F64), torch.full((2, 1), 0.5, dtype=F64)
    with pytest.raises(ValueError, match=r"var must be a finite number .*got -1"):
        gaussian_eps(x, a, 0.0, -1.0)
    with pytest.raises(ValueError, match=r"abar_t .* \(0, 1\), got values from 0.5 to 1.0"):
        gaussian_eps(x, torch.tensor([[0.5], [1.0]], dtype=F64), 0.0, 1.0)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        guided_gaussian_eps(x, a, uncond=(0.0, 1.0), cond=(1.0, 0.25), scale=math.inf)
