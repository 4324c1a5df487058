"""Measuring the solver ladder: a Gaussian data set whose ODE is solved exactly, errors against
calls, fitted orders, and the error each step adds. Used by notebook 06 and its widget.

For data x0 ~ N(μ, s²) per dimension the ideal noise predictor and the probability-flow map are
closed forms, so a solver's error can be measured exactly, without a reference run.

Orders, measured rather than read off a name: :func:`scalar_errors` runs the multistep update itself on
dx/dλ = -x + D(λ) with a known D (no final jump, exact or the solver's own warm-up), and
:func:`last_timestep_errors` stops a run on Gaussian data at the grid's last timestep, before the
first-order jump to ᾱ = 1. :func:`fine_clock` is the linear schedule on a finer integer clock, which
removes the floor T = 1000's integer timesteps put under any order above 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.checks import check_choice
from ..core.samplers import Model
from ..core.schedules import NoiseSchedule
from ..core.solvers import D2_WEIGHT, multistep_update, ode_progressive, ode_sample


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


# --------------------------------------------------------------------------------------
# Orders, measured: the multistep update alone, and a run stopped before its final jump
# --------------------------------------------------------------------------------------
OMEGA = 1.0  # the test ODE's forcing frequency


def scalar_solution(lam: float, lam0: float = -3.0, x0: float = 1.0) -> float:
    """The exact solution of dx/dλ = -x + cos(ωλ), x(lam0) = x0: x_p(λ) + (x0 - x_p(lam0))·e^{-(λ - lam0)}, with the
    particular solution x_p(λ) = (cos ωλ + ω sin ωλ)/(1 + ω²)."""
    def xp(v: float) -> float:
        return (math.cos(OMEGA * v) + OMEGA * math.sin(OMEGA * v)) / (1 + OMEGA**2)

    return xp(lam) + (x0 - xp(lam0)) * math.exp(-(lam - lam0))


def scalar_errors(steps: Sequence[int], solver: str, warmup: str = "exact", lam0: float = -3.0,
                  lam1: float = 3.0) -> list[float]:
    """|x_N - x(lam1)| for dx/dλ = -x + D(λ), D = cos(ωλ) (an x̂0 that does not depend on x), N uniform steps in λ.

    Every step is :func:`~ddim_lesson.core.multistep.multistep_update` with three predictions and the second
    difference weighted as ``solver`` ("dpmpp_3m" or "dpmpp_3m_exact") weights it. ``warmup`` "exact" takes x at
    the first three grid points from the closed form, so only the three-point update is measured; "solver" runs
    the rungs' own first two steps (orders 1 and 2), whose O(h²) first step caps any multistep rung at order 2
    (damped here by e^{-(lam1 - lam0)}, so it shows only at many steps).
    """
    d2_weight = D2_WEIGHT[check_choice("solver", solver, D2_WEIGHT)]
    check_choice("warmup", warmup, ("exact", "solver"))
    out = []
    for n in steps:
        if n < 3:
            raise ValueError(f"steps must be >= 3 (two warm-up steps and one multistep update), got {n}")
        lams = [lam0 + (lam1 - lam0) * k / n for k in range(n + 1)]
        D = [torch.tensor([math.cos(OMEGA * v)], dtype=torch.float64) for v in lams]
        x = torch.tensor([1.0], dtype=torch.float64)
        for i in range(n):
            k = min(3, i + 1)
            if warmup == "exact" and i < 2:
                x = torch.tensor([scalar_solution(lams[i + 1], lam0)], dtype=torch.float64)
                continue
            x = multistep_update(x, D[i - k + 1:i + 1], lams[i - k + 1:i + 1], lams[i + 1], d2_weight)
        out.append(abs(float(x) - scalar_solution(lam1, lam0)))
    return out


def fine_clock(T: int = 20000) -> NoiseSchedule:
    """The course's linear schedule on a finer integer clock: T steps, β from 1e-4·1000/T to 0.02·1000/T, so ᾱ
    follows nearly the same curve in t/T while neighbouring timesteps are T/1000 times closer in λ."""
    return NoiseSchedule.linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T)


def last_timestep_errors(data: GaussianData, x_T: torch.Tensor, solver: str, steps: Sequence[int],
                         spacing: str = "logsnr") -> list[float]:
    """For each grid of N steps: the relative error of the state at the grid's last timestep t_{N-1} (after N - 1
    model calls), before the first-order jump to ᾱ = 1, against the exact flow of x_T (B, D) to that timestep."""
    abar = data.schedule.alphas_cumprod
    out = []
    for n in steps:
        walk = ode_progressive(data.eps, data.schedule, x_T, steps=n, solver=solver, spacing=spacing)
        for k, st in enumerate(walk):
            if k == n - 2:  # the step that lands on t_{N-1}
                exact = data.flow(x_T, float(abar[-1]), float(abar[st.t_prev]))
                out.append(rel_error(st.x, exact))
                break
    return out
