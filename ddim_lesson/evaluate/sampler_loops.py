"""The sampling loops the speed benchmark times, each as ``make(model, schedule, x, steps)`` returning a
callable without arguments (the work timed): bare model calls (the floor), our DDIM sampler, DDPM, and the
usual diffusers DDIMScheduler loop set up as the same sampler; and the per-step cost of a loop's own work.
:func:`diffusers_ddim_sample` runs that diffusers loop once, at any of its spacings and either clipping convention
(notebook 06 compares it with ours).

    run = ddim_loop(model, schedule, x_T, 10)     # run() -> x0, same shape as x_T
    interleaved_ratio("overhead", run, bare_calls(model, schedule, x_T, 10))
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_int
from ..core.samplers import ddim_sample, ddpm_sample
from ..core.schedules import NoiseSchedule, ddim_timesteps
from .throughput import synchronize
from .timing import interleaved_ratio, repeated

Maker = Callable[..., Callable[[], Any]]


def bare_calls(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, steps: int) -> Callable[[], None]:
    """S model calls on the same batch x (B, ...) at the sampler's timesteps: the floor any sampler pays."""
    ts = [t.expand(x.shape[0]) for t in ddim_timesteps(schedule.T, steps, schedule=schedule).to(x.device)]  # S×(B,)

    @torch.no_grad()
    def run() -> None:
        for t in ts:
            model(x, t)

    return run


def ddim_loop(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, steps: int) -> Callable[[], torch.Tensor]:
    """Our sampler: ``ddim_sample`` with η = 0 from x_T = x (B, ...); returns x0 (B, ...)."""
    return lambda: ddim_sample(model, schedule, x, steps=steps, eta=0.0)


def ddpm_loop(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``ddpm_sample`` over all T steps from x_T = x (B, ...)."""
    return lambda: ddpm_sample(model, schedule, x)


DIFFUSERS_SPACINGS = ("leading", "trailing", "linspace")  # diffusers' timestep_spacing values (ours by the same names)


def diffusers_ddim_scheduler(schedule: NoiseSchedule, spacing: str = "trailing") -> Any:
    """diffusers' ``DDIMScheduler`` set up on ``schedule``: clip_sample=True, ᾱ_final = 1, steps_offset 0, ε-prediction.

    Needs a linear schedule (diffusers is given its betas' ends); spacing: one of :data:`DIFFUSERS_SPACINGS`.
    """
    from diffusers import DDIMScheduler

    spacing = check_choice("spacing", spacing, DIFFUSERS_SPACINGS)
    if schedule.kind != "linear":
        raise ValueError(f"the diffusers loop is set up for a linear schedule, got {schedule.kind!r}")
    p = schedule.params
    return DDIMScheduler(num_train_timesteps=schedule.T, beta_start=p["beta_start"], beta_end=p["beta_end"],
                         beta_schedule="linear", clip_sample=True, set_alpha_to_one=True, steps_offset=0,
                         timestep_spacing=spacing, prediction_type="epsilon")


@torch.no_grad()
def diffusers_ddim_sample(model: nn.Module, schedule: NoiseSchedule, x_T: torch.Tensor, *, steps: int,
                          spacing: str = "trailing", use_clipped_model_output: bool = True) -> torch.Tensor:
    """diffusers' DDIM loop (η = 0, ``clip_sample=True``) from x_T (B, ...) in ``steps`` model calls: x0 (B, ...).

    With ``use_clipped_model_output=True`` its step re-derives ε from the clipped x̂0, as our ``clip_x0=True`` does,
    and the two samplers agree; with diffusers' default (False) it keeps the model's ε in the direction pointing to
    x_t, a different sampler wherever x̂0 leaves [-1, 1] (notebook 06 measures both).
    """
    steps = check_int("steps", steps, 1, schedule.T)
    sch = diffusers_ddim_scheduler(schedule, spacing)
    sch.set_timesteps(steps, device=x_T.device)
    x = x_T
    for t in sch.timesteps:
        eps = model(x, t.expand(x.shape[0]))  # (B, ...)
        x = sch.step(eps, t, x, eta=0.0, use_clipped_model_output=bool(use_clipped_model_output)).prev_sample
    return x


def diffusers_loop(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor,
                   steps: int) -> Callable[[], torch.Tensor]:
    """The usual diffusers DDIM loop, configured to be the same sampler as ours (trailing, clip, ᾱ_final = 1).

    x: x_T (B, ...); returns x0 (B, ...). Needs a linear schedule (diffusers is given its betas' ends). The
    scheduler is built outside the timed work, which is why this is a second copy of the loop in
    :func:`diffusers_ddim_sample` (that one builds its scheduler inside; a test holds the two equal).
    """
    sch = diffusers_ddim_scheduler(schedule, "trailing")

    @torch.no_grad()
    def run() -> torch.Tensor:
        sch.set_timesteps(steps, device=x.device)
        xt = x
        for t in sch.timesteps:
            eps = model(xt, t.expand(x.shape[0]))  # (B, ...)
            xt = sch.step(eps, t, xt, eta=0.0, use_clipped_model_output=True).prev_sample
        return xt

    return run


def synced(make: Maker, device: torch.device) -> Maker:
    """``make`` whose runs end with ``device``'s synchronize (unchanged on the CPU)."""
    if device.type == "cpu":
        return make

    def wrapped(*args: object) -> Callable[[], object]:
        fn = make(*args)

        def run() -> object:
            out = fn()
            synchronize(device)
            return out

        return run

    return wrapped


def sampler_cost_per_step(x: torch.Tensor, schedule: NoiseSchedule, steps: int, rounds: int,
                          loop: Maker = ddim_loop) -> float:
    """Seconds per step that a sampling loop spends outside the model, on x_T = x (B, ...).

    Timed with a stub model that returns a fixed eps, minus the stub's own calls; setup is included,
    spread over the steps. This resolves what an end-to-end ratio cannot on a noisy machine.
    """
    eps = torch.zeros_like(x)

    def stub(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return eps

    reps = 20  # many runs per round: one run is too short to time alone
    a, b = synced(loop, x.device)(stub, schedule, x, steps), synced(bare_calls, x.device)(stub, schedule, x, steps)
    r = interleaved_ratio("own", repeated(a, reps), repeated(b, reps), rounds)
    return statistics.median(ta - tb for ta, tb in zip(r.a_s, r.b_s)) / (reps * steps)
