"""Exercise checkers of notebooks 01-02, the DDPM part: the closed form q(x_t | x_0), one ancestral step.

Each ``check_*`` calls the learner's function through the shared harness (``harness.call_learner``)
and compares it with the library on random float64 inputs; each ``reference_*`` is written from the
paper's equation, not by calling the library, so a checker accepting it is a test of the library.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...core.forward import q_sample
from ...core.schedules import NoiseSchedule
from ...core.updates import apply_step, ddpm_coefs
from .harness import (
    TOL,
    NotAttempted,
    as_tensor,
    call_learner,
    case_generator,
    case_randn,
    checker,
    close,
    max_diff,
    not_attempted,
)


# --------------------------------------------------------------------------------------
# Notebook 01: the closed form q(x_t | x_0)
# --------------------------------------------------------------------------------------
def reference_q_sample(
    x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε (DDPM eq. 4). x0, noise: (B, ...); t: (B,) int64."""
    abar = torch.cumprod(1 - schedule.betas, dim=0)[t]  # (B,)  ᾱ_t = ∏_{s<=t} (1 - β_s)
    abar = abar.view(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1) to broadcast over the pixels
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


@checker
def check_q_sample(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x0, t, schedule, noise) -> x_t`` against ``ddim_lesson.q_sample``."""
    schedule = NoiseSchedule.linear(1000)
    g = case_generator(1)
    t = torch.tensor([0, 1, 10, 250, 500, 999])
    x0, noise = case_randn((6, 1, 4, 4), g), case_randn((6, 1, 4, 4), g)
    try:
        got = as_tensor(call_learner(fn, x0, t, schedule, noise), x0, "x_t")
        want = q_sample(x0, t, schedule, noise=noise)
        if max_diff(got, want) <= TOL:
            _check_q_sample_channels(fn, schedule, t, g)
            print(f"Correct: x_t matches ddim_lesson.q_sample at t = {t.tolist()} (max difference "
                  f"{max_diff(got, want):.1e}), on a 1-channel and a 3-channel batch, and leaves its inputs as "
                  "they were.")
            return True
        ones, zeros = torch.ones_like(x0), torch.zeros_like(x0)
        a = as_tensor(call_learner(fn, ones, t, schedule, zeros), x0, "x_t")[:, 0, 0, 0]  # coefficient on x0
        b = as_tensor(call_learner(fn, zeros, t, schedule, ones), x0, "x_t")[:, 0, 0, 0]  # coefficient on noise
    except NotAttempted:
        return not_attempted("check_q_sample", "Write x_t = √ᾱ_t·x0 + √(1-ᾱ_t)·noise, with ᾱ_t the cumulative "
                              "product of (1 - β_s) for s = 0..t, one t per batch entry.")
    abar = schedule.alphas_cumprod[t]
    alpha = 1 - schedule.betas[t]
    rows = "\n".join(f"  t = {int(tt):4d}: yours {float(ai):.5f}·x0 + {float(bi):.5f}·noise,  expected "
                     f"{math.sqrt(ab):.5f}·x0 + {math.sqrt(1 - ab):.5f}·noise"
                     for tt, ai, bi, ab in zip(t, a, b, abar.tolist()))
    hint = _q_sample_hint(a, b, abar, alpha, schedule, t)
    raise AssertionError(f"x_t does not match q(x_t | x_0) (max difference {max_diff(got, want):.3g}).\n"
                         f"{hint}\nCoefficients found by probing your function:\n{rows}")


def _check_q_sample_channels(fn: Callable[..., torch.Tensor], schedule: NoiseSchedule, t: torch.Tensor,
                             g: torch.Generator) -> None:
    """An answer right on (B, 1, H, W) must hold on (B, 3, H, W) too: ᾱ_t broadcasts as (B, 1, 1, 1)."""
    x0, noise = case_randn((6, 3, 4, 4), g), case_randn((6, 3, 4, 4), g)
    hint = ("Hint: ᾱ_t has one value per batch entry. Reshape it to (B, 1, 1, 1), e.g. `abar.view(-1, 1, 1, 1)` or "
            "`abar[:, None, None, None]`, so that it broadcasts over channels and pixels; `view(B, C, 1, 1)` works "
            "only while C = 1.")
    where = "x_t is right for 1-channel images, but not for a 3-channel batch of shape (6, 3, 4, 4)"
    try:
        got = as_tensor(call_learner(fn, x0, t, schedule, noise), x0, "x_t for the 3-channel batch")
    except NotAttempted:
        raise AssertionError(f"{where}: your function raised NotImplementedError.\n{hint}") from None
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}\n{hint}") from None
    diff = max_diff(got, q_sample(x0, t, schedule, noise=noise))
    if diff > TOL:
        raise AssertionError(f"{where} (max difference {diff:.3g}).\n{hint}")


def _q_sample_hint(a: torch.Tensor, b: torch.Tensor, abar: torch.Tensor, alpha: torch.Tensor,
                   schedule: NoiseSchedule, t: torch.Tensor) -> str:
    def same(u: torch.Tensor, v: torch.Tensor) -> bool:
        return bool((u.double() - v.double()).abs().max() <= 1e-4)

    if same(a, abar) or same(b, 1 - abar):
        return ("Hint: ᾱ_t and 1-ᾱ_t are variances; the coefficients are their square roots: "
                "√ᾱ_t on x0 and √(1-ᾱ_t) on the noise.")
    if same(a, alpha.sqrt()):
        return ("Hint: you used one step's α_t = 1-β_t. Jumping from x_0 to x_t in one draw needs the cumulative "
                "product ᾱ_t = α_0·α_1·…·α_t.")
    full = schedule.alphas_cumprod
    if same(a, full[(t + 1).clamp(max=schedule.T - 1)].sqrt()) or same(a, full[(t - 1).clamp(min=0)].sqrt()) \
            or same(a, torch.cat([torch.ones(1, dtype=full.dtype), full])[t].sqrt()):
        return "Hint: an off-by-one in the index: ᾱ_t is alphas_cumprod[t], which includes β_t itself."
    if same(a * a + b * b, torch.ones_like(a)):
        return "Hint: the variances add up to 1, but the split between signal and noise is wrong at some t."
    return "Hint: the mean of x_t is √ᾱ_t·x0 and its standard deviation √(1-ᾱ_t); check both coefficients."


# --------------------------------------------------------------------------------------
# Notebook 02: one step of DDPM ancestral sampling
# --------------------------------------------------------------------------------------
def reference_ddpm_step(
    x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """x_{t-1} = (x_t - β_t/√(1-ᾱ_t)·ε)/√α_t + σ_t z with σ_t² = β̃_t (DDPM eq. 11 and Algorithm 2).

    x_t, eps, noise: (B, ...); t: an int in [0, T-1]. The last step (t = 0) adds no noise.
    """
    beta = float(schedule.betas[t])
    alpha = 1 - beta
    abar_t = float(torch.cumprod(1 - schedule.betas, 0)[t])
    abar_prev = float(torch.cumprod(1 - schedule.betas, 0)[t - 1]) if t > 0 else 1.0
    mean = (x_t - beta / math.sqrt(1 - abar_t) * eps) / math.sqrt(alpha)
    sigma = math.sqrt((1 - abar_prev) / (1 - abar_t) * beta)  # √β̃_t; 0 at t = 0
    return mean + sigma * noise


@checker
def check_ddpm_step(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x_t, eps, t, schedule, noise) -> x_{t-1}`` against the library's ancestral step."""
    schedule = NoiseSchedule.linear(1000)
    g = case_generator(2)
    shape = (3, 1, 4, 4)
    try:
        for t in (999, 500, 100, 10, 1, 0):
            x_t, eps, noise = case_randn(shape, g), case_randn(shape, g), case_randn(shape, g)
            got = as_tensor(call_learner(fn, x_t, eps, t, schedule, noise), x_t, f"x_(t-1) at t = {t}")
            c = ddpm_coefs(schedule.abar(t), schedule.abar(t - 1), "posterior")
            want, _ = apply_step(x_t.clone(), eps, c, noise, clip_x0=False)
            if max_diff(got, want) > TOL:
                zeros, ones = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
                sigma = float(as_tensor(call_learner(fn, zeros, zeros, t, schedule, ones), x_t, "x_(t-1)")[0, 0, 0, 0])
                mean = as_tensor(call_learner(fn, x_t, eps, t, schedule, zeros), x_t, "x_(t-1)")
                want_mean, _ = apply_step(x_t.clone(), eps, c, None if c.sigma == 0 else zeros, clip_x0=False)
                raise AssertionError(
                    f"x_(t-1) differs from DDPM's ancestral step at t = {t} (max difference "
                    f"{max_diff(got, want):.3g}).\n{_ddpm_hint(t, schedule, sigma, c.sigma, mean, want_mean)}")
    except NotAttempted:
        return not_attempted("check_ddpm_step", "Write x_(t-1) = (x_t - β_t/√(1-ᾱ_t)·eps)/√α_t + σ_t·noise "
                              "with σ_t² = β̃_t = (1-ᾱ_(t-1))/(1-ᾱ_t)·β_t, and ᾱ_(-1) = 1.")
    print("Correct: your step matches the library's ancestral step (posterior variance β̃) at "
          "t = 999, 500, 100, 10, 1 and 0, including no noise on the last step.")
    return True


def _ddpm_hint(t: int, schedule: NoiseSchedule, sigma: float, want_sigma: float, mean: torch.Tensor,
               want_mean: torch.Tensor) -> str:
    if max_diff(mean, want_mean) > TOL:
        return ("Hint: the mean is wrong. It is (x_t - β_t/√(1-ᾱ_t)·eps)/√α_t: divide by √α_t of this one step "
                "(α_t = 1-β_t), and scale eps by β_t/√(1-ᾱ_t) with the cumulative ᾱ_t.")
    if t == 0 and sigma != 0:
        return "Hint: the mean is right, but the last step (t = 0) must add no noise: σ_0 = 0 since ᾱ_(-1) = 1."
    if close(sigma, math.sqrt(float(schedule.betas[t]))):
        return (f"Hint: the mean is right, but your noise scale is √β_t = {sigma:.5f}. This lesson uses the "
                f"posterior variance β̃_t = (1-ᾱ_(t-1))/(1-ᾱ_t)·β_t, so σ_t = {want_sigma:.5f}.")
    if close(sigma, float(schedule.betas[t])) or close(sigma, want_sigma**2):
        return f"Hint: the mean is right; σ_t is a standard deviation, the square root of β̃_t: {want_sigma:.5f}."
    return f"Hint: the mean is right, but your noise scale is {sigma:.5f}; σ_t = √β̃_t = {want_sigma:.5f}."
