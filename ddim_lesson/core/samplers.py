"""DDIM and DDPM samplers: one progressive loop, thin wrappers (their one-step updates: core/updates.py).

The model contract is ``model(x_t, t) -> eps`` with x_t: (B, ...) and t: (B,) int64.
Every sampler here runs through :func:`denoise_loop`, a generator that yields one
:class:`SamplerStep` per model call; ``ddim_sample``/``ddpm_sample`` keep only the last
(:func:`last_sample`). The DDIM loop's update is :func:`~ddim_lesson.core.updates.ddim_step`
itself, the eq. 12 a learner reads in notebook 03; DDPM's is ``apply_step`` on the posterior's
coefficients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .checks import check_eps_finite, check_model_input, check_sample_finite
from .forward import randn_like_on
from .schedules import DEFAULT_SPACING, NoiseSchedule, ddim_timesteps
from .updates import StepCoefs, Update, ddim_call_coefs, ddim_update, ddpm_coefs, ddpm_update

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerStep:
    """One step of a sampler: x moved from timestep t to t_prev (t_prev = -1 means ᾱ = 1)."""

    t: int
    t_prev: int
    x: torch.Tensor  # (B, ...) the new sample at t_prev
    x0_pred: torch.Tensor  # (B, ...) the model's prediction of x_0 at step t


@torch.no_grad()
def denoise_loop(
    model: Model,
    x_T: torch.Tensor,
    timesteps: list[int],
    coefs: list[StepCoefs],
    update: Update,
    generator: torch.Generator | None,
) -> Iterator[SamplerStep]:
    """The one sampling loop: a model call and ``update`` per timestep, yielding each step.

    x_T: (B, ...), already checked (check_model_input); timesteps[i] and coefs[i] describe step i
    (:func:`step_plan`, :func:`ddim_call_coefs`). Noise z ~ N(0, I) is drawn from ``generator`` (on
    the CPU, then moved) for each step with σ > 0. ε is checked finite at every step, so a model that
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
        x, x0_pred = update(x, eps, c, noise)
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if t_prev == -1:  # ε was finite at every step; the update itself may still overflow (no clip_x0)
            check_sample_finite(x, timesteps[i])
        yield SamplerStep(timesteps[i], t_prev, x, x0_pred)


def step_plan(schedule: NoiseSchedule, timesteps: torch.Tensor) -> tuple[list[int], list[float], list[float]]:
    """Timesteps (S,) as ints, with ᾱ_t and ᾱ_prev for each (the last ᾱ_prev is 1: clean data)."""
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
    ts, abar_t, abar_prev = step_plan(schedule, timesteps)
    coefs = ddim_call_coefs(abar_t, abar_prev, eta)  # η checked once, for the whole call
    x_T = check_model_input(model, x_T)
    return denoise_loop(model, x_T, ts, coefs, ddim_update(clip_x0), generator)


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
    return last_sample(ddim_progressive(model, schedule, x_T, steps=steps, eta=eta, spacing=spacing, clip_x0=clip_x0,
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
    ts, abar_t, abar_prev = step_plan(schedule, ddim_timesteps(schedule.T, steps, spacing, schedule=schedule))
    coefs = [ddpm_coefs(a, ap, variance) for a, ap in zip(abar_t, abar_prev)]
    x_T = check_model_input(model, x_T)
    return denoise_loop(model, x_T, ts, coefs, ddpm_update(clip_x0), generator)


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
    return last_sample(ddpm_progressive(model, schedule, x_T, clip_x0=clip_x0, generator=generator, variance=variance,
                                  steps=steps, spacing=spacing))


def last_sample(steps: Iterator[SamplerStep]) -> torch.Tensor:
    """The x of the last step of a progressive sampler: (B, ...)."""
    x = None
    for step in steps:
        x = step.x
    if x is None:  # unreachable: steps >= 1 is validated
        raise RuntimeError("sampler produced no steps")
    return x
