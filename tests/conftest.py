"""Shared fixtures for the maths tests: schedules, an exact Gaussian noise predictor, a call counter.

Nothing here is autouse, so other test modules are unaffected unless they ask for a fixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from ddim_lesson import CallCounter, NoiseSchedule


class GaussianEps:
    """The exact noise predictor E[ε | x_t] for per-dimension Gaussian data x0 ~ N(mu, s²).

    With x_t = √ᾱ x0 + √(1-ᾱ) ε, the pair (ε, x_t) is jointly Gaussian with
    Cov(ε, x_t) = √(1-ᾱ), Var(x_t) = ᾱ s² + 1 - ᾱ and E[x_t] = √ᾱ mu, so

        E[ε | x_t] = √(1-ᾱ) (x_t - √ᾱ mu) / (ᾱ s² + 1 - ᾱ).

    Called as ``model(x_t, t)`` with x_t: (B, D) and t: (B,) int64; returns (B, D).
    """

    def __init__(self, schedule: NoiseSchedule, mu: torch.Tensor, s: torch.Tensor) -> None:
        self.abar = schedule.alphas_cumprod  # (T,) float64
        self.mu, self.s = mu, s  # (D,), (D,)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t[:1] if (t == t[0]).all() else t].view(-1, 1)  # (B, 1), or (1, 1) for a shared t
        mu, s = self.mu.to(x_t.dtype), self.s.to(x_t.dtype)
        return ((1 - a).sqrt() / (a * s**2 + 1 - a)).to(x_t.dtype) * (x_t - a.sqrt().to(x_t.dtype) * mu)

    def ode_solution(self, x_T: torch.Tensor, abar_T: float) -> torch.Tensor:
        """Exact probability-flow map x_T -> x0 (B, D) for x_T at noise level ᾱ_T.

        The marginal of x_t is N(√ᾱ_t mu, ᾱ_t s² + 1 - ᾱ_t) and the flow acts per dimension and
        is monotone, so it keeps the standard score z = (x_t - √ᾱ_t mu) / √(ᾱ_t s² + 1 - ᾱ_t).
        At ᾱ = 1 that gives x0 = mu + s·z (≈ mu + s·x_T when ᾱ_T ≈ 0).
        """
        z = (x_T - math.sqrt(abar_T) * self.mu) / torch.sqrt(abar_T * self.s**2 + 1 - abar_T)
        return self.mu + self.s * z


class CountingModel(CallCounter):
    """The package's :class:`CallCounter` (``calls``, ``timesteps``) that also keeps each call's whole t tensor
    in ``ts`` (its dtype and shape, and flow matching's fractional times, which ``timesteps`` rounds to int)."""

    def __init__(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__(model)
        self.ts: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        self.ts.append(t.clone())
        return super().__call__(x_t, t, *args)

    def reset(self) -> None:
        super().reset()
        self.ts = []


class CountedNet(nn.Module):
    """A package network (UNet or MLP) whose every forward call goes through :class:`CountingModel`, the package's
    CallCounter: ``calls``, ``counter.timesteps``, ``counter.ts``. It stays an ``nn.Module`` with the inner network's
    ``config``, so the runners that move, inspect or hash a network take it as they take the network itself."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.counter = CountingModel(inner)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return self.counter(x_t, t, *args)  # a label y, where there is one, passes through

    @property
    def calls(self) -> int:
        return self.counter.calls

    def reset(self) -> None:
        self.counter.reset()


def smooth_eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic, nonlinear, t-dependent stand-in for a network. x_t: (B, ...), t: (B,)."""
    tt = t.to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))  # (B, 1, ..., 1)
    return 0.8 * torch.sin(1.3 * x_t + tt / 137.0) + 0.1 * torch.tanh(x_t) * torch.cos(tt / 311.0)


@pytest.fixture(scope="session")
def linear_schedule() -> NoiseSchedule:
    """DDPM's linear schedule, T = 1000, β from 1e-4 to 0.02 (float64)."""
    return NoiseSchedule.linear(1000, 1e-4, 0.02)


@pytest.fixture(scope="session")
def gaussian(linear_schedule: NoiseSchedule) -> GaussianEps:
    """Exact ε predictor for 3-D data with means (0.5, -1, 2) and std (0.5, 1.5, 0.2)."""
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    s = torch.tensor([0.5, 1.5, 0.2], dtype=torch.float64)
    return GaussianEps(linear_schedule, mu, s)


@pytest.fixture
def counting() -> Callable[[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]], CountingModel]:
    """Factory: ``counting(model)`` returns a fresh :class:`CountingModel`."""
    return CountingModel


@pytest.fixture(scope="session")
def smooth_model() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return smooth_eps
