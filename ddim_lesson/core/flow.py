"""Flow matching (rectified flow) and DDIM as one ODE: Euler on dx/ds = v(x, s).

With s = σ̄/(1 + σ̄) = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)) and x_s = x_t/(√ᾱ + √(1-ᾱ)) the forward process is the
straight path x_s = (1 - s)·x0 + s·ε of rectified flow (Liu et al. 2023), and an ε-model defines the
velocity v = ε̂ - x̂0. One Euler step from s to s' then lands on (1 - s')·x̂0 + s'·ε̂, which is x_prev/(√ᾱ' + √(1-ᾱ'))
for DDIM's step (eq. 12, η = 0): the two samplers are one and the same on the grid of a DDIM spacing.

    s_of_abar(abar)                 s of a noise level; 0 at ᾱ = 1 (data), -> 1 as ᾱ -> 0 (noise)
    flow_grid(schedule, S, spacing) the s values of ``ddim_timesteps(T, S, spacing)``, then 0: (S+1,)
    flow_start(x_T, sched, S, sp)   x_T as the flow's x_s at that grid's first timestep: DDIM's start, in s
    eps_to_velocity(model, sched)   velocity(x_s, s) of an ε-model, for s on its clock only
    flow_progressive / flow_sample  Euler from s_grid[0] (default 1) to s_grid[-1] (default 0)
    euler_xt_sample                 Euler on the same ODE in (t, x_t): not DDIM (the notebook's contrast)
    pair_flow_loss                  velocity MSE on the straight line between paired (x0, x1): reflow

diffusers' ``FlowMatchEulerDiscreteScheduler`` runs the same Euler step; its ``sigmas`` are our s (not
the course's σ̄ = s/(1 - s)), its timesteps are s·1000, and it maps given sigmas through its shift
s -> shift·s/(1 + (shift - 1)·s) (the identity at its default shift = 1) before appending s = 0.
Its default grid, ``set_timesteps(N)``, is linspace(1, 1/1000, N) then 0, not ours, linspace(1, 0, N + 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .checks import NonFiniteError, check_int, check_model_input
from .samplers import Model
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
S_MATCH_TOL = 1e-6  # an s within this of a timestep's s is that timestep (neighbours are >= 6.4e-5 apart at T = 1000)


@dataclass(frozen=True)
class FlowStep:
    """One Euler step from s to s_next (s_next < s)."""

    s: float
    s_next: float
    x: torch.Tensor  # (B, ...) the new sample at s_next
    x0_pred: torch.Tensor  # (B, ...) x - s·v at the step's start: where the straight line through it hits s = 0


def s_of_abar(abar: torch.Tensor | float) -> torch.Tensor:
    """s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)), elementwise (float64). ᾱ in [0, 1]; ᾱ = 1 gives 0, ᾱ = 0 gives 1."""
    a = torch.as_tensor(abar, dtype=torch.float64)
    if not bool(((a >= 0) & (a <= 1)).all()):
        raise ValueError(f"abar must lie in [0, 1], got values from {float(a.min())} to {float(a.max())}")
    return (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())


def flow_grid(schedule: NoiseSchedule, steps: int, spacing: str = DEFAULT_SPACING) -> torch.Tensor:
    """s at each timestep of ``ddim_timesteps(T, steps, spacing)``, then 0 (ᾱ = 1). (steps+1,) float64, descending."""
    ts = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule)  # (S,) checks steps and spacing
    return torch.cat([s_of_abar(schedule.alphas_cumprod[ts]), torch.zeros(1, dtype=torch.float64)])


def flow_start(x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, spacing: str = DEFAULT_SPACING) -> torch.Tensor:
    """x_T at the first timestep t of ``ddim_timesteps(T, steps, spacing)`` as the flow's x_s = x_T/(√ᾱ_t + √(1-ᾱ_t)).

    The start of ``flow_sample(eps_to_velocity(model, schedule), ..., s_grid=flow_grid(schedule, steps, spacing))``
    that makes it DDIM's run from the same x_T. x_T: (B, ...) -> (B, ...), same dtype; bad steps or spacing:
    ValueError naming the allowed values.
    """
    a = schedule.alphas_cumprod[ddim_timesteps(schedule.T, steps, spacing, schedule=schedule)[0]]  # ᾱ at the start
    return x_T / float(a.sqrt() + (1 - a).sqrt())


class EpsVelocity:
    """The velocity v = ε̂ - x̂0 of an ε-model, called as ``velocity(x_s, s)`` with x_s: (B, ...), s: (B,).

    Each s must be the s of an integer timestep of ``schedule`` (within ``S_MATCH_TOL``), as
    :func:`flow_grid` gives; anything else is a ValueError naming the nearest allowed values. The model
    sees x_t = (√ᾱ + √(1-ᾱ))·x_s at that timestep, and v = (ε̂ - x_s)/(1 - s) = ε̂ - x̂0.
    """

    def __init__(self, model: Model, schedule: NoiseSchedule) -> None:
        self.model, self.schedule = model, schedule
        abar = schedule.alphas_cumprod  # (T,) float64
        self.s_table = s_of_abar(abar)  # (T,) ascending in t
        self.scale = abar.sqrt() + (1 - abar).sqrt()  # (T,) x_t = scale·x_s

    def timestep(self, s: torch.Tensor) -> torch.Tensor:
        """The timestep of each s, (B,) int64; ValueError for an s off the clock."""
        s64 = s.detach().to("cpu", torch.float64).reshape(-1)  # (B,)
        t = torch.searchsorted(self.s_table, s64).clamp(1, self.schedule.T - 1)  # (B,) right neighbour
        t = torch.where((s64 - self.s_table[t - 1]).abs() < (self.s_table[t] - s64).abs(), t - 1, t)
        off = (self.s_table[t] - s64).abs() > S_MATCH_TOL
        if bool(off.any()):
            bad = float(s64[off][0])
            i = int(torch.searchsorted(self.s_table, torch.tensor([bad], dtype=torch.float64)))
            near = ", ".join(f"s={float(self.s_table[k]):.6f} (t={k})" for k in (i - 1, i) if 0 <= k < self.schedule.T)
            raise ValueError(f"s={bad!r} is not on this ε-model's clock (the s of an integer timestep "
                             f"0..{self.schedule.T - 1}, s in [{float(self.s_table[0]):.6f}, "
                             f"{float(self.s_table[-1]):.6f}]); nearest allowed: "
                             f"{near}. Use flow_grid(schedule, steps, spacing) for the s values.")
        return t

    def __call__(self, x_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        t = self.timestep(s)  # (B,)
        view = (-1,) + (1,) * (x_s.ndim - 1)
        scale = self.scale[t].to(x_s.device, x_s.dtype).view(view)  # (B, 1, ...)
        s_t = self.s_table[t].to(x_s.device, x_s.dtype).view(view)  # the clock's own s, not the float32 one given
        eps = self.model(x_s * scale, t.to(x_s.device))  # (B, ...)
        return (eps - x_s) / (1 - s_t)  # = ε̂ - x̂0 with x̂0 = (x_s - s·ε̂)/(1 - s)


def eps_to_velocity(model: Model, schedule: NoiseSchedule) -> EpsVelocity:
    """An ε-model as a velocity field on its own clock: ``v(x_s, s) = ε̂ - x̂0``. See :class:`EpsVelocity`."""
    return EpsVelocity(model, schedule)


def _check_grid(steps: int | None, s_grid: torch.Tensor | list[float] | None) -> list[float]:
    if (steps is None) == (s_grid is None):
        raise ValueError(f"give exactly one of steps and s_grid, got steps={steps!r} and s_grid={s_grid!r}")
    if steps is not None:
        n = check_int("steps", steps, 1)
        return [1.0 - i / n for i in range(n)] + [0.0]  # linspace(1, 0, n + 1), exact ends
    g = torch.as_tensor(s_grid, dtype=torch.float64)
    if g.ndim != 1 or g.numel() < 2:
        raise ValueError(f"s_grid must be 1-D with at least 2 values (start and end), got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()) or float(g.min()) < 0 or float(g.max()) > 1:
        raise ValueError(f"s_grid values must be finite and in [0, 1], got {g.tolist()}")
    if not bool((g[1:] < g[:-1]).all()):
        raise ValueError(f"s_grid must be strictly decreasing (noise s = 1 towards data s = 0), got {g.tolist()}")
    return g.tolist()


def flow_progressive(velocity: Velocity, x1: torch.Tensor, *, steps: int | None = None,
                     s_grid: torch.Tensor | list[float] | None = None) -> Iterator[FlowStep]:
    """Euler on dx/ds = v(x, s), yielding one :class:`FlowStep` per velocity call.

    x1: (B, ...) the start at s_grid[0] (with ``steps``: s = 1, pure noise). Exactly ``steps`` calls on
    linspace(1, 0, steps + 1), or len(s_grid) - 1 calls on a strictly decreasing ``s_grid`` in [0, 1].
    The velocity is never called at the last grid point.
    """
    grid = _check_grid(steps, s_grid)
    x = check_model_input(velocity.model if isinstance(velocity, EpsVelocity) else velocity, x1, "x1")
    return _euler_loop(velocity, x, grid)


@torch.no_grad()
def _euler_loop(velocity: Velocity, x: torch.Tensor, grid: list[float]) -> Iterator[FlowStep]:
    """The one Euler loop (x already checked)."""
    B = x.shape[0]
    for s, s_next in zip(grid[:-1], grid[1:]):
        v = velocity(x, torch.full((B,), s, dtype=x.dtype, device=x.device))  # (B, ...)
        if v.shape != x.shape:
            raise ValueError(f"velocity output shape {tuple(v.shape)} must equal x1 shape {tuple(x.shape)}")
        if not math.isfinite(float(v.sum())) and not bool(torch.isfinite(v).all()):
            raise NonFiniteError(f"the velocity stopped being finite at s={s:.6g}; the model or its input overflowed")
        x0_pred = x - s * v  # (B, ...) the straight line through (s, x) with slope v, at s = 0
        x = x + (s_next - s) * v  # Euler on dx/ds = v (for an ε-model: DDIM eq. 12 with η = 0, rescaled)
        yield FlowStep(s, s_next, x, x0_pred)


@torch.no_grad()
def flow_sample(velocity: Velocity, x1: torch.Tensor, *, steps: int | None = None,
                s_grid: torch.Tensor | list[float] | None = None) -> torch.Tensor:
    """Euler on dx/ds = v(x, s) from s_grid[0] (or 1) to s_grid[-1] (or 0). x1: (B, ...) -> (B, ...)."""
    x = None
    for step in flow_progressive(velocity, x1, steps=steps, s_grid=s_grid):
        x = step.x
    return x  # type: ignore[return-value]  # at least one step: the grid has >= 2 points


@torch.no_grad()
def euler_xt_sample(model: Model, schedule: NoiseSchedule, x_T: torch.Tensor, *, steps: int,
                    spacing: str = DEFAULT_SPACING) -> torch.Tensor:
    """Euler on the same probability-flow ODE in its native coordinates (t, x_t): NOT DDIM.

    dx_t/dt = -½β(t)·(x_t - ε̂/√(1-ᾱ_t)) with β(t) = -d log ᾱ/dt, taken as -log(ᾱ_t/ᾱ_{t-1}) on the
    integer clock (ᾱ_{-1} = 1); Euler steps from each timestep of ``ddim_timesteps`` to the next, the
    last one to t = -1 (ᾱ = 1). x_T: (B, ...) -> (B, ...); exactly ``steps`` model calls.
    """
    ts = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule).tolist()
    x = check_model_input(model, x_T)
    abar = schedule.alphas_cumprod.tolist()
    for i, t in enumerate(ts):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        beta = -math.log(abar[t] / (abar[t - 1] if t > 0 else 1.0))  # -d log ᾱ/dt at t
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))  # (B, ...)
        x = x + (t_next - t) * (-0.5 * beta) * (x - eps / math.sqrt(1 - abar[t]))  # Euler in t (not eq. 12)
    return x


def pair_flow_loss(model: Callable[..., torch.Tensor], x0: torch.Tensor, x1: torch.Tensor,
                   g: torch.Generator) -> torch.Tensor:
    """||(x1 - x0) - v_θ((1 - s)·x0 + s·x1, s)||², s ~ U[0, 1]: flow matching on given pairs. x0, x1: (B, ...).

    With x1 = fresh noise this is :func:`~ddim_lesson.core.losses.flow_matching_loss`; with x1 the noise a
    trained flow maps to x0 (its own pairs) it is reflow, rectified flow's second step (Liu et al. 2023, Alg. 1).
    """
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    b = x0.shape[0]
    s = torch.rand((b,), generator=g).to(x0.device)  # (B,)
    s_ = s.to(x0.dtype).view(b, *([1] * (x0.ndim - 1)))  # (B, 1, ...)
    v_pred = model((1 - s_) * x0 + s_ * x1, s)
    return torch.nn.functional.mse_loss(v_pred.float(), (x1 - x0).float())
