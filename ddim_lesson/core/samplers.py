"""DDIM and DDPM samplers: one pure update, one progressive loop, thin wrappers.

The model contract is ``model(x_t, t) -> eps`` with x_t: (B, ...) and t: (B,) int64.
Every sampler here runs through :func:`_denoise_loop`, a generator that yields one
:class:`SamplerStep` per model call; ``ddim_sample``/``ddpm_sample`` keep only the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .checks import check_eps_finite, check_eta, check_model_input, check_sample_finite
from .forward import ddim_sigma, randn_like_on, sigma_of_eta
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VARIANCES = ("posterior", "beta")


@dataclass(frozen=True)
class SamplerStep:
    """One step of a sampler: x moved from timestep t to t_prev (t_prev = -1 means ᾱ = 1)."""

    t: int
    t_prev: int
    x: torch.Tensor  # (B, ...) the new sample at t_prev
    x0_pred: torch.Tensor  # (B, ...) the model's prediction of x_0 at step t


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
    """Apply one update. x_t, eps, noise: (B, ...). Returns (x_prev, x0_pred), both (B, ...).

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
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from ᾱ_t to ᾱ_prev (eq. 12), written as the paper writes it. Pure.

    x_t, eps, noise: (B, ...). Returns (x_prev, x0_pred), both (B, ...). eta in [0, 1] (above 1,
    σ² > 1 - ᾱ_prev: refused, not clamped). ``noise`` is needed only when eta > 0 and ᾱ_prev < 1.
    With eta = 0 it is also the inversion step (ᾱ_prev < ᾱ_t). The samplers' loop runs the same
    update with its scalars folded once per call (:func:`apply_step`); a test holds the two equal.
    """
    if eps.shape != x_t.shape:
        raise ValueError(f"eps shape {tuple(eps.shape)} must equal x_t shape {tuple(x_t.shape)}")
    abar_t, abar_prev = float(abar_t), float(abar_prev)
    sigma = ddim_sigma(abar_t, abar_prev, eta)  # eq. 16; checks eta and the ᾱ range
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


@torch.no_grad()
def _denoise_loop(
    model: Model,
    x_T: torch.Tensor,
    timesteps: list[int],
    coefs: list[StepCoefs],
    clip_x0: bool,
    generator: torch.Generator | None,
) -> Iterator[SamplerStep]:
    """The one sampling loop: a model call and an update per timestep, yielding each step.

    x_T is already checked (check_model_input); ε is checked finite at every step, so a model that
    overflows raises naming the timestep instead of returning NaN samples.
    """
    B = x_T.shape[0]
    t_batches = torch.tensor(timesteps, dtype=torch.long, device=x_T.device)[:, None].expand(-1, B).unbind(0)  # S×(B,)
    x = x_T
    for i, c in enumerate(coefs):
        eps = model(x, t_batches[i])
        if eps.shape != x.shape:
            raise ValueError(f"model output shape {tuple(eps.shape)} must equal x_T shape {tuple(x.shape)}")
        check_eps_finite(eps, timesteps[i])
        noise = randn_like_on(x, generator) if c.sigma > 0.0 else None
        x, x0_pred = apply_step(x, eps, c, noise, clip_x0)
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if t_prev == -1:  # ε was finite at every step; the update itself may still overflow (no clip_x0)
            check_sample_finite(x, timesteps[i])
        yield SamplerStep(timesteps[i], t_prev, x, x0_pred)


def _plan(schedule: NoiseSchedule, timesteps: torch.Tensor) -> tuple[list[int], list[float], list[float]]:
    """Timesteps as ints, with ᾱ_t and ᾱ_prev for each (the last ᾱ_prev is 1: clean data)."""
    ts = timesteps.tolist()
    abar = schedule.alphas_cumprod[timesteps].tolist()  # one lookup, not S cumprods
    return ts, abar, abar[1:] + [1.0]


def ddim_progressive(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = DEFAULT_SPACING,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[SamplerStep]:
    """DDIM sampling as a generator of :class:`SamplerStep`; exactly ``steps`` model calls.

    x_T: (B, ...), checked against the model by :func:`~ddim_lesson.core.checks.check_model_input`
    (a numpy array or another floating dtype is converted to the model's). eta in [0, 1].
    The final update goes to ᾱ = 1, so the last step's x is the predicted x0.
    """
    timesteps = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule)
    ts, abar_t, abar_prev = _plan(schedule, timesteps)
    coefs = ddim_call_coefs(abar_t, abar_prev, eta)  # η checked once, for the whole call
    x_T = check_model_input(model, x_T)
    return _denoise_loop(model, x_T, ts, coefs, clip_x0, generator)


@torch.no_grad()
def ddim_sample(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = DEFAULT_SPACING,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample x0 from x_T with DDIM (eq. 12). x_T: (B, ...) -> x0: (B, ...).

    With eta = 0 nothing random is drawn after x_T; with eta > 0 noise comes from ``generator``.
    """
    return _last(ddim_progressive(model, schedule, x_T, steps=steps, eta=eta, spacing=spacing, clip_x0=clip_x0,
                                  generator=generator))


def ddpm_progressive(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    variance: str = "posterior",
    steps: int | None = None,
    spacing: str = DEFAULT_SPACING,
) -> Iterator[SamplerStep]:
    """Ancestral sampling as a generator of steps. All T steps unless ``steps`` is given (a cosine schedule:
    its ``sampling_T`` steps, where σ̄ <= 157.5).

    With fewer steps it runs on a sub-sequence with β = 1 - ᾱ_t/ᾱ_prev; variance "beta" is
    then the DDIM paper's σ̂ sampler.
    """
    steps = schedule.sampling_T if steps is None else steps  # checked by ddim_timesteps, naming the range
    ts, abar_t, abar_prev = _plan(schedule, ddim_timesteps(schedule.T, steps, spacing, schedule=schedule))
    coefs = [ddpm_coefs(a, ap, variance) for a, ap in zip(abar_t, abar_prev)]
    x_T = check_model_input(model, x_T)
    return _denoise_loop(model, x_T, ts, coefs, clip_x0, generator)


@torch.no_grad()
def ddpm_sample(
    model: Model,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    variance: str = "posterior",
    steps: int | None = None,
    spacing: str = DEFAULT_SPACING,
) -> torch.Tensor:
    """DDPM ancestral sampling (DDPM Algorithm 2) over all T steps (a cosine schedule: ``sampling_T``).
    x_T: (B, ...) -> (B, ...)."""
    return _last(ddpm_progressive(model, schedule, x_T, clip_x0=clip_x0, generator=generator, variance=variance,
                                  steps=steps, spacing=spacing))


def _last(steps: Iterator[SamplerStep]) -> torch.Tensor:
    x = None
    for step in steps:
        x = step.x
    if x is None:  # unreachable: steps >= 1 is validated
        raise RuntimeError("sampler produced no steps")
    return x
