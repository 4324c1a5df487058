"""Notebook 06's exercise: write one Heun step, checked on the spot.

The learner writes ``my_heun_step(xbar, sigma, sigma_next, slope) -> xbar_next`` where
``slope(xbar, sigma)`` returns dx̄/dσ̄ (the model's ε there). The checker runs it on a nonlinear
slope with known answers and names the usual mistakes: no corrector (that is Euler, i.e. DDIM), the
second slope taken at the wrong noise level or at the wrong point, only the end slope, a corrector
on the last step to σ̄ = 0, and any error raised inside the learner's function, which comes back
as a hint rather than a traceback. The function is called through the course's one harness
(:func:`~ddim_lesson.course.exercises.harness.call_learner`), so an answer that changes ``xbar`` in place is
refused as in every other exercise; a float32 answer with the right maths gets a hint that names
the dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .harness import LearnerError, NotAttempted, call_learner, checker, not_attempted

Slope = Callable[[torch.Tensor, float], torch.Tensor]
TOL = 1e-9  # float64 throughout: only a real mistake is this large
F32_TOL = 1e-5  # what float32 round-off of a right answer can reach, relative to its size


def reference_heun_step(xbar: torch.Tensor, sigma: float, sigma_next: float, slope: Slope) -> torch.Tensor:
    """One step of EDM Algorithm 1 (Karras et al. 2022) in (σ̄, x̄). xbar: (B, ...) -> (B, ...)."""
    h = sigma_next - sigma
    d = slope(xbar, sigma)  # slope at the start of the step
    xbar_euler = xbar + h * d  # Euler predictor: this alone is DDIM
    if sigma_next == 0:
        return xbar_euler  # last step: no model at σ̄ = 0, so EDM keeps the Euler step
    d_next = slope(xbar_euler, sigma_next)  # slope at the END of the step, at the predicted point
    return xbar + h * 0.5 * (d + d_next)  # trapezoidal rule


class _Slope:
    """A nonlinear test slope dx̄/dσ̄ = sin(x̄)·(1 + σ̄) + 0.3·σ̄²; refuses σ̄ = 0 like a model at ᾱ = 1."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, xbar: torch.Tensor, sigma: float) -> torch.Tensor:
        sigma = float(sigma)
        if sigma <= 0:
            raise ValueError("the model has no timestep at σ̄ = 0 (ᾱ = 1): no slope can be evaluated there")
        self.calls.append(sigma)
        return torch.sin(xbar) * (1 + sigma) + 0.3 * sigma**2


CASES = ((2.0, 1.2), (0.8, 0.3), (5.0, 4.0), (0.4, 0.0))  # (σ̄, σ̄_next); the last goes to clean data


def _mistakes(xbar: torch.Tensor, s: float, sn: float) -> dict[str, torch.Tensor]:
    f, h = _Slope(), sn - s
    d = f(xbar, s)
    pred = xbar + h * d
    out = {"euler": pred}
    if sn > 0:
        out["wrong_sigma"] = xbar + h * 0.5 * (d + f(pred, s))  # second slope at σ̄_i again
        out["wrong_point"] = xbar + h * 0.5 * (d + f(xbar, sn))  # at σ̄_{i+1}, but from the old x̄
        out["end_only"] = xbar + h * f(pred, sn)
        out["from_pred"] = pred + h * 0.5 * (d + f(pred, sn))  # averaged slope added to the predictor
        out["sign"] = xbar - h * 0.5 * (d + f(xbar - h * d, sn))
    return out


HINTS = {
    "euler": "this is Euler's step (DDIM): you stopped after the predictor. Heun evaluates the slope again at the "
             "end of the step, at (x̄_euler, σ̄_next), and averages the two slopes.",
    "wrong_sigma": "the second slope is taken at the wrong noise level: evaluate it at σ̄_next, the END of the step, "
                   "not at σ̄ again.",
    "wrong_point": "the second slope is taken at the old point x̄; take it at the Euler prediction "
                   "x̄ + (σ̄_next - σ̄)·d.",
    "end_only": "you used only the end slope; Heun's rule is the average ½(d + d_next) of the two slopes.",
    "from_pred": "the averaged slope must be applied from the start point x̄, not added to the Euler prediction.",
    "sign": "the step size is h = σ̄_next - σ̄ (negative when denoising), not σ̄ - σ̄_next.",
}


@checker
def check_heun_step(fn: Callable[[torch.Tensor, float, float, Slope], torch.Tensor]) -> bool:
    """Check ``fn(xbar, sigma, sigma_next, slope) -> xbar_next`` against EDM's Heun step on four cases."""
    g = torch.Generator().manual_seed(6)
    for s, sn in CASES:
        xbar = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
        where = f"σ̄ = {s}, σ̄_next = {sn}"
        slope = _Slope()
        try:
            out = call_learner(fn, xbar, s, sn, slope)  # on copies; an input changed in place is named
        except NotAttempted:
            return not_attempted("check_heun_step", "Compute d = slope(xbar, sigma), the Euler prediction, the "
                                  "slope at its end, and average the two.")
        except LearnerError as e:  # the learner's error comes back as a hint
            hint = ("on the last step (σ̄_next = 0) the model cannot be called: skip the corrector there and keep "
                    "the Euler step, as EDM does." if sn == 0 and "σ̄ = 0" in str(e.error) else
                    "read the message above; the inputs are a float64 tensor xbar, floats sigma and sigma_next, "
                    "and slope(xbar, sigma) returns a tensor like xbar.")
            raise AssertionError(f"{e} (at {where}).\nHint: {hint}") from None
        if not torch.is_tensor(out) or out.shape != xbar.shape:
            raise AssertionError(f"return x̄_next, a tensor of shape {tuple(xbar.shape)}; got "
                                 f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))} (at {where})")
        want = reference_heun_step(xbar, s, sn, _Slope())
        err = float((out.double() - want).abs().max())
        if err > TOL and out.dtype != torch.float64 and err < F32_TOL * max(1.0, float(want.abs().max())):
            raise AssertionError(f"your step is right to {err:.1g}, but it returns a {out.dtype} tensor: the "
                                 f"inputs are float64, and {out.dtype} keeps only about 7 digits (at {where}).\n"
                                 "Hint: a tensor made without a dtype (torch.zeros(...), torch.tensor(...)) or a "
                                 ".float() is float32; build on xbar (torch.zeros_like(xbar), xbar + ...) to keep "
                                 "its dtype.")
        if err > TOL:
            tol = TOL if out.dtype == torch.float64 else F32_TOL * max(1.0, float(want.abs().max()))
            for name, wrong in _mistakes(xbar, s, sn).items():
                if float((out.double() - wrong).abs().max()) < tol:
                    raise AssertionError(f"wrong at {where} (max difference {err:.3g}).\nHint: {HINTS[name]}")
            raise AssertionError(f"wrong at {where} (max difference {err:.3g}).\nHint: x̄_next = x̄ + h·½(d + "
                                 "d_next), with h = σ̄_next - σ̄, d = slope(x̄, σ̄), d_next = slope(x̄ + h·d, σ̄_next).")
        calls = len(slope.calls)
        if calls != (1 if sn == 0 else 2):
            raise AssertionError(f"your step called the model {calls} times at {where}; Heun needs exactly "
                                 f"{1 if sn == 0 else 2} (each call is a network evaluation: that is the cost).")
    print(f"Correct: your Heun step matches EDM's Algorithm 1 on {len(CASES)} steps, including the last step to "
          "σ̄ = 0, with 2 model calls per step (1 on the last).")
    return True

