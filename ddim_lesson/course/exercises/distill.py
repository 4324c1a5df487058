"""The exercise of notebook 11: progressive distillation's target x̃ from two teacher DDIM steps, and its checker.

The checker's teacher is the exact ε of Gaussian data N(m, s² I) (a linear map, so every number is known),
in float64 on the course's linear schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...core.schedules import NoiseSchedule
from .harness import (
    TOL,
    NotAttempted,
    as_tensor,
    call_learner,
    case_generator,
    case_randn,
    checker,
    max_diff,
    not_attempted,
)

CASES = ((999, 499, -1), (999, 749, 499), (499, 374, 249), (124, 93, 62), (31, 15, -1))  # (t, t_mid, t_next)


def reference_distill_target(teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                             z_t: torch.Tensor, t: int, t_mid: int, t_next: int) -> torch.Tensor:
    """x̃ (B, ...): two teacher DDIM steps t -> t_mid -> t_next (η = 0, no clipping), then the x0 with which
    ONE DDIM step from z_t lands on the same point (Salimans & Ho 2022, Algorithm 2). t_next = -1: ᾱ = 1."""
    a, a_mid, a_next = schedule.abar(t), schedule.abar(t_mid), schedule.abar(t_next)
    B = z_t.shape[0]
    eps = teacher(z_t, torch.full((B,), t))
    x0 = (z_t - math.sqrt(1 - a) * eps) / math.sqrt(a)  # DDIM eq. 9
    z_mid = math.sqrt(a_mid) * x0 + math.sqrt(1 - a_mid) * eps  # eq. 12, σ = 0
    eps = teacher(z_mid, torch.full((B,), t_mid))
    x0 = (z_mid - math.sqrt(1 - a_mid) * eps) / math.sqrt(a_mid)
    z_next = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps
    ratio = math.sqrt(1 - a_next) / math.sqrt(1 - a)  # σ''/σ
    return (z_next - ratio * z_t) / (math.sqrt(a_next) - ratio * math.sqrt(a))


def gaussian_teacher(schedule: NoiseSchedule, m: float = 0.4, s: float = 0.6) -> Callable[..., torch.Tensor]:
    """The exact ε-predictor of data N(m, s² I): x̂0 = m + α s²/(α² s² + σ²)(z - α m), ε = (z - α x̂0)/σ."""
    abar = schedule.alphas_cumprod

    def teacher(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (z.ndim - 1)
        a, sig = abar[t].sqrt().view(shape).to(z.dtype), (1 - abar[t]).sqrt().view(shape).to(z.dtype)
        x0 = m + a * s**2 / (a**2 * s**2 + sig**2) * (z - a * m)
        return (z - a * x0) / sig

    return teacher


def _wrong(teacher: Callable[..., torch.Tensor], sched: NoiseSchedule, z: torch.Tensor, t: int, tm: int, tn: int,
           kind: str) -> torch.Tensor:
    a, am, an = sched.abar(t), sched.abar(tm), sched.abar(tn)
    B = z.shape[0]
    eps = teacher(z, torch.full((B,), t))
    x0 = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if kind == "teacher x0":
        return x0
    zm = math.sqrt(am) * x0 + math.sqrt(1 - am) * eps
    e2 = teacher(zm, torch.full((B,), tm))
    x02 = (zm - math.sqrt(1 - am) * e2) / math.sqrt(am)
    if kind == "second x0":
        return x02
    zn = math.sqrt(an) * x02 + math.sqrt(1 - an) * e2
    r = math.sqrt(1 - an) / math.sqrt(1 - a)
    if kind == "one step":
        zn = zm
    return (zn - r * z) / (math.sqrt(an) - r * math.sqrt(a))


HINTS = {
    "teacher x0": "that is the teacher's own x̂0 at t: the target must come from TWO teacher DDIM steps, t -> t_mid -> "
                  "t_next, then be solved for the x0 that ONE step t -> t_next needs.",
    "second x0": "that is the teacher's x̂0 at t_mid; carry on: step to z_next = √ᾱ''·x̂0 + √(1-ᾱ'')·ε, then solve "
                 "z_next = √ᾱ''·x̃ + √(1-ᾱ'')·(z_t - √ᾱ·x̃)/√(1-ᾱ) for x̃.",
    "one step": "you used z_mid (ONE teacher step) where z_next (after the SECOND step) belongs.",
}


@checker
def check_distill_target(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(teacher, schedule, z_t, t, t_mid, t_next)`` -> x̃ (B, D) on five step triples, t_next = -1 too."""
    sched = NoiseSchedule.linear(1000)
    teacher = gaussian_teacher(sched)
    g = case_generator(11)
    try:
        for t, tm, tn in CASES:
            z = case_randn((6, 3), g)  # (B, D) float64
            want = reference_distill_target(teacher, sched, z, t, tm, tn)
            got = as_tensor(call_learner(fn, teacher, sched, z, t, tm, tn), want, f"x̃ for {t} -> {tm} -> {tn}")
            diff = max_diff(got, want)
            if diff > TOL:
                hint = next((h for k, h in HINTS.items() if max_diff(got, _wrong(teacher, sched, z, t, tm, tn, k))
                             <= TOL), "x̃ = (z_next - (σ''/σ) z_t) / (√ᾱ'' - (σ''/σ) √ᾱ), with σ = √(1-ᾱ) (the noise "
                            "levels, not √ᾱ); t_next = -1 means ᾱ'' = 1 (schedule.abar(-1) is 1).")
                raise AssertionError(f"x̃ is wrong for the steps {t} -> {tm} -> {tn} (max difference {diff:.3g})."
                                     f"\nHint: {hint}")
    except NotAttempted:
        return not_attempted("check_distill_target", "Take two DDIM steps with the teacher (eq. 9, then eq. 12 "
                              "with σ = 0), then solve one step's equation for x̃.")
    print(f"Correct: your x̃ matches Algorithm 2 on {len(CASES)} step triples (from {CASES[0]} to {CASES[-1]}, "
          "the last steps to clean data included), with the exact teacher of Gaussian data.")
    return True
