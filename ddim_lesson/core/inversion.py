"""DDIM inversion (x0 -> x_T) and interpolation of Gaussian latents."""

from __future__ import annotations

import math

import torch

from .checks import check_eps_finite, check_int, check_model_input
from .samplers import Model, ddim_step
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps


@torch.no_grad()
def ddim_invert(
    model: Model,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    steps: int = 50,
    spacing: str = DEFAULT_SPACING,
    fixed_point_iters: int = 0,
) -> torch.Tensor:
    """Encode x0 into x_T by running the η = 0 DDIM update backwards. x0: (B, ...) -> (B, ...).

    The timesteps are those ``ddim_sample`` uses, in ascending order. Going from level t_prev
    (ᾱ = 1 at the start) up to t, eps is predicted at (x_{t_prev}, t): the model is asked at the
    timestep that the matching sampling step uses, and x_{t_prev} stands in for the unknown
    x_t. This costs exactly ``steps`` model calls, and the error of the stand-in shrinks as
    the steps get smaller, so ``ddim_sample(invert(x0))`` reconstructs x0 better with more steps.

    ``fixed_point_iters`` = k > 0 removes the stand-in: each step then re-predicts eps at its own
    estimate of x_t, k times (x_t ← step(x_{t_prev}, eps(x_t, t))), so that the sampling step from
    x_t, which uses eps(x_t, t), lands back on x_{t_prev}. Cost: exactly steps·(1 + k) model calls.
    """
    fixed_point_iters = check_int("fixed_point_iters", fixed_point_iters, 0)
    x0 = check_model_input(model, x0, name="x0")  # shape, dtype, device against a package model; finite
    ts = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule).flip(0).tolist()  # ascending
    B = x0.shape[0]
    x, abar_from = x0, 1.0
    for t in ts:
        abar_to = schedule.abar(t)
        eps = model(x, torch.full((B,), t, dtype=torch.long, device=x0.device))
        if eps.shape != x.shape:
            raise ValueError(f"model output shape {tuple(eps.shape)} must equal x0 shape {tuple(x.shape)}")
        check_eps_finite(eps, t)
        # eq. 12 with η = 0 read from ᾱ_from to ᾱ_to: x_to = √ᾱ_to·x0_pred + √(1-ᾱ_to)·eps
        x_to = _invert_step(x, eps, abar_from, abar_to)
        for _ in range(fixed_point_iters):  # fixed point of x_to = step(x, eps(x_to, t))
            eps = model(x_to, torch.full((B,), t, dtype=torch.long, device=x0.device))
            check_eps_finite(eps, t)
            x_to = _invert_step(x, eps, abar_from, abar_to)
        x, abar_from = x_to, abar_to
    return x


def _invert_step(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    if abar_from >= 1.0:  # from clean data: x is x0 itself
        return math.sqrt(abar_to) * x + math.sqrt(1.0 - abar_to) * eps
    x_to, _ = ddim_step(x, eps, abar_from, abar_to)  # eq. 12 with η = 0, read from ᾱ_from up to ᾱ_to
    return x_to


def lerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1-α) z0 + α z1. Shapes (…) broadcast; α may be (K, 1, ..., 1).

    For independent Gaussian latents the result's norm shrinks (to ≈ 0.71 at α = 0.5).
    """
    _check_alpha(alpha)
    return (1 - alpha) * z0 + alpha * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle between z0 and z1 (per sample).

    z0, z1: (B, ...) or (...). θ is the angle between the flattened vectors; the result is
    sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1, which keeps the norm of Gaussian latents.
    Falls back to lerp when z0 and z1 are (nearly) parallel.
    """
    _check_alpha(alpha)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 shape {tuple(z0.shape)} must equal z1 shape {tuple(z1.shape)}")
    flat0 = z0.reshape(z0.shape[0], -1) if z0.ndim > 1 else z0.reshape(1, -1)  # (B, D)
    flat1 = z1.reshape(flat0.shape)
    cos = (flat0 * flat1).sum(-1) / (flat0.norm(dim=-1) * flat1.norm(dim=-1))  # (B,)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    shape = (-1,) + (1,) * (z0.ndim - 1) if z0.ndim > 1 else ()
    theta = theta.view(shape) if z0.ndim > 1 else theta.squeeze(0)
    sin = torch.sin(theta)
    alpha_t = torch.as_tensor(alpha, dtype=z0.dtype, device=z0.device)
    w0 = torch.where(sin.abs() > 1e-6, torch.sin((1 - alpha_t) * theta) / sin, 1 - alpha_t)
    w1 = torch.where(sin.abs() > 1e-6, torch.sin(alpha_t * theta) / sin, alpha_t)
    return w0 * z0 + w1 * z1


def _check_alpha(alpha: float | torch.Tensor) -> None:
    a = torch.as_tensor(alpha, dtype=torch.float64)
    if not torch.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
