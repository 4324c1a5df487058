"""Notebook 10's exercise: from the ε-model's world to the flow's, checked on the spot.

The learner writes ``my_to_flow(x_t, eps, abar) -> (s, x_s, v)``: the flow time s(ᾱ), the rescaled state
x_s = x_t/(√ᾱ + √(1-ᾱ)) and the velocity v = ε - x̂0. The checker compares the three with a reference
written from the formulas (not from the library), checks that the library's ``eps_to_velocity`` agrees
with it (a test of the library too), and names the usual mistakes: σ̄ or √(1-ᾱ) for s, x_t or x̄ = x_t/√ᾱ
for x_s, the sign of v, x_t in place of x̂0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...core.flow import eps_to_velocity
from ...core.schedules import NoiseSchedule
from .harness import TOL, NotAttempted, call_learner, case_generator, case_randn, checker, max_diff, not_attempted

ABARS = (0.7, 0.2, 0.01, 4e-5, 0.9999)  # mid noise first (the mistakes differ most there), then both ends


def reference_to_flow(x_t: torch.Tensor, eps: torch.Tensor, abar: float) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(s, x_s, v) at noise level ᾱ. x_t, eps: (B, ...).

    s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)), x_s = x_t/(√ᾱ + √(1-ᾱ)), v = ε - x̂0.
    """
    a, b = math.sqrt(abar), math.sqrt(1 - abar)
    s = b / (a + b)  # σ̄/(1 + σ̄) with σ̄ = b/a
    x_s = x_t / (a + b)  # = (1 - s)·x0 + s·ε
    x0_pred = (x_t - b * eps) / a  # DDIM eq. 9
    return s, x_s, eps - x0_pred


def _s_mistakes(abar: float) -> dict[str, float]:
    a, b = math.sqrt(abar), math.sqrt(1 - abar)
    return {"σ̄ = √(1-ᾱ)/√ᾱ, the ODE's noise level; s squeezes it into [0, 1]: s = σ̄/(1 + σ̄)": b / a,
            "√(1-ᾱ), the noise's weight in x_t; divide by the sum of both weights, √ᾱ + √(1-ᾱ)": b,
            "1 - ᾱ; s uses square roots: √(1-ᾱ)/(√ᾱ + √(1-ᾱ))": 1 - abar}


def _x_mistakes(x_t: torch.Tensor, eps: torch.Tensor, abar: float) -> dict[str, torch.Tensor]:
    a, b = math.sqrt(abar), math.sqrt(1 - abar)
    x0 = (x_t - b * eps) / a
    return {"x_s": {"x_t unchanged; x_s = x_t/(√ᾱ + √(1-ᾱ)) so that its weights (1 - s) and s sum to 1": x_t,
                    "x̄ = x_t/√ᾱ (the σ̄-ODE's state); the flow divides by √ᾱ + √(1-ᾱ)": x_t / a},
            "v": {"x̂0 - ε: the sign is flipped; v = dx_s/ds points from data (s = 0) to noise (s = 1): ε - x̂0":
                  x0 - eps,
                  "ε - x_t: x_t is not x̂0; predict x̂0 = (x_t - √(1-ᾱ)·ε)/√ᾱ first (DDIM eq. 9)": eps - x_t}}


@checker
def check_to_flow(fn: Callable[[torch.Tensor, torch.Tensor, float], tuple]) -> bool:
    """Check ``fn(x_t, eps, abar) -> (s, x_s, v)`` at five noise levels, and the library against it."""
    g = case_generator(10)
    sched = NoiseSchedule.linear()
    try:
        for abar in ABARS:
            x_t, eps = case_randn((4, 1, 5, 5), g), case_randn((4, 1, 5, 5), g)
            out = call_learner(fn, x_t, eps, abar)
            if not (isinstance(out, tuple) and len(out) == 3):
                raise AssertionError(f"return the tuple (s, x_s, v), got {type(out).__name__}")
            s_want, xs_want, v_want = reference_to_flow(x_t, eps, abar)
            s = float(out[0])
            if abs(s - s_want) > TOL:
                hint = next((h for h, val in _s_mistakes(abar).items() if abs(s - val) <= TOL),
                            "s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)); it is 0 at ᾱ = 1 (data) and tends to 1 as ᾱ → 0 (noise)")
                raise AssertionError(f"s is wrong at ᾱ = {abar:g}: got {s:.6g}, expected {s_want:.6g}.\nHint: {hint}.")
            mistakes = _x_mistakes(x_t, eps, abar)
            for i, (name, want) in enumerate((("x_s", xs_want), ("v", v_want)), start=1):
                got = out[i]
                if not torch.is_tensor(got) or got.shape != want.shape:
                    raise AssertionError(f"{name} must be a tensor of shape {tuple(want.shape)}, got "
                                         f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))} (at ᾱ = {abar:g})")
                diff = max_diff(got, want)
                if diff > TOL:
                    hint = next((h for h, val in mistakes[name].items() if max_diff(got, val) <= TOL),
                                "x_s = x_t/(√ᾱ + √(1-ᾱ)); v = ε - x̂0 with x̂0 = (x_t - √(1-ᾱ)·ε)/√ᾱ")
                    raise AssertionError(f"{name} is wrong at ᾱ = {abar:g} (max difference {diff:.3g}).\nHint: {hint}.")
    except NotAttempted:
        return not_attempted("check_to_flow", "Return s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)), x_s = x_t/(√ᾱ + √(1-ᾱ)) and "
                              "v = ε - x̂0, where x̂0 = (x_t - √(1-ᾱ)·ε)/√ᾱ.")
    _library_agrees(sched)
    print(f"Correct: s, x_s and v match at ᾱ = {', '.join(f'{a:g}' for a in ABARS)}; the library's eps_to_velocity "
          "gives the same v on the linear schedule's clock.")
    return True


def _library_agrees(sched: NoiseSchedule) -> None:
    """The library's velocity equals the reference at three timesteps (an internal check of the library)."""
    g = case_generator(11)
    for t in (0, 500, 999):
        x_t = case_randn((3, 4), g)

        def model(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x) + 0.1 * tt.double().view(-1, 1) / 1000  # any ε-model will do

        abar = float(sched.alphas_cumprod[t])
        s, x_s, v = reference_to_flow(x_t, model(x_t, torch.full((3,), t)), abar)
        got = eps_to_velocity(model, sched)(x_s, torch.full((3,), s, dtype=torch.float64))
        if max_diff(got, v) > 1e-9:
            raise AssertionError(f"internal: eps_to_velocity disagrees with the reference at t = {t}")
