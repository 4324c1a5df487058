"""The training objectives, as pure tensor maths: what one batch's loss is.

- :func:`diffusion_loss`: ε-prediction MSE on the discrete DDPM clock (DDPM eq. 14).
- :func:`flow_matching_loss`: velocity MSE on the rectified-flow path x_s = (1 - s) x0 + s ε,
  v = ε - x0, s uniform in [0, 1] (Liu et al. 2023; Lipman et al. 2023). With
  s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)) this is the same path the DDPM forward process walks, rescaled
  (x_s = x_t / (√ᾱ + √(1-ᾱ))), so the two objectives differ in what is predicted and in how the
  noise levels are drawn, not in the path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .forward import q_sample
from .schedules import NoiseSchedule

__all__ = ["OBJECTIVES", "diffusion_loss", "flow_matching_loss"]

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
