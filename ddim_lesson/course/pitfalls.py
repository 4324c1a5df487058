"""Deliberately wrong recipes that the course teaches against, kept so a notebook can run and measure them.

Each is documented as wrong and tested to be wrong in exactly the way the notebook says, and right in every
other way, so the one difference the notebook shows is the pitfall itself. Do not use them to sample.

- :func:`naive_ddim_sample` (notebook 03): DDIM over the common ``range(0, T, T // S)`` + ``[T - 1]`` timesteps
  (``core.schedules.naive_timesteps``), which asks for S steps and makes S + 1 model calls (more for some S).
"""

from __future__ import annotations

import torch

from ..core.checks import check_model_input
from ..core.samplers import Model
from ..core.schedules import NoiseSchedule, naive_timesteps
from ..core.updates import ddim_step

__all__ = ["naive_ddim_sample"]


@torch.no_grad()
def naive_ddim_sample(model: Model, schedule: NoiseSchedule, x_T: torch.Tensor, S: int) -> torch.Tensor:
    """WRONG on purpose: the common DDIM recipe, timesteps from range(0, T, T // S), then T - 1 appended.

    Do not use: it costs S + 1 model calls for S = 10 (len(naive_timesteps(T, S)) in general), where
    ``ddim_sample(..., steps=S)`` costs S. The loop itself is right: eq. 12 (``ddim_step``, η = 0, x_0
    clipped to [-1, 1] as ``ddim_sample`` clips by default), with t_prev taken from the sequence and the last step
    to ᾱ = 1. x_T: (B, ...); S: the number of steps asked for, in [1, T]. Returns x_0: (B, ...).
    """
    ts_ = naive_timesteps(schedule.T, S).tolist()  # descending; checks S, naming the range
    x = check_model_input(model, x_T)
    for i, t in enumerate(ts_):
        t_prev = ts_[i + 1] if i + 1 < len(ts_) else -1
        eps = model(x, torch.full((x.shape[0],), t, device=x.device))
        x, _ = ddim_step(x, eps, schedule.abar(t), schedule.abar(t_prev), clip_x0=True)
    return x
