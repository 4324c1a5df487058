"""One step of each sampler, pure: DDIM's eq. 12 (:func:`ddim_step`, as the paper writes it), DDPM's
posterior step (:func:`apply_step` on :func:`ddpm_coefs`), and the per-step coefficients that one
sampling call computes once (:class:`StepCoefs`). The loops that call them live in core/samplers.py.

x_t, eps, noise: (B, ...); ᾱ_t and ᾱ_prev are floats (ᾱ_prev = 1 on the final step: clean data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .checks import check_eta
from .forward import ddim_sigma, sigma_of_eta

VARIANCES = ("posterior", "beta")


@dataclass(frozen=True)
class StepCoefs:
    """Per-step scalars, computed once per sampling call.

    x0_pred = x/√ᾱ_t - √(1/ᾱ_t - 1)·eps, and the new sample is
    x_prev = c_x0·x0_pred + c_eps·eps + c_x·x + sigma·z.
    """

    abar_t: float
    abar_prev: float
    c_x0: float
    c_eps: float
    c_x: float
    sigma: float
    # derived once here, so the loop does no scalar maths (see apply_step)
    sqrt_1m_abar: float = field(init=False)
    inv_sqrt_abar: float = field(init=False)
    clip_c_x0: float = field(init=False)  # c_x0, c_x with eps re-derived from a clipped x0_pred folded in
    clip_c_x: float = field(init=False)

    def __post_init__(self) -> None:
        sqrt_abar, sqrt_1m_abar = math.sqrt(self.abar_t), math.sqrt(1.0 - self.abar_t)
        object.__setattr__(self, "sqrt_1m_abar", sqrt_1m_abar)
        object.__setattr__(self, "inv_sqrt_abar", 1.0 / sqrt_abar)
        fold = self.c_eps / sqrt_1m_abar if self.c_eps != 0.0 else 0.0
        object.__setattr__(self, "clip_c_x0", self.c_x0 - fold * sqrt_abar)
        object.__setattr__(self, "clip_c_x", self.c_x + fold)


def ddim_coefs(abar_t: float, abar_prev: float, eta: float) -> StepCoefs:
    """Coefficients of the DDIM update (eq. 12) with σ(η) from eq. 16."""
    return _coefs_of_sigma(abar_t, abar_prev, ddim_sigma(abar_t, abar_prev, eta))


def ddim_call_coefs(abar_t: list[float], abar_prev: list[float], eta: float) -> list[StepCoefs]:
    """``ddim_coefs`` of every step of one sampling call, η checked once here (not once per step)."""
    eta = check_eta(eta)
    return [_coefs_of_sigma(a, ap, sigma_of_eta(a, ap, eta)) for a, ap in zip(abar_t, abar_prev)]


def _coefs_of_sigma(abar_t: float, abar_prev: float, sigma: float) -> StepCoefs:
    c_eps = math.sqrt(max(1.0 - abar_prev - sigma**2, 0.0))  # "direction pointing to x_t"
    return StepCoefs(abar_t, abar_prev, math.sqrt(abar_prev), c_eps, 0.0, sigma)


def ddpm_coefs(abar_t: float, abar_prev: float, variance: str = "posterior") -> StepCoefs:
    """Coefficients of ancestral sampling with the posterior mean μ̃ (DDPM eq. 7).

    β = 1 - ᾱ_t/ᾱ_prev is the effective β of the (possibly strided) step. ``variance``
    "posterior" uses σ² = β̃ = (1-ᾱ_prev)/(1-ᾱ_t)·β; "beta" uses σ² = β (DDIM's σ̂).
    """
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; allowed: {', '.join(VARIANCES)}")
    beta = 1.0 - abar_t / abar_prev
    c_x0 = math.sqrt(abar_prev) * beta / (1.0 - abar_t)
    c_x = math.sqrt(1.0 - beta) * (1.0 - abar_prev) / (1.0 - abar_t)
    var = (1.0 - abar_prev) / (1.0 - abar_t) * beta if variance == "posterior" else beta
    sigma = math.sqrt(var) if abar_prev < 1.0 else 0.0  # no noise on the final step
    return StepCoefs(abar_t, abar_prev, c_x0, 0.0, c_x, sigma)


def apply_step(
    x_t: torch.Tensor, eps: torch.Tensor, c: StepCoefs, noise: torch.Tensor | None, clip_x0: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one update, its scalars folded. x_t, eps, noise: (B, ...). Returns (x_prev, x0_pred), both (B, ...).

    x_prev = c_x0·x0_pred + c_eps·eps + c_x·x_t + σ·z covers DDPM's posterior mean (c_x ≠ 0: :func:`ddpm_update`);
    the DDIM loop runs :func:`ddim_step` instead, and a test holds this form equal to it on DDIM's coefficients.

    With ``clip_x0`` the predicted x0 is clipped to [-1, 1] and eps is recomputed from it, so
    the step stays consistent (x_t = √ᾱ_t x0_pred + √(1-ᾱ_t) eps still holds).
    """
    x0_pred = torch.sub(x_t, eps, alpha=c.sqrt_1m_abar).mul_(c.inv_sqrt_abar)  # DDIM eq. 9 / DDPM eq. 15
    c_x0, c_eps, c_x = c.c_x0, c.c_eps, c.c_x
    if clip_x0:
        x0_pred = x0_pred.clamp_(-1.0, 1.0)
        # eps = (x_t - √ᾱ_t·x0_pred)/√(1-ᾱ_t), substituted into the update below: fewer kernels, same maths
        c_x0, c_eps, c_x = c.clip_c_x0, 0.0, c.clip_c_x
    x_prev = torch.mul(x0_pred, c_x0)  # DDIM eq. 12: √ᾱ_prev·x0_pred + √(1-ᾱ_prev-σ²)·eps + σ·z
    if c_eps != 0.0:
        x_prev = x_prev.add_(eps, alpha=c_eps)
    if c_x != 0.0:
        x_prev = x_prev.add_(x_t, alpha=c_x)
    if c.sigma > 0.0:
        if noise is None:
            raise ValueError(f"sigma={c.sigma:.3g} > 0 needs a noise tensor")
        x_prev = x_prev.add_(noise, alpha=c.sigma)
    return x_prev, x0_pred


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    abar_t: float | torch.Tensor,
    abar_prev: float | torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: bool = False,
    *,
    sigma: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from ᾱ_t to ᾱ_prev (eq. 12), written as the paper writes it. Pure.

    x_t, eps, noise: (B, ...). Returns (x_prev, x0_pred), both (B, ...). eta in [0, 1] (above 1,
    σ² > 1 - ᾱ_prev: refused, not clamped). ``noise`` is needed only when eta > 0 and ᾱ_prev < 1.
    With eta = 0 it is also the inversion step (ᾱ_prev < ᾱ_t). ``sigma``: σ_t itself, for a caller
    that computed every step's σ_t(η) once (the samplers' loop, which runs this very function with
    η checked once per call); then ``eta`` is not read.
    """
    if eps.shape != x_t.shape:
        raise ValueError(f"eps shape {tuple(eps.shape)} must equal x_t shape {tuple(x_t.shape)}")
    abar_t, abar_prev = float(abar_t), float(abar_prev)
    if sigma is None:
        sigma = ddim_sigma(abar_t, abar_prev, eta)  # eq. 16; checks eta and the ᾱ range
    elif not sigma >= 0.0:
        raise ValueError(f"sigma must be >= 0 (eq. 16 gives sigma_t >= 0), got {sigma}")
    x0_pred = (x_t - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)  # "predicted x0", eq. 9
    if clip_x0:  # keep the step consistent: re-derive eps from the clipped x0_pred
        x0_pred = x0_pred.clamp(-1.0, 1.0)
        eps = (x_t - math.sqrt(abar_t) * x0_pred) / math.sqrt(1.0 - abar_t)
    dir_xt = math.sqrt(max(1.0 - abar_prev - sigma**2, 0.0)) * eps  # "direction pointing to x_t"
    x_prev = math.sqrt(abar_prev) * x0_pred + dir_xt  # eq. 12 without its noise term
    if sigma > 0.0:
        if noise is None:
            raise ValueError(f"sigma={sigma:.3g} > 0 needs a noise tensor")
        x_prev = x_prev + sigma * noise  # eq. 12's "random noise" σ_t·ε_t
    return x_prev, x0_pred


Update = Callable[[torch.Tensor, torch.Tensor, StepCoefs, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


def ddim_update(clip_x0: bool) -> Update:
    """The DDIM loop's update ``(x_t, eps, c, noise) -> (x_prev, x0_pred)``: :func:`ddim_step` (eq. 12)
    with the step's ᾱ_t, ᾱ_prev and σ_t from its :class:`StepCoefs` (σ_t(η) computed once per call)."""
    def update(x_t: torch.Tensor, eps: torch.Tensor, c: StepCoefs,
               noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return ddim_step(x_t, eps, c.abar_t, c.abar_prev, noise=noise, clip_x0=clip_x0, sigma=c.sigma)
    return update


def ddpm_update(clip_x0: bool) -> Update:
    """The DDPM loop's update: :func:`apply_step` on the posterior's coefficients (:func:`ddpm_coefs`)."""
    def update(x_t: torch.Tensor, eps: torch.Tensor, c: StepCoefs,
               noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_step(x_t, eps, c, noise, clip_x0)
    return update
