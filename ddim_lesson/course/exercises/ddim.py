"""Exercise checkers of notebooks 03-04, the DDIM step: the update of eq. 12, and σ for every step (eq. 16).

Called through the shared harness (``harness.call_learner``), like every checker; each
``reference_*`` is written from the paper's equations, not by calling the library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...core.forward import ddim_sigma
from ...core.schedules import NoiseSchedule, ddim_timesteps
from ...core.updates import ddim_step
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
# Notebook 03: the DDIM update (eq. 12)
# --------------------------------------------------------------------------------------
def reference_ddim_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, eta: float, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step from ᾱ_t to ᾱ_prev (DDIM eq. 12, σ from eq. 16). Returns (x_prev, x0_pred), (B, ...)."""
    x0_pred = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)  # eq. 9: "predicted x0"
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_prev)  # eq. 16
    direction = math.sqrt(1 - abar_prev - sigma**2) * eps  # "direction pointing to x_t"
    return math.sqrt(abar_prev) * x0_pred + direction + sigma * noise, x0_pred


DDIM_CASES = (  # (ᾱ_t, ᾱ_prev, η): one step, strided steps, the last step to ᾱ = 1, and η > 0
    (0.5, 0.6, 0.0),
    (0.02, 0.3, 0.0),
    (0.9, 1.0, 0.0),
    (0.5, 0.6, 0.5),
    (0.02, 0.3, 1.0),
    (0.3, 0.9, 0.8),
    (0.9, 1.0, 1.0),
)


@checker
def check_ddim_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Check ``fn(x_t, eps, abar_t, abar_prev, eta, noise) -> (x_prev, x0_pred)`` against ``ddim_step``."""
    g = case_generator(3)
    shape = (4, 1, 4, 4)
    try:
        for abar_t, abar_prev, eta in DDIM_CASES:
            x_t, eps, noise = case_randn(shape, g), case_randn(shape, g), case_randn(shape, g)
            out = call_learner(fn, x_t, eps, abar_t, abar_prev, eta, noise)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise AssertionError(f"return a tuple (x_prev, x0_pred); got {type(out).__name__}")
            where = f"ᾱ_t = {abar_t}, ᾱ_prev = {abar_prev}, η = {eta}"
            x_prev, x0_pred = as_tensor(out[0], x_t, "x_prev"), as_tensor(out[1], x_t, "x0_pred")
            want, want_x0 = ddim_step(x_t, eps, abar_t, abar_prev, eta=eta, noise=noise)
            if max_diff(x0_pred, want_x0) > TOL:
                raise AssertionError(f"x0_pred is wrong at {where} (max difference {max_diff(x0_pred, want_x0):.3g})."
                                     "\nHint: eq. 9 inverts x_t = √ᾱ_t·x0 + √(1-ᾱ_t)·eps: "
                                     "x0_pred = (x_t - √(1-ᾱ_t)·eps)/√ᾱ_t.")
            if max_diff(x_prev, want) > TOL:
                raise AssertionError(f"x_prev is wrong at {where} (max difference {max_diff(x_prev, want):.3g}).\n"
                                     + _ddim_hint(fn, abar_t, abar_prev, eta, shape))
    except NotAttempted:
        return not_attempted("check_ddim_step", "Compute x0_pred (eq. 9), σ from η (eq. 16), then x_prev = "
                              "√ᾱ_prev·x0_pred + √(1-ᾱ_prev-σ²)·eps + σ·noise (eq. 12); return (x_prev, x0_pred).")
    print(f"Correct: your step matches ddim_lesson.ddim_step on {len(DDIM_CASES)} cases, with η in {{0, 0.5, 0.8, 1}} "
          "and a last step to ᾱ = 1.")
    return True


def _ddim_hint(fn: Callable[..., Any], abar_t: float, abar_prev: float, eta: float, shape: tuple[int, ...]) -> str:
    """Probe the learner's step for its noise scale σ and its eps coefficient, and name the mismatch."""
    zeros, ones = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    sigma = float(call_learner(fn, zeros, zeros, abar_t, abar_prev, eta, ones)[0][0, 0, 0, 0])
    # x_t = √(1-ᾱ_t)·eps makes x0_pred = 0, so x_prev is the eps coefficient times eps
    c_eps = float(call_learner(fn, math.sqrt(1 - abar_t) * ones, ones, abar_t, abar_prev, eta, zeros)[0][0, 0, 0, 0])
    want_sigma = ddim_sigma(abar_t, abar_prev, eta)
    want_c_eps = math.sqrt(max(1 - abar_prev - want_sigma**2, 0.0))
    if not close(sigma, want_sigma):
        if close(sigma, want_sigma**2):
            return f"Hint: your noise scale is σ² = {sigma:.5f}; multiply the noise by σ = {want_sigma:.5f}."
        return (f"Hint: your noise scale is {sigma:.5f}, but σ(η) = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev) "
                f"= {want_sigma:.5f} here (eq. 16).")
    if not close(c_eps, want_c_eps):
        if close(c_eps, math.sqrt(1 - abar_prev)):
            return ("Hint: σ is right, but the eps coefficient must shrink as noise is added: it is "
                    f"√(1-ᾱ_prev-σ²) = {want_c_eps:.5f}, not √(1-ᾱ_prev) = {c_eps:.5f}. At η = 0 the two agree, "
                    "which is why only the η > 0 cases fail.")
        return f"Hint: the coefficient of eps is {c_eps:.5f}; eq. 12 says √(1-ᾱ_prev-σ²) = {want_c_eps:.5f}."
    return "Hint: σ and the eps coefficient are right; check the x0 term, √ᾱ_prev·x0_pred (a square root)."


# --------------------------------------------------------------------------------------
# Notebook 04: σ for every step of a run (eq. 16), and slerp
# --------------------------------------------------------------------------------------
def reference_step_sigmas(schedule: NoiseSchedule, timesteps: torch.Tensor, eta: float) -> torch.Tensor:
    """σ_i(η) of each step of a DDIM run over ``timesteps`` (descending, shape (S,)). Returns (S,) float64.

    Step i goes from t_i to t_(i+1), the next entry of the sequence, and the last step to ᾱ = 1.
    """
    abar = torch.cumprod(1 - schedule.betas, dim=0)  # (T,)  ᾱ_t
    abar_t = abar[timesteps]  # (S,)
    abar_prev = torch.cat([abar[timesteps[1:]], torch.ones(1, dtype=abar.dtype)])  # (S,) ᾱ of the next step
    return eta * ((1 - abar_prev) / (1 - abar_t)).sqrt() * (1 - abar_t / abar_prev).sqrt()  # eq. 16


STEP_SIGMA_CASES = ((10, "trailing", 1.0), (20, "linspace", 0.5), (7, "quadratic", 0.3), (1000, "trailing", 1.0))


@checker
def check_step_sigmas(fn: Callable[[NoiseSchedule, torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(schedule, timesteps, eta) -> σ of shape (S,)`` against ``ddim_lesson.ddim_sigma``, step by step."""

    schedule = NoiseSchedule.linear(1000)
    try:
        for steps, spacing, eta in STEP_SIGMA_CASES:
            ts = ddim_timesteps(schedule.T, steps, spacing, schedule=schedule)
            got = call_learner(fn, schedule, ts, eta)
            if not torch.is_tensor(got) or got.shape != ts.shape:
                shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
                raise AssertionError(f"return a tensor of shape ({steps},), one σ per step; got {shape}")
            t_list = ts.tolist()
            prev = t_list[1:] + [-1]  # ᾱ_(-1) = 1: the last step lands on clean data
            want = torch.tensor([ddim_sigma(schedule.abar(t), schedule.abar(p), eta) for t, p in zip(t_list, prev)],
                                dtype=torch.float64)
            diff = max_diff(got, want)
            if diff > TOL:
                i = int((got.double() - want).abs().argmax())
                raise AssertionError(
                    f"σ is wrong for S = {steps}, spacing = {spacing!r}, η = {eta} (max difference {diff:.3g}, at "
                    f"step {i}: t = {t_list[i]} -> {prev[i]}, yours {float(got[i]):.5f}, "
                    f"expected {float(want[i]):.5f})."
                    f"\n{_step_sigma_hint(got.double(), want, schedule, ts, eta)}")
    except NotAttempted:
        return not_attempted("check_step_sigmas", "For each i, take ᾱ_t = ᾱ[timesteps[i]] and ᾱ_prev = "
                              "ᾱ[timesteps[i+1]] (1 for the last step), then σ = η·√((1-ᾱ_prev)/(1-ᾱ_t))·"
                              "√(1-ᾱ_t/ᾱ_prev).")
    print(f"Correct: your σ matches ddim_lesson.ddim_sigma at every step of {len(STEP_SIGMA_CASES)} runs "
          "(trailing, linspace and quadratic spacing; S up to 1000; η in {0.3, 0.5, 1}).")
    return True


def _step_sigma_hint(got: torch.Tensor, want: torch.Tensor, schedule: NoiseSchedule, ts: torch.Tensor,
                     eta: float) -> str:
    abar = schedule.alphas_cumprod
    a_t = abar[ts]
    one_step = torch.cat([torch.ones(1, dtype=abar.dtype), abar])[ts]  # ᾱ_(t-1), as if all T steps were used

    def sig(a_prev: torch.Tensor) -> torch.Tensor:
        return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).clamp(min=0).sqrt()

    if float((got - want**2).abs().max()) <= 1e-6:
        return "Hint: these are variances σ²; return the standard deviation σ (a square root)."
    if float((got[:-1] - want[:-1]).abs().max()) <= TOL:
        return ("Hint: every step is right except the last, which goes to clean data: use ᾱ_prev = 1 there "
                "(so σ = 0), not ᾱ at timestep 0.")
    if float((got - sig(one_step)).abs().max()) <= TOL:
        return ("Hint: you used ᾱ_(t-1), one timestep below t. With S < T steps the previous level is the next "
                "entry of the sequence, timesteps[i+1].")
    return "Hint: check eq. 16: σ = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev), with ᾱ_prev from the next timestep."
