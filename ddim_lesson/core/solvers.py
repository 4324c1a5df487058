"""Probability-flow ODE solvers: the ladder that starts at DDIM.

With x̄ = x/√ᾱ and σ̄ = √(1-ᾱ)/√ᾱ (so ᾱ = 1/(1+σ̄²)), DDIM with η = 0 is Euler's method on

    dx̄/dσ̄ = ε_θ(x̄/√(1+σ̄²), t(σ̄))                                   (DDIM eq. 14; EDM eq. 4 with s = √ᾱ)

and higher-order solvers of the same ODE buy accuracy per model call. Every solver below runs on
one shared grid: N timesteps from ``ddim_timesteps`` plus a final point at ᾱ = 1 (σ̄ = 0, λ = +∞),
with λ = log(√ᾱ/√(1-ᾱ)) = -log σ̄ (half the log-SNR). ``steps`` is always the number of model calls.

    solver            order*  calls for N steps        what it is                       diffusers
    ----------------  ------  -----------------------  -------------------------------  --------------------------
    "ddim"            1       N                        Euler in σ̄ = DPM-Solver-1        DDIMScheduler, step(eta=0),
                                                       = DPM-Solver++ 1                  clip_sample=False
    "heun"            2       2N - 1 (no corrector     EDM Algorithm 1 (Heun in σ̄)      HeunDiscreteScheduler
                              at σ̄ = 0)
    "dpmpp_2m"        2       N (first, last step      DPM-Solver++(2M), exponential    DPMSolverMultistepScheduler(
                              order 1)                 integrator in λ, data prediction  "dpmsolver++", solver_order=2)
    "dpmpp_3m"        2       N (steps of order 1, 2,  DPM-Solver++(3M) as diffusers    the same with solver_order=3
                              then 3; the last 1, the  writes it: D2 at half the weight  (lower_order_final=True)
                              one before it 2 if N<15) the exact integral needs
    "dpmpp_3m_exact"  3       N (the same)             3M with the quadratic in λ       none (one coefficient x2)
                                                       integrated exactly

    * measured, not read off the name (tests/evaluate/test_solver_study.py): the slope of log error against log steps
      on dx/dλ = -x + D(λ) with an exact warm-up (3M: 2.0, 3M exact: 3.0), and at the grid's last timestep on
      Gaussian data, before the first-order jump to ᾱ = 1, on a clock fine enough not to floor it.

Each solver is one flat generator over the grid; :func:`ode_progressive` picks one and
:func:`ode_sample` keeps its last step. With ``clip_x0`` every prediction x̂0 is clipped to [-1, 1]
and ε is re-derived from it, as in ``ddim_sample`` (diffusers' ``use_clipped_model_output=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .checks import check_choice, check_eps_finite, check_int, check_model_input, check_sample_finite
from .multistep import D2_WEIGHT, multistep_update, order_3m
from .samplers import Model, SamplerStep, last_sample
from .schedules import DEFAULT_SPACING, SPACINGS, NoiseSchedule, ddim_timesteps


@dataclass(frozen=True)
class Grid:
    """The shared grid of N steps: timesteps t_0 > ... > t_{N-1}, then ᾱ = 1. Lists of N + 1 floats."""

    ts: list[int]  # (N,) timesteps; t_prev of the last step is -1 (ᾱ = 1)
    abar: list[float]  # (N+1,) ᾱ at each grid point, the last one 1
    sigma: list[float]  # (N+1,) σ̄ = √(1-ᾱ)/√ᾱ, the last one 0
    lam: list[float]  # (N+1,) λ = -log σ̄, the last one +inf

    @property
    def n(self) -> int:
        return len(self.ts)

    def t_prev(self, i: int) -> int:
        return self.ts[i + 1] if i + 1 < self.n else -1

    def scale(self, i: int) -> float:
        """√ᾱ at grid point i: x = x̄·scale."""
        return math.sqrt(self.abar[i])


def make_grid(schedule: NoiseSchedule, n: int, spacing: str = DEFAULT_SPACING) -> Grid:
    """The grid of ``n`` timesteps for ``spacing`` and the final point ᾱ = 1.

    ValueError if ᾱ at a grid timestep rounds to 1 in float64 (σ̄ = 0 before the end: no ODE left to solve) or
    does not rise strictly along the grid (a step of length 0 in λ), as a schedule with tiny β can give.
    """
    ts = ddim_timesteps(schedule.T, n, spacing, schedule=schedule).tolist()
    abar = schedule.alphas_cumprod[ts].tolist() + [1.0]
    for i, t in enumerate(ts):
        if not abar[i] < abar[i + 1]:
            what = "rounds to 1" if abar[i] >= 1.0 else f"is not below ᾱ at the next grid timestep {ts[i + 1]}"
            raise ValueError(f"the schedule's ᾱ at timestep t={t} ({abar[i]!r}) {what}; the ODE solvers need "
                             "0 < ᾱ < 1 at every grid timestep, rising strictly along the grid (are the betas "
                             "too small for float64?)")
    sigma = [math.sqrt((1.0 - a) / a) for a in abar]
    return Grid(ts, abar, sigma, [-math.log(s) if s > 0 else math.inf for s in sigma])


Denoiser = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def denoiser(model: Model, grid: Grid, batch: int, device: torch.device, clip_x0: bool) -> Denoiser:
    """``den(xbar, i) -> (x0_pred, eps)`` at grid point i, one model call. xbar: (B, ...) = x/√ᾱ.

    x0_pred = x̄ - σ̄·ε (DDIM eq. 9 in x̄); with ``clip_x0`` it is clipped and ε = (x̄ - x0_pred)/σ̄.
    """
    t_batches = torch.tensor(grid.ts, dtype=torch.long, device=device)[:, None].expand(-1, batch).unbind(0)  # N×(B,)

    def den(xbar: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = xbar * grid.scale(i)  # (B, ...) the model sees x_t = √ᾱ·x̄
        eps = model(x, t_batches[i])
        if not isinstance(eps, torch.Tensor):
            raise ValueError(f"the model must return one tensor ε of x_t's shape {tuple(x.shape)}, "
                             f"got {type(eps).__name__}")
        if eps.shape != x.shape:
            raise ValueError(f"model output shape {tuple(eps.shape)} must equal x_T shape {tuple(x.shape)}")
        if eps.dtype != x.dtype:  # else the sample silently changes dtype
            raise ValueError(f"the model returned ε of dtype {eps.dtype} for x_t of dtype {x.dtype}; "
                             "return ε in x_t's dtype (e.g. eps.to(x_t.dtype))")
        check_eps_finite(eps, grid.ts[i])
        x0 = xbar - grid.sigma[i] * eps  # DDIM eq. 9, divided by √ᾱ
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (xbar - x0) / grid.sigma[i]
        return x0, eps

    return den


# --------------------------------------------------------------------------------------
# The solvers: each one flat generator of SamplerStep over the grid
# --------------------------------------------------------------------------------------
def sample_ddim(den: Denoiser, grid: Grid, x: torch.Tensor) -> Iterator[SamplerStep]:
    """Euler's method in (σ̄, x̄): DDIM with η = 0 (Song et al. 2021, eq. 12 = eq. 14). x: (B, ...)."""
    for i in range(grid.n):
        xbar = x / grid.scale(i)
        x0, eps = den(xbar, i)
        xbar = xbar + (grid.sigma[i + 1] - grid.sigma[i]) * eps  # DDIM eq. 14, one Euler step
        x = xbar * grid.scale(i + 1)
        yield SamplerStep(grid.ts[i], grid.t_prev(i), x, x0)


def sample_heun(den: Denoiser, grid: Grid, x: torch.Tensor) -> Iterator[SamplerStep]:
    """Heun's 2nd-order method in (σ̄, x̄): Algorithm 1 of Karras et al. 2022 (EDM). x: (B, ...)."""
    for i in range(grid.n):
        xbar = x / grid.scale(i)
        x0, d = den(xbar, i)  # d = dx̄/dσ̄ = ε at σ̄_i (EDM Alg. 1, line 4)
        h = grid.sigma[i + 1] - grid.sigma[i]
        xbar_next = xbar + h * d  # Euler predictor (EDM Alg. 1, line 5)
        if grid.sigma[i + 1] > 0:  # EDM Alg. 1, lines 6-8: no corrector on the step to σ̄ = 0
            _, d_next = den(xbar_next, i + 1)  # the slope at the end of the step, at σ̄_{i+1}
            xbar_next = xbar + h * 0.5 * (d + d_next)  # trapezoidal rule (EDM Alg. 1, line 8)
        x = xbar_next * grid.scale(i + 1)
        yield SamplerStep(grid.ts[i], grid.t_prev(i), x, x0)


def sample_dpmpp_2m(den: Denoiser, grid: Grid, x: torch.Tensor) -> Iterator[SamplerStep]:
    """DPM-Solver++(2M): Algorithm 2 of Lu et al. 2022 (arXiv 2211.01095), in x̄. x: (B, ...)."""
    x0_old, h_old = None, 0.0
    for i in range(grid.n):
        xbar = x / grid.scale(i)
        x0, _ = den(xbar, i)
        ratio = grid.sigma[i + 1] / grid.sigma[i]  # σ̄_{i+1}/σ̄_i = e^{-h}, h = λ_{i+1} - λ_i
        if x0_old is None or grid.sigma[i + 1] == 0:
            D = x0  # first step, and the step to σ̄ = 0 (h = ∞): order 1, exactly DDIM
        else:
            r = h_old / (grid.lam[i + 1] - grid.lam[i])  # r_i = h_{i-1}/h_i
            D = x0 + (x0 - x0_old) / (2 * r)  # D_i = (1 + 1/(2r)) x̂0_i - 1/(2r) x̂0_{i-1} (Alg. 2)
        xbar = ratio * xbar + (1 - ratio) * D  # DPM-Solver++ eq. 9 divided by α: x̄' = e^{-h} x̄ + (1 - e^{-h}) D
        x0_old, h_old = x0, grid.lam[i + 1] - grid.lam[i]
        x = xbar * grid.scale(i + 1)
        yield SamplerStep(grid.ts[i], grid.t_prev(i), x, x0)


def _multistep(den: Denoiser, grid: Grid, x: torch.Tensor, d2_weight: float) -> Iterator[SamplerStep]:
    """The 3M loop over the grid, orders from :func:`order_3m`, D2 weighted by ``d2_weight``. x: (B, ...)."""
    x0s: list[torch.Tensor] = []  # x̂0 at the last three grid points, newest last
    for i in range(grid.n):
        xbar = x / grid.scale(i)
        x0, _ = den(xbar, i)
        x0s = (x0s + [x0])[-3:]
        k = order_3m(i, grid.n)
        xbar = multistep_update(xbar, x0s[-k:], grid.lam[i - k + 1:i + 1], grid.lam[i + 1], d2_weight)
        x = xbar * grid.scale(i + 1)
        yield SamplerStep(grid.ts[i], grid.t_prev(i), x, x0)


def sample_dpmpp_3m(den: Denoiser, grid: Grid, x: torch.Tensor) -> Iterator[SamplerStep]:
    """DPM-Solver++(3M) of Lu et al. 2022 (arXiv 2211.01095) in x̄, as diffusers'
    DPMSolverMultistepScheduler(solver_order=3) writes it: the second difference D2 at half the weight the exact
    integral of the quadratic needs, so its local error is O(h³) and it is second order (measured; see
    :mod:`ddim_lesson.evaluate.solver_study`). Orders from :func:`order_3m`. x: (B, ...)."""
    return _multistep(den, grid, x, D2_WEIGHT["dpmpp_3m"])


def sample_dpmpp_3m_exact(den: Denoiser, grid: Grid, x: torch.Tensor) -> Iterator[SamplerStep]:
    """3M with the quadratic in λ integrated exactly (D2 at full weight, 2hφ3): local error O(h⁴), third order
    (measured). Same history, same orders per step (:func:`order_3m`), one model call per step. x: (B, ...)."""
    return _multistep(den, grid, x, D2_WEIGHT["dpmpp_3m_exact"])


@dataclass(frozen=True)
class Solver:
    """A rung of the ladder: its generator, its order, and how many grid steps a number of calls buys."""

    fn: Callable[[Denoiser, Grid, torch.Tensor], Iterator[SamplerStep]]
    order: int
    calls: str  # model calls as a function of the grid steps N, for messages

    def grid_steps(self, calls: int, T: int) -> int:
        """The grid steps N that cost exactly ``calls`` model calls; ValueError naming the allowed counts."""
        if self.calls == "2N-1":
            if calls % 2 == 0 or not (1 <= calls <= 2 * T - 1):
                near = [c for c in (calls - 1, calls + 1) if 1 <= c <= 2 * T - 1]
                raise ValueError(f"steps={calls!r} cannot be met: heun makes 2N-1 model calls for N grid steps, so "
                                 f"steps must be odd, in [1, {2 * T - 1}] (nearest allowed: "
                                 f"{' or '.join(map(str, near))})")
            return (calls + 1) // 2
        return check_int("steps", calls, 1, T)


SOLVERS: dict[str, Solver] = {
    "ddim": Solver(sample_ddim, 1, "N"),
    "heun": Solver(sample_heun, 2, "2N-1"),
    "dpmpp_2m": Solver(sample_dpmpp_2m, 2, "N"),
    "dpmpp_3m": Solver(sample_dpmpp_3m, 2, "N"),  # measured 2, not 3 (tests/evaluate/test_solver_study.py)
    "dpmpp_3m_exact": Solver(sample_dpmpp_3m_exact, 3, "N"),  # measured 3 once the clock is fine enough
}


def calls_within(solver: str, budget: int, T: int = 1000) -> int:
    """The largest model-call count <= ``budget`` that ``solver`` can spend exactly (Heun: odd counts)."""
    check_choice("solver", solver, SOLVERS)
    budget = check_int("budget", budget, 1, None)
    if SOLVERS[solver].calls == "2N-1":
        return min(2 * T - 1, budget - (budget % 2 == 0))
    return min(T, budget)


def ode_progressive(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int,
    solver: str = "dpmpp_2m",
    spacing: str = DEFAULT_SPACING,
    clip_x0: bool = False,
) -> Iterator[SamplerStep]:
    """Solve the probability-flow ODE from x_T (B, ...) to ᾱ = 1, yielding one SamplerStep per grid step.

    Exactly ``steps`` model calls in all (heun: steps odd; its step yields after both of its calls).
    Each step's ``x`` is the state at t_prev (B, ...), ``x0_pred`` the prediction at t (B, ...).
    """
    check_choice("solver", solver, SOLVERS)
    check_choice("spacing", spacing, SPACINGS)
    steps = check_int("steps", steps, 1, None)
    rung = SOLVERS[solver]
    n = rung.grid_steps(steps, schedule.T)
    x_T = check_model_input(model, x_T)  # a tensor the model takes, finite everywhere
    grid = make_grid(schedule, n, spacing)
    den = denoiser(model, grid, x_T.shape[0], x_T.device, clip_x0)
    return _checked(rung.fn(den, grid, x_T))


@torch.no_grad()
def _checked(walk: Iterator[SamplerStep]) -> Iterator[SamplerStep]:
    """The solver's steps, with the sample checked finite after the last one (ε was finite at every step, so a
    non-finite sample means an update overflowed: NonFiniteError, a ValueError)."""
    for st in walk:
        if st.t_prev == -1:
            check_sample_finite(st.x, st.t)
        yield st


def ode_sample(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int,
    solver: str = "dpmpp_2m",
    spacing: str = DEFAULT_SPACING,
    clip_x0: bool = False,
) -> torch.Tensor:
    """x0 (B, ...) from x_T (B, ...) with ``solver`` in exactly ``steps`` model calls: the last step of
    :func:`ode_progressive`."""
    return last_sample(ode_progressive(model, schedule, x_T, steps=steps, solver=solver, spacing=spacing,
                                       clip_x0=clip_x0))
