"""Measuring the solver ladder: a Gaussian data set whose ODE is solved exactly, errors against
calls, fitted orders, and the error each step adds. Used by notebook 06 and its widget.

For data x0 ~ N(μ, s²) per dimension the ideal noise predictor and the probability-flow map are
closed forms, so a solver's error can be measured exactly, without a reference run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.samplers import Model
from ..core.schedules import NoiseSchedule
from ..core.solvers import ode_progressive, ode_sample


@dataclass(frozen=True)
class GaussianData:
    """x0 ~ N(mu, s²) per dimension, under ``schedule``. mu, s: (D,) float64."""

    schedule: NoiseSchedule
    mu: torch.Tensor
    s: torch.Tensor

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact E[ε | x_t] = √(1-ᾱ)(x_t - √ᾱ μ)/(ᾱ s² + 1 - ᾱ): a model(x_t, t). x_t: (B, D), t: (B,)."""
        a = self.schedule.alphas_cumprod[t].view(-1, 1).to(x_t.dtype)  # (B, 1)
        mu, s = self.mu.to(x_t.dtype), self.s.to(x_t.dtype)
        return (1 - a).sqrt() / (a * s**2 + 1 - a) * (x_t - a.sqrt() * mu)

    def flow(self, x: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
        """The exact probability-flow map from noise level ᾱ_from to ᾱ_to (per dimension it keeps the
        standard score z = (x - √ᾱ μ)/√(ᾱ s² + 1 - ᾱ)). x: (B, D) -> (B, D)."""
        z = (x - math.sqrt(abar_from) * self.mu) / torch.sqrt(abar_from * self.s**2 + 1 - abar_from)
        return math.sqrt(abar_to) * self.mu + torch.sqrt(abar_to * self.s**2 + 1 - abar_to) * z

    def solution(self, x_T: torch.Tensor) -> torch.Tensor:
        """The exact x0 for x_T at t = T-1. (B, D) -> (B, D)."""
        return self.flow(x_T, float(self.schedule.alphas_cumprod[-1]), 1.0)


def gaussian_data(schedule: NoiseSchedule) -> GaussianData:
    """The 3-D Gaussian of the tests: means (0.5, -1, 2), standard deviations (0.5, 1.5, 0.2)."""
    return GaussianData(schedule, torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64),
                        torch.tensor([0.5, 1.5, 0.2], dtype=torch.float64))


def rel_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """‖x - ref‖ / ‖ref‖ over the whole batch."""
    return float((x.double() - ref.double()).norm() / ref.double().norm())


def errors_vs_calls(model: Model, schedule: NoiseSchedule, x_T: torch.Tensor, reference: torch.Tensor, solver: str,
                    spacing: str, calls: Sequence[int]) -> list[float]:
    """Relative error against ``reference`` (B, ...) of ``solver`` at each count of model calls."""
    return [rel_error(ode_sample(model, schedule, x_T, steps=c, solver=solver, spacing=spacing), reference)
            for c in calls]


def fitted_order(calls: Sequence[int], errors: Sequence[float]) -> float:
    """The order p in error ∝ calls^(-p), fitted by least squares in log-log."""
    return -float(np.polyfit(np.log(np.asarray(calls, float)), np.log(np.asarray(errors, float)), 1)[0])


@dataclass(frozen=True)
class StepErrors:
    """Along one run on Gaussian data: for step k, from t to t_prev."""

    log_snr: list[float]  # (N,) log-SNR at the end of each step (+inf for the last: ᾱ = 1, shown as the end)
    local: list[float]  # (N,) ‖x_k+1 - Φ(x_k)‖/‖x0‖: what step k added, Φ the exact flow over that step
    global_: list[float]  # (N,) ‖x_k+1 - exact(t_k+1)‖/‖x0‖: the error carried so far


def step_errors(data: GaussianData, x_T: torch.Tensor, *, steps: int, solver: str, spacing: str) -> StepErrors:
    """Split one run's error by step: each step's own error, applied to the state the solver had."""
    abar = data.schedule.alphas_cumprod
    x0 = data.solution(x_T)
    scale = float(x0.norm())
    x, lsnr, local, glob = x_T, [], [], []
    for st in ode_progressive(data.eps, data.schedule, x_T, steps=steps, solver=solver, spacing=spacing):
        a, ap = float(abar[st.t]), (1.0 if st.t_prev < 0 else float(abar[st.t_prev]))
        local.append(float((st.x - data.flow(x, a, ap)).norm()) / scale)
        glob.append(float((st.x - data.flow(x_T, float(abar[-1]), ap)).norm()) / scale)
        lsnr.append(math.log(ap / (1 - ap)) if ap < 1 else math.inf)
        x = st.x
    return StepErrors(lsnr, local, glob)
