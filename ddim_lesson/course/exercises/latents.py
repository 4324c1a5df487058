"""Exercise checkers of notebooks 04-05, the latent space: slerp between two latents, one step of DDIM inversion.

Called through the shared harness (``harness.call_learner``), like every checker; each
``reference_*`` is written from the paper's equations, not by calling the library.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...core.inversion import lerp
from .harness import (
    TOL,
    LearnerError,
    NotAttempted,
    as_tensor,
    call_learner,
    case_generator,
    case_randn,
    checker,
    max_diff,
    not_attempted,
)


def reference_slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation of each row: z0, z1 of shape (B, D), α in [0, 1]. Returns (B, D)."""
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1, 1))  # (B, 1) the angle between z0 and z1
    return (torch.sin((1 - alpha) * theta) * z0 + torch.sin(alpha * theta) * z1) / torch.sin(theta)


@checker
def check_slerp(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(z0, z1, alpha) -> z`` on (B, D) Gaussian latents against ``ddim_lesson.slerp``."""
    from ...core.inversion import slerp

    g = case_generator(4)
    z0, z1 = case_randn((5, 784), g), case_randn((5, 784), g)
    z1[4] = 0.3 * z0[4] + z1[4]  # one pair that is not orthogonal, so the angle matters
    try:
        for alpha in (0.0, 0.25, 0.5, 0.9, 1.0):
            got = as_tensor(call_learner(fn, z0, z1, alpha), z0, f"slerp at alpha = {alpha}")
            want = slerp(z0, z1, alpha)
            diff = max_diff(got, want)
            if diff <= TOL:
                continue
            norm = float(got.norm(dim=-1).mean() / want.norm(dim=-1).mean())
            if max_diff(got, lerp(z0, z1, alpha)) <= TOL:
                hint = "that is lerp, (1-α)·z0 + α·z1, whose norm shrinks; weight z0 and z1 by sines of angles."
            elif max_diff(got, want / want.norm(dim=-1, keepdim=True)) <= 1e-4:
                hint = "your result has norm 1; slerp keeps the norm of the latents (about √D = 28 here)."
            elif abs(norm - 1) < 0.02:
                hint = ("the norm is right but the direction is not: θ is the angle between z0 and z1, "
                        "arccos(z0·z1 / (|z0| |z1|)), computed per row, and the weights are "
                        "sin((1-α)θ)/sin θ and sin(αθ)/sin θ.")
            else:
                hint = "slerp(z0, z1, α) = sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1, θ the angle between them."
            raise AssertionError(f"slerp is wrong at alpha = {alpha} (max difference {diff:.3g}; your mean norm is "
                                 f"{norm:.3f} of the expected one).\nHint: {hint}")
    except NotAttempted:
        return not_attempted("check_slerp", "Compute θ = arccos(z0·z1 / (|z0| |z1|)) per row, then return "
                              "sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1.")
    print("Correct: your slerp matches ddim_lesson.slerp at alpha = 0, 0.25, 0.5, 0.9 and 1, "
          "on orthogonal and on correlated pairs.")
    return True


# --------------------------------------------------------------------------------------
# Notebook 05: one step of DDIM inversion
# --------------------------------------------------------------------------------------
def reference_invert_step(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """Move x from noise level ᾱ_from up to ᾱ_to < ᾱ_from with eq. 12 at η = 0. x, eps: (B, ...)."""
    x0_pred = (x - math.sqrt(1 - abar_from) * eps) / math.sqrt(abar_from)  # eq. 9 (x itself when ᾱ_from = 1)
    return math.sqrt(abar_to) * x0_pred + math.sqrt(1 - abar_to) * eps


INVERT_CASES = ((1.0, 0.99), (0.99, 0.9), (0.9, 0.5), (0.5, 0.02), (0.3, 0.0001))  # (ᾱ_from, ᾱ_to)


def _invert_output(fn: Callable[..., torch.Tensor], x: torch.Tensor, eps: torch.Tensor, abar_from: float,
                   abar_to: float) -> torch.Tensor:
    """The learner's step on one case; at ᾱ_from = 1 a division by zero or a NaN gets the hint about σ's 0/0."""
    try:
        return as_tensor(call_learner(fn, x, eps, abar_from, abar_to), x, f"x at ᾱ_to = {abar_to}")
    except NotAttempted:
        raise
    except AssertionError as e:
        divided_by_zero = (isinstance(e, LearnerError) and isinstance(e.error, ZeroDivisionError)
                           or "NaN" in str(e))  # raised ZeroDivisionError, or returned 0/0
        if abar_from < 1.0 or not divided_by_zero:
            raise
        raise AssertionError(
            f"the inversion step fails from clean data (ᾱ_from = 1) to ᾱ_to = {abar_to}: {e}\n"
            "Hint: inversion is deterministic (η = 0) and needs no σ. If you reused the η-aware DDIM step of "
            "notebook 03, its σ = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev) divides by 1-ᾱ_t, which is 0 here "
            "(0/0 even at η = 0). Drop σ: x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from, then return "
            "√ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.") from None


@checker
def check_invert_step(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> bool:
    """Check ``fn(x, eps, abar_from, abar_to) -> x at ᾱ_to`` against the step ``ddim_lesson.ddim_invert`` takes."""
    from ...core.inversion import invert_step

    g = case_generator(5)
    shape = (3, 1, 4, 4)
    try:
        for abar_from, abar_to in INVERT_CASES:
            x, eps = case_randn(shape, g), case_randn(shape, g)
            got = _invert_output(fn, x, eps, abar_from, abar_to)
            want = invert_step(x.clone(), eps, abar_from, abar_to)
            diff = max_diff(got, want)
            if diff > TOL:
                swapped = abar_from < 1 and max_diff(got, reference_invert_step(x, eps, abar_to, abar_from)) <= TOL
                if swapped:
                    hint = "you went the wrong way: the step starts at ᾱ_from (less noise) and ends at ᾱ_to."
                elif max_diff(got, abar_to * (x - (1 - abar_from) * eps) / abar_from + (1 - abar_to) * eps) <= TOL:
                    hint = "use square roots: √ᾱ and √(1-ᾱ) scale x0 and eps; ᾱ and 1-ᾱ are variances."
                else:
                    hint = ("first recover x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from (eq. 9), then put it at the new "
                            "level: √ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.")
                raise AssertionError(f"the inversion step is wrong from ᾱ = {abar_from} to ᾱ = {abar_to} "
                                     f"(max difference {diff:.3g}).\nHint: {hint}")
    except NotAttempted:
        return not_attempted("check_invert_step", "Compute x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from, then return "
                              "√ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.")
    print(f"Correct: your step matches the library's inversion step on {len(INVERT_CASES)} cases, from clean "
          "data (ᾱ = 1) to almost pure noise (ᾱ = 0.0001).")
    return True
