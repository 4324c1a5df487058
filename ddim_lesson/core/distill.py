"""Progressive distillation (Salimans & Ho, ICLR 2022), as pure tensor maths.

A student with k DDIM steps learns to land, in ONE step z_t -> z_t'', where its teacher lands in TWO
DDIM steps z_t -> z_t' -> z_t'' (η = 0, no clipping). One DDIM step from z_t with a prediction x̂ of x0
lands at z_t'' = α'' x̂ + σ'' (z_t - α x̂)/σ, with α = √ᾱ, σ = √(1-ᾱ). Solving that for x̂ gives the
target the student must predict (Salimans & Ho, Algorithm 2):

    x̃ = (z_t'' - (σ''/σ) z_t) / (α'' - (σ''/σ) α).

**The student predicts v = α ε - σ x0** (their Sec. 4), not ε. A k-step student's first step starts at
t = T-1, where ᾱ ≈ 4e-5 under the linear schedule: x0 = (z - σ ε)/α multiplies an error in ε by
σ/α ≈ 157 (notebook 02), and a 1-step student's whole sample is that x0. From v both are well conditioned:
x0 = α z - σ v and ε = σ z + α v (coefficients at most 1, no division), so :class:`EpsFromV` turns the
student into the ``model(x_t, t) -> eps`` every sampler takes, safe at any t. At low noise v ≈ ε, so
a student copied from an ε-teacher starts right there; near t = T-1, v ≈ -x0 is what it must learn.
Its loss, ||v_θ - ṽ||², is the x0 error weighted by 1 + SNR (their "SNR+1" weighting).

**The grid.** Student step j goes t_j -> t_{j+1} (the last to ᾱ = 1, t = -1); the teacher's 2k-step
grid must hold every student point, with its own point t' between. "trailing" nests for every T:
its point i of 2k steps is round(T(2k-i)/(2k)) - 1, which for i = 2j is round(T(k-j)/k) - 1, the
student's point j. "leading" (T//S strides) and "linspace" (S - 1 intervals) do not, in general.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .samplers import Model
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps

__all__ = ["EpsFromV", "abar_at", "alpha_sigma", "ddim_jump", "distill_grid", "distill_loss", "distill_target",
           "eps_from_v", "teacher_two_steps", "v_from_x0", "x0_from_v"]


def distill_grid(schedule: NoiseSchedule, steps: int,
                 spacing: str = DEFAULT_SPACING) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The student's k = ``steps`` steps and the teacher's 2k: (t, t_mid, t_next), each (k,) int64.

    Student step j goes t[j] -> t_next[j] (t_next = -1 means ᾱ = 1); the teacher's two steps go
    t[j] -> t_mid[j] -> t_next[j]. These are exactly the timesteps the teacher's ``ddim_sample(...,
    steps=2k)`` and the student's ``ddim_sample(..., steps=k)`` visit on ``schedule``: a cosine schedule's
    grid starts at its own first timestep (schedule.sampling_T - 1, e.g. 994 for T = 1000), not at T - 1.
    Raises ValueError if 2k > schedule.sampling_T or the spacing does not nest.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise ValueError(f"distill_grid takes the teacher's NoiseSchedule (the grid depends on it, not on T alone), "
                         f"got {type(schedule).__name__} {schedule!r}")
    T = schedule.sampling_T  # the timesteps the samplers start from lie in [0, sampling_T - 1]
    if not (isinstance(steps, int) and 1 <= steps and 2 * steps <= T):
        raise ValueError(f"distillation needs a teacher with 2*steps <= {T} (the timesteps this schedule samples "
                         f"from); got steps={steps!r}; allowed steps: 1..{T // 2}")
    student = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule)  # (k,)
    teacher = ddim_timesteps(schedule.T, 2 * steps, spacing, schedule=schedule)  # (2k,)
    if not torch.equal(teacher[::2], student):
        raise ValueError(f"spacing {spacing!r} with T={T}: the {steps}-step grid is not every other point of the "
                         f"{2 * steps}-step grid; allowed: 'trailing', which nests for every T")
    t_next = torch.cat([student[1:], torch.tensor([-1])])  # (k,)
    return student, teacher[1::2], t_next


def abar_at(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """ᾱ at integer timesteps t (any shape), with ᾱ_{-1} = 1 (clean data). float64, same shape as t."""
    if t.numel() and (int(t.min()) < -1 or int(t.max()) >= schedule.T):
        raise ValueError(f"timesteps must be in [-1, {schedule.T - 1}], got {int(t.min())}..{int(t.max())}")
    abar = schedule.alphas_cumprod.to(t.device)[t.clamp(min=0)]
    return torch.where(t < 0, torch.ones_like(abar), abar)


def alpha_sigma(schedule: NoiseSchedule, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) = (√ᾱ_t, √(1-ᾱ_t)) at integer timesteps t (any shape) in [-1, T-1]; t = -1 is clean data (1, 0).

    Both float64, shaped like t: z_t = α_t x0 + σ_t ε. Timesteps outside [-1, T-1]: ValueError naming the range.
    """
    abar = abar_at(schedule, t)
    return abar.sqrt(), (1 - abar).sqrt()


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) float64 -> (B, 1, ...) in ``like``'s dtype, to scale a batch."""
    return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def ddim_jump(z_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor, abar_next: torch.Tensor) -> torch.Tensor:
    """One DDIM step (η = 0, no clipping) with a level per sample. z_t, eps: (B, ...); abar_*: (B,) float64."""
    x0 = (z_t - _col((1 - abar_t).sqrt(), z_t) * eps) / _col(abar_t.sqrt(), z_t)  # "predicted x0", eq. 9
    return _col(abar_next.sqrt(), z_t) * x0 + _col((1 - abar_next).sqrt(), z_t) * eps  # eq. 12 with σ = 0


@torch.no_grad()
def teacher_two_steps(teacher: Model, schedule: NoiseSchedule, z_t: torch.Tensor, t: torch.Tensor,
                      t_mid: torch.Tensor, t_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's two DDIM steps t -> t_mid -> t_next. z_t: (B, ...), t*: (B,). Returns (z_mid, z_next)."""
    a_t, a_mid, a_next = abar_at(schedule, t), abar_at(schedule, t_mid), abar_at(schedule, t_next)
    z_mid = ddim_jump(z_t, teacher(z_t, t), a_t, a_mid)
    z_next = ddim_jump(z_mid, teacher(z_mid, t_mid), a_mid, a_next)
    return z_mid, z_next


def distill_target(z_t: torch.Tensor, z_next: torch.Tensor, abar_t: torch.Tensor,
                   abar_next: torch.Tensor) -> torch.Tensor:
    """x̃: the x0 with which ONE DDIM step from z_t lands on z_next (Salimans & Ho, Algorithm 2).

    x̃ = (z'' - (σ''/σ) z_t) / (α'' - (σ''/σ) α). z_t, z_next: (B, ...); abar_*: (B,) float64, ᾱ_next > ᾱ_t.
    """
    ratio = ((1 - abar_next) / (1 - abar_t)).sqrt()  # σ''/σ, (B,)
    denom = abar_next.sqrt() - ratio * abar_t.sqrt()  # α'' - (σ''/σ) α = sin(θ - θ'')/σ > 0
    return (z_next - _col(ratio, z_t) * z_t) / _col(denom, z_t)


def v_from_x0(z_t: torch.Tensor, x0: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """v = α ε - σ x0 = (α z_t - x0)/σ, for z_t = α x0 + σ ε. (B, ...), abar_t (B,) with ᾱ < 1."""
    return (_col(abar_t.sqrt(), z_t) * z_t - x0) / _col((1 - abar_t).sqrt(), z_t)


def x0_from_v(z_t: torch.Tensor, v: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """x0 = α z_t - σ v. (B, ...), abar_t (B,)."""
    return _col(abar_t.sqrt(), z_t) * z_t - _col((1 - abar_t).sqrt(), z_t) * v


def eps_from_v(z_t: torch.Tensor, v: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """ε = σ z_t + α v: no division, so safe where ᾱ ≈ 0. (B, ...), abar_t (B,)."""
    return _col((1 - abar_t).sqrt(), z_t) * z_t + _col(abar_t.sqrt(), z_t) * v


class EpsFromV(nn.Module):
    """A v-predicting network seen as ``model(x_t, t) -> eps``, so every sampler, solver and inversion takes it.

    ``net(x_t, t)`` returns v (B, ...); this returns ε = σ_t x_t + α_t v. ``config`` is the network's, so
    shape helpers see through the wrapper; the state dict is the network's under ``net.``.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule

    @property
    def config(self) -> object:
        return self.net.config  # type: ignore[return-value]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return eps_from_v(x_t, self.net(x_t, t), abar_at(self.schedule, t))


def distill_loss(student: Model, teacher: Model, schedule: NoiseSchedule, x0: torch.Tensor,
                 grid: tuple[torch.Tensor, torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
    """One batch of Algorithm 2: ||v_θ(z_t, t) - ṽ||² with ṽ from the teacher's two steps. x0: (B, ...).

    ``student(z, t)`` returns v; ``teacher(z, t)`` returns ε; ``grid`` is :func:`distill_grid`'s. A
    student step j is drawn uniformly per sample, then ε ~ N(0, I) and z_t = α x0 + σ ε.
    """
    t_all, mid_all, next_all = grid
    j = torch.randint(0, t_all.numel(), (x0.shape[0],), generator=g)  # (B,) the student step
    eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)  # (B, ...)
    t, t_mid, t_next = t_all[j].to(x0.device), mid_all[j].to(x0.device), next_all[j].to(x0.device)
    a_t, a_next = abar_at(schedule, t), abar_at(schedule, t_next)
    z_t = _col(a_t.sqrt(), x0) * x0 + _col((1 - a_t).sqrt(), x0) * eps  # q(z_t | x0)
    _, z_next = teacher_two_steps(teacher, schedule, z_t, t, t_mid, t_next)
    v_target = v_from_x0(z_t, distill_target(z_t, z_next, a_t, a_next), a_t)  # (B, ...)
    return F.mse_loss(student(z_t, t).float(), v_target.float())
