"""The forward (noising) processes: DDPM's q(x_t | x_0), its posterior, and DDIM's q_σ.

All functions take ᾱ from a :class:`NoiseSchedule` and broadcast over a batch (B, ...).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .checks import check_eta, check_float  # check_eta's home is core.checks; it stays importable from here too
from .schedules import NoiseSchedule


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather values[t] for a (B,) LongTensor t and reshape to (B, 1, ..., 1) like ``like``."""
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must have shape ({like.shape[0]},), got {tuple(t.shape)}")
    if (t < 0).any() or (t >= values.numel()).any():
        raise ValueError(f"timesteps must be in [0, {values.numel() - 1}], got {t.tolist()}")
    v = values.to(like.device)[t.to(like.device)].to(like.dtype)  # (B,)
    return v.view(-1, *([1] * (like.ndim - 1)))  # (B, 1, ..., 1)


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I)  (DDPM eq. 4, DDIM eq. 4).

    x0: (B, ...) real floating, finite; t: (B,) int64; noise: like x0 or None. Returns x_t shaped like x0.
    """
    _check_real_finite("x0", x0)
    if noise is None:
        noise = randn_like_on(x0, generator)
    if noise.shape != x0.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} must equal x0 shape {tuple(x0.shape)}")
    _check_real_finite("noise", noise)
    abar = _per_sample(schedule.alphas_cumprod, t, x0)  # (B, 1, ..., 1)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def _check_real_finite(name: str, x: torch.Tensor) -> None:
    """A real floating tensor with no NaN or inf (one sum and one read unless the sum is not finite)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a real floating tensor, got {got}")
    if not math.isfinite(float(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or inf; allowed: finite values")


def q_step(x_prev: torch.Tensor, t: int, schedule: NoiseSchedule, noise: torch.Tensor) -> torch.Tensor:
    """One step of the Markov forward process q(x_t | x_{t-1}) = N(√(1-β_t) x_{t-1}, β_t I) (DDPM eq. 2)."""
    beta = float(schedule.betas[t])
    return math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * noise


def q_posterior(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) (DDPM eq. 6-7).

    μ̃ = √ᾱ_{t-1} β_t/(1-ᾱ_t) x_0 + √α_t (1-ᾱ_{t-1})/(1-ᾱ_t) x_t,   β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t,
    with ᾱ_{-1} = 1. x0, x_t: (B, ...); t: (B,). Returns (mean like x_t, variance (B, 1, ..., 1)).
    """
    abar = schedule.alphas_cumprod
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    beta = _per_sample(schedule.betas, t, x_t)
    a_t = _per_sample(abar, t, x_t)
    a_prev = _per_sample(abar_prev, t, x_t)
    mean = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x_t
    var = (1 - a_prev) / (1 - a_t) * beta
    return mean, var


def ddim_sigma(abar_t: float, abar_prev: float, eta: float) -> float:
    """σ_t(η) = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_prev)  (DDIM eq. 16).

    η = 0 gives DDIM; η = 1 gives DDPM's posterior standard deviation √β̃.
    """
    return sigma_of_eta(abar_t, abar_prev, check_eta(eta))


def sigma_of_eta(abar_t: float, abar_prev: float, eta: float) -> float:
    """σ_t(η) of eq. 16 for an η already checked by ``check_eta`` (once, where a sampler call enters).

    The ᾱ pair is still checked here; :func:`ddim_sigma` is the same with η checked too.
    """
    if not (0.0 < abar_t < 1.0 and 0.0 < abar_prev <= 1.0):
        raise ValueError(f"need 0 < abar_t < 1 and 0 < abar_prev <= 1, got {abar_t}, {abar_prev}")
    if eta == 0:
        return 0.0
    if abar_prev < abar_t:
        raise ValueError(f"eta > 0 needs abar_prev >= abar_t (a denoising step), got {abar_prev} < {abar_t}")
    return eta * math.sqrt((1 - abar_prev) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_prev)


def sigma_bar(abar: float | np.floating | torch.Tensor) -> float:
    """σ̄ = √(1-ᾱ)/√ᾱ, the noise level of the probability-flow ODE in x̄ = x/√ᾱ (DDIM eq. 14); so ᾱ = 1/(1+σ̄²).

    abar: one number in (0, 1]: a Python or numpy real, or a 0-d tensor such as ``schedule.alphas_cumprod[999]``
    (taken with float()); bools, strings and tensors with more than one entry are refused. σ̄ = 0 at ᾱ = 1
    (clean data), and it grows without bound as ᾱ -> 0.
    """
    a = check_float("abar", abar, 0, 1, lo_open=True)
    return math.sqrt(1 - a) / math.sqrt(a)


def q_sigma_step(
    x_t: torch.Tensor, x0: torch.Tensor, abar_t: float, abar_prev: float, sigma: float, noise: torch.Tensor
) -> torch.Tensor:
    """Draw x_{t-1} ~ q_σ(x_{t-1} | x_t, x_0), DDIM's non-Markovian forward process (eq. 7).

    mean = √ᾱ_prev x_0 + √(1-ᾱ_prev-σ²) (x_t - √ᾱ_t x_0)/√(1-ᾱ_t), variance σ². Shapes like x_t.
    """
    if sigma**2 > 1 - abar_prev + 1e-12:
        raise ValueError(f"sigma={sigma} too large: need sigma^2 <= 1 - abar_prev = {1 - abar_prev}")
    direction = (x_t - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
    mean = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * direction
    return mean + sigma * noise


def randn_like_on(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the generator's device then moved to x's."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
