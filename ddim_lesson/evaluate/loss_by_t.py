"""The ε-prediction error of a model at each timestep: where L_simple can and cannot go to zero.

DDPM's L_simple averages E‖ε - ε_θ(x_t, t)‖² over t. Split by t it tells two stories:

- at large t, x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε is almost ε itself, so ε is easy: the error goes to 0;
- at small t, x_t is almost x0 plus a faint ε, and that faint ε can be told apart from x0 only
  where the data leaves no room for it (a flat background, a thin curve). Elsewhere the error
  stays near 1 per dimension, whatever the model.

``eps_mse_by_t`` measures the split for any ``model(x_t, t) -> eps``. ``linear_eps_mse`` is the
closed form for the best per-dimension linear predictor, which is also the best predictor of all
when the data are Gaussian: E[ε | x_t] = √(1-ᾱ)(x_t - √ᾱ μ)/(ᾱ s² + 1 - ᾱ), with error
1 - (1-ᾱ)/(ᾱ s² + 1 - ᾱ) = ᾱ s²/(ᾱ s² + 1 - ᾱ) per dimension of variance s².
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.checks import check_int
from ..core.forward import q_sample
from ..core.samplers import Model
from ..core.schedules import NoiseSchedule
from ..store.instruments import progress_bar


@torch.no_grad()
def eps_mse_by_t(
    model: Model,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    timesteps: Sequence[int] | torch.Tensor,
    *,
    repeats: int = 1,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Mean of (ε - model(x_t, t))² over the data, ``repeats`` noise draws and every dimension, per t.

    x0: (N, ...) data; timesteps: K ints in [0, T-1]. Returns (K,) float64, entry k for timesteps[k].
    The noise comes from ``generator`` (one (n, ...) draw in x0's dtype per batch, in order), so a
    seeded call is reproducible. Costs K·repeats·ceil(N / batch_size) model calls.
    """
    ts = [check_int("timestep", t, 0, schedule.T - 1) for t in torch.as_tensor(timesteps).reshape(-1).tolist()]
    check_int("repeats", repeats, 1)
    check_int("batch_size", batch_size, 1)
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (N, ...) with N >= 1, got {tuple(x0.shape)}")
    chunks = x0.split(batch_size)  # each (n, ...)
    bar = progress_bar(len(ts) * repeats * len(chunks), "ε-MSE by t", progress, unit="call")
    out = torch.empty(len(ts), dtype=torch.float64)
    for k, t in enumerate(ts):
        total = 0.0
        for _ in range(repeats):
            for xb in chunks:
                eps = torch.randn(xb.shape, generator=generator, dtype=xb.dtype).to(xb.device)  # (n, ...)
                tt = torch.full((xb.shape[0],), t, dtype=torch.long, device=xb.device)  # (n,)
                x_t = q_sample(xb, tt, schedule, noise=eps)  # DDPM eq. 4
                total += float((model(x_t, tt) - eps).double().pow(2).sum())  # DDPM eq. 14, summed
                bar.update()
        out[k] = total / (repeats * x0.numel())
    bar.close()
    return out


def linear_eps_mse(abar: torch.Tensor | float, var: torch.Tensor | float) -> torch.Tensor:
    """Error per dimension of the best linear ε-predictor, ᾱ s²/(ᾱ s² + 1 - ᾱ), for data variance s² = ``var``.

    abar and var broadcast (e.g. abar (K, 1) against var (D,) gives (K, D)). For Gaussian data this
    is the error of the exact E[ε | x_t]; for any data with that variance, no linear predictor does better.
    """
    abar, var = torch.as_tensor(abar, dtype=torch.float64), torch.as_tensor(var, dtype=torch.float64)
    return abar * var / (abar * var + 1 - abar)
