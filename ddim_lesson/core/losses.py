"""The training objectives, as pure tensor maths: what one batch's loss is.

- :func:`diffusion_loss`: ε-prediction MSE on the discrete DDPM clock (DDPM eq. 14).
- :func:`flow_matching_loss`: velocity MSE on the rectified-flow path x_s = (1 - s) x0 + s ε,
  v = ε - x0, s uniform in [0, 1] (Liu et al. 2023; Lipman et al. 2023). With
  s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)) this is the same path the DDPM forward process walks, rescaled
  (x_s = x_t / (√ᾱ + √(1-ᾱ))), so the two objectives differ in what is predicted and in how the
  noise levels are drawn, not in the path.
- :func:`theorem1_weights`: the weights γ_t of DDIM's Theorem 1 (J_σ = L_γ + C), per step, for an η > 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .checks import check_float
from .forward import ddim_sigma, q_sample
from .schedules import NoiseSchedule

__all__ = ["OBJECTIVES", "diffusion_loss", "flow_matching_loss", "theorem1_weights"]

OBJECTIVES = ("eps", "flow")  # what TrainConfig.objective may name


def diffusion_loss(model: Callable[..., torch.Tensor], x0: torch.Tensor, schedule: NoiseSchedule,
                   g: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
    """ε-prediction MSE (DDPM eq. 14): ||ε - ε_θ(√ᾱ_t x0 + √(1-ᾱ_t) ε, t[, y])||². x0: (B, ...), y: (B,)."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g).to(x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)  # (B, ...)
    x_t = q_sample(x0, t, schedule, noise=eps)
    eps_pred = model(x_t, t) if y is None else model(x_t, t, y)
    return F.mse_loss(eps_pred.float(), eps.float())


def flow_matching_loss(model: Callable[..., torch.Tensor], x0: torch.Tensor, schedule: NoiseSchedule | None,
                       g: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
    """Velocity MSE ||(ε - x0) - v_θ((1 - s) x0 + s ε, s[, y])||², s ~ U[0, 1]. x0: (B, ...), y: (B,).

    Uniform s is rectified flow's own choice (Liu et al. 2023); it puts as many draws near the data
    (s → 0) as near the noise, where DDPM's uniform t puts most of its draws at high noise. The model
    gets s as a float tensor (B,) in [0, 1]. ``schedule`` is unused: flow matching has no discrete clock.
    """
    b = x0.shape[0]
    s = torch.rand((b,), generator=g).to(x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)  # (B, ...)
    s_ = s.to(x0.dtype).view(b, *([1] * (x0.ndim - 1)))  # (B, 1, ...)
    x_s = (1 - s_) * x0 + s_ * eps  # the straight path from data (s = 0) to noise (s = 1)
    v_pred = model(x_s, s) if y is None else model(x_s, s, y)
    return F.mse_loss(v_pred.float(), (eps - x0).float())


def theorem1_weights(abar: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM's Theorem 1: the weights γ_t with J_σ = Σ_t γ_t E‖ε_θ - ε‖² + C, and the step variances σ_t²(η).

    Each term of J_σ is KL(q_σ(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)): two Gaussians of variance σ_t² whose means
    (eq. 7) differ only through x_0 - f_θ = √(1-ᾱ_t)/√ᾱ_t (ε_θ - ε) (eq. 9), times c_t, the x_0-coefficient of eq. 7's
    mean: c_t = √ᾱ_{t-1} - √(1-ᾱ_{t-1}-σ_t²) √ᾱ_t/√(1-ᾱ_t). So γ_t = c_t² (1-ᾱ_t) / (2 σ_t² ᾱ_t).
    η = 1 gives DDPM's weights β_t² / (2 β̃_t α_t (1-ᾱ_t)).

    abar: (T,) ᾱ in code indexing (``schedule.alphas_cumprod``), T >= 2, strictly decreasing in (0, 1);
    eta in (0, 1]. A step with σ_t = 0 has an infinite KL (the theorem needs σ > 0): at η = 0 that is every step,
    and for every η it is the last step, code t = 0 -> ᾱ = 1 (Theorem 1's t = 1), where eq. 16 gives
    σ = η √((1-1)/(1-ᾱ_0)) √(1-ᾱ_0/1) = 0. That term is the decoder's -log N(x_0; f_θ(x_1), σ_1² I) (paper
    indexing), not a KL of two q_σ Gaussians; its weight (1-ᾱ_0)/(2 σ_1² ᾱ_0) is finite only for a decoder
    variance σ_1² > 0 chosen apart from eq. 16, so it is left out here.
    Returns (gamma, sigma2), each (T-1,) float64, for code t = 1..T-1 (the step t -> t-1); code t = 0 is missing.
    """
    eta = check_float("eta", eta, 0.0, 1.0, lo_open=True)
    if not torch.is_tensor(abar) or abar.ndim != 1 or abar.shape[0] < 2 or not abar.is_floating_point():
        raise ValueError(f"abar must be a (T,) floating tensor with T >= 2, got {getattr(abar, 'dtype', type(abar))} "
                         f"of shape {tuple(getattr(abar, 'shape', ()))}")
    if not (bool((abar > 0).all()) and bool((abar < 1).all()) and bool((abar[1:] < abar[:-1]).all())):
        raise ValueError("abar must lie in (0, 1) and decrease strictly with t (allowed: a schedule's alphas_cumprod)")
    abar = abar.double()
    a_t, a_prev = abar[1:], abar[:-1]  # (T-1,) each: the step from code t to t - 1
    sig2 = torch.tensor([ddim_sigma(float(a), float(p), eta) for a, p in zip(a_t, a_prev)], dtype=torch.float64) ** 2
    # 1 - ᾱ_{t-1} - σ² >= 0 for η <= 1 (eq. 16); the clamp only removes round-off below zero at η = 1
    c = a_prev.sqrt() - (1 - a_prev - sig2).clamp(min=0).sqrt() * a_t.sqrt() / (1 - a_t).sqrt()  # (T-1,)
    return c**2 * (1 - a_t) / (2 * sig2 * a_t), sig2
