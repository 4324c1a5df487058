"""How good is DDIM inversion's one approximation? The ε it uses against the ε where it lands.

Step i of ``ddim_invert`` goes from x_prev up to the level t_i with ε_i = ε_θ(x_prev, t_i): the
target's timestep at the point it starts from. Decoding from t_i will compute ε_θ(x_{t_i}, t_i) at
the point the step landed on. Their relative difference is the error inversion makes at that step.
The inversion itself runs through ``ddim_invert`` (recorded, not re-implemented).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.inversion import ddim_invert
from ..core.samplers import Model
from ..core.schedules import DEFAULT_SPACING, NoiseSchedule


@dataclass(frozen=True)
class EpsGap:
    """Per inversion step, in ascending t: the timestep and ‖ε_used − ε_there‖ / ‖ε_there‖ over the batch."""

    timesteps: torch.Tensor  # (S,) int64, ascending
    gap: torch.Tensor  # (S,) float64


class _Recorder:
    """Wrap ``model(x_t, t) -> eps`` and keep every call's (x, t, eps)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.model(x, t)
        self.calls.append((x, t, eps))
        return eps


@torch.no_grad()
def inversion_eps_gap(
    model: Model, schedule: NoiseSchedule, x0: torch.Tensor, *, steps: int, spacing: str = DEFAULT_SPACING
) -> EpsGap:
    """Relative gap between inversion's ε_θ(x_prev, t) and ε_θ(x_t, t) at each step. x0: (B, ...).

    Costs 2·steps model calls: the inversion's own, then one at each point it landed on.
    """
    rec = _Recorder(model)
    x_T = ddim_invert(rec, schedule, x0, steps=steps, spacing=spacing)  # (B, ...)
    landed = [x for x, _, _ in rec.calls[1:]] + [x_T]  # step i lands where call i+1 starts; the last on x_T
    ts, gaps = [], []
    for (_, t, eps_used), x_t in zip(rec.calls, landed):
        eps_there = model(x_t, t)  # what the decoding step from t will see
        ts.append(int(t.reshape(-1)[0]))
        gaps.append(float((eps_used - eps_there).norm() / eps_there.norm()))
    return EpsGap(torch.tensor(ts, dtype=torch.long), torch.tensor(gaps, dtype=torch.float64))
