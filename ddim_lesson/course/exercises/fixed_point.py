"""The exercise of notebook 08: one step of fixed-point DDIM inversion, and its checker."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...core.samplers import Model
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
from .latents import reference_invert_step as invert_step


def reference_fixed_point_step(model: Model, x: torch.Tensor, t: torch.Tensor, abar_from: float, abar_to: float,
                               k: int) -> torch.Tensor:
    """x at level ᾱ_from -> x at the noisier level ᾱ_to, re-predicting eps at the new point k times.

    x: (B, ...), t: (B,) the timestep of level ᾱ_to. Costs 1 + k model calls. ``invert_step`` is
    notebook 05's exercise: x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from, then √ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.
    """
    x_to = invert_step(x, model(x, t), abar_from, abar_to)  # plain inversion: eps at the point we have
    for _ in range(k):
        x_to = invert_step(x, model(x_to, t), abar_from, abar_to)  # eps where the sampling step will ask for it
    return x_to


class _Counted:
    def __init__(self, model: Model) -> None:
        self.model, self.calls, self.inputs = model, 0, []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.inputs.append(x.clone())
        return self.model(x, t)


def _toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth nonlinear stand-in for a network whose fixed-point iteration contracts."""
    return 0.5 * torch.tanh(x) + 0.1 * torch.sin(t.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) / 100)


CASES = ((1.0, 0.98, 20, 0), (0.98, 0.7, 150, 1), (0.7, 0.2, 500, 3), (0.2, 0.01, 900, 6))  # ᾱ_from, ᾱ_to, t, k


@checker
def check_fixed_point_step(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(model, x, t, abar_from, abar_to, k)`` against the reference: the value, and 1 + k model calls."""
    g = case_generator(8)
    try:
        for abar_from, abar_to, t_int, k in CASES:
            x = case_randn((3, 1, 4, 4), g)
            t = torch.full((3,), t_int, dtype=torch.long)
            counted = _Counted(_toy_eps)
            got = as_tensor(call_learner(fn, counted, x, t, abar_from, abar_to, k), x, f"x at ᾱ_to = {abar_to}")
            want = reference_fixed_point_step(_toy_eps, x, t, abar_from, abar_to, k)
            if counted.calls != 1 + k:
                raise AssertionError(f"with k = {k} the step should call the model 1 + k = {1 + k} times, it called "
                                     f"it {counted.calls} times.\nHint: one plain prediction at x, then k more.")
            diff = max_diff(got, want)
            if diff > TOL:
                plain = reference_fixed_point_step(_toy_eps, x, t, abar_from, abar_to, 0)
                if k > 0 and all(max_diff(inp, x) == 0 for inp in counted.inputs):
                    hint = "every call got the starting x: re-predict eps at your latest estimate of x at ᾱ_to."
                elif k > 0 and max_diff(got, plain) <= TOL:
                    hint = "the result is the plain step: use the re-predicted eps in the step you return."
                else:
                    hint = ("each iteration steps from the same x (at ᾱ_from) with eps = model(x_to, t), the eps at "
                            "the current estimate x_to; invert_step(x, eps, abar_from, abar_to) is the step.")
                raise AssertionError(f"the step is wrong from ᾱ = {abar_from} to {abar_to} with k = {k} "
                                     f"(max difference {diff:.3g}).\nHint: {hint}")
    except NotAttempted:
        return not_attempted("check_fixed_point_step", "Start with x_to = invert_step(x, model(x, t), abar_from, "
                              "abar_to), then k times: x_to = invert_step(x, model(x_to, t), abar_from, abar_to).")
    print(f"Correct: your step matches the reference on {len(CASES)} cases (k = 0, 1, 3, 6), with 1 + k model calls "
          "each.")
    return True
