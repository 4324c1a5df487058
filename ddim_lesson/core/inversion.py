"""DDIM inversion (x0 -> x_T) and interpolation of Gaussian latents."""

from __future__ import annotations

import math

import torch

from .checks import check_eps_finite, check_int, check_model_input
from .samplers import Model
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps
from .updates import ddim_step

FIXED_POINT_ITERS_MAX = 100  # k re-predictions per step: a bound, so that a mistyped k cannot run for hours


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
    fixed_point_iters = check_int("fixed_point_iters", fixed_point_iters, 0, FIXED_POINT_ITERS_MAX)
    x0 = check_model_input(model, x0, name="x0")  # shape, dtype, device against a package model; finite
    ts = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule).flip(0).tolist()  # ascending
    B = x0.shape[0]
    x, abar_from = x0, 1.0
    for t in ts:
        abar_to = schedule.abar(t)
        t_b = torch.full((B,), t, dtype=torch.long, device=x0.device)  # (B,)
        eps = _eps(model, x, t_b, t)
        # eq. 12 with η = 0 read from ᾱ_from to ᾱ_to: x_to = √ᾱ_to·x0_pred + √(1-ᾱ_to)·eps
        x_to = invert_step(x, eps, abar_from, abar_to)
        for _ in range(fixed_point_iters):  # fixed point of x_to = step(x, eps(x_to, t))
            x_to = invert_step(x, _eps(model, x_to, t_b, t), abar_from, abar_to)
        x, abar_from = x_to, abar_to
    return x


def _eps(model: Model, x: torch.Tensor, t_b: torch.Tensor, t: int) -> torch.Tensor:
    """The model's ε at (x, t), checked on every call, the fixed-point iterations' included: a tensor of x's
    shape, finite. x: (B, ...), t_b: (B,)."""
    eps = model(x, t_b)
    if not isinstance(eps, torch.Tensor):
        raise ValueError(f"the model must return one tensor ε of x0's shape {tuple(x.shape)}, got "
                         f"{type(eps).__name__} (at timestep t={t})")
    if eps.shape != x.shape:
        raise ValueError(f"model output shape {tuple(eps.shape)} must equal x0 shape {tuple(x.shape)} (at timestep "
                         f"t={t})")
    check_eps_finite(eps, t)
    return eps


def invert_step(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """One DDIM inversion step (eq. 12 with η = 0, read upward) from ᾱ_from to ᾱ_to; x, eps: (B, ...)."""
    if abar_from >= 1.0:  # from clean data: x is x0 itself
        return math.sqrt(abar_to) * x + math.sqrt(1.0 - abar_to) * eps
    x_to, _ = ddim_step(x, eps, abar_from, abar_to)  # eq. 12 with η = 0, read from ᾱ_from up to ᾱ_to
    return x_to


def lerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1-α) z0 + α z1. z0 and z1: one shape (…), finite; α may be (K, 1, ..., 1).

    For independent Gaussian latents the result's norm shrinks (to ≈ 0.71 at α = 0.5).
    """
    _check_alpha(alpha)
    _check_pair(z0, z1)
    return (1 - alpha) * z0 + alpha * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle between z0 and z1 (per sample).

    z0, z1: (B, ...) or (...), one shape, finite. θ is the angle between the flattened vectors; the
    result is sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1, which keeps the norm of Gaussian latents.
    Falls back to lerp when z0 and z1 are (nearly) parallel or one is zero; opposite directions (θ = π, where
    no great circle is singled out and lerp would pass through 0) are refused.
    """
    _check_alpha(alpha)
    _check_pair(z0, z1)
    flat0 = z0.reshape(z0.shape[0], -1) if z0.ndim > 1 else z0.reshape(1, -1)  # (B, D)
    flat1 = z1.reshape(flat0.shape)
    norms = flat0.norm(dim=-1) * flat1.norm(dim=-1)  # (B,)
    cos = torch.where(norms > 0, (flat0 * flat1).sum(-1) / norms, 1.0)  # (B,); a zero latent: no angle, lerp
    opposite = cos < -1 + 1e-6  # θ within 1.4e-3 of π
    if bool(opposite.any()):
        raise ValueError(f"z0 and z1 point in opposite directions in rows {opposite.nonzero().flatten().tolist()} "
                         "(angle π): no single great circle joins them; allowed: angles below π")
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    shape = (-1,) + (1,) * (z0.ndim - 1) if z0.ndim > 1 else ()
    theta = theta.view(shape) if z0.ndim > 1 else theta.squeeze(0)
    sin = torch.sin(theta)
    alpha_t = torch.as_tensor(alpha, dtype=z0.dtype, device=z0.device)
    w0 = torch.where(sin.abs() > 1e-6, torch.sin((1 - alpha_t) * theta) / sin, 1 - alpha_t)
    w1 = torch.where(sin.abs() > 1e-6, torch.sin(alpha_t * theta) / sin, alpha_t)
    return w0 * z0 + w1 * z1


def _check_pair(z0: torch.Tensor, z1: torch.Tensor) -> None:
    """z0 and z1 of one shape (no broadcasting: a (3, 2) against a (2,) is a mistake), both finite."""
    if z0.shape != z1.shape:
        raise ValueError(f"z0 shape {tuple(z0.shape)} must equal z1 shape {tuple(z1.shape)}")
    for name, z in (("z0", z0), ("z1", z1)):
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name} holds NaN or inf; allowed: finite latents")


def _check_alpha(alpha: float | torch.Tensor) -> None:
    a = torch.as_tensor(alpha, dtype=torch.float64)
    if not torch.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
