"""Bad arguments raise ValueError naming the bad value and the allowed range (never a silent clamp)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from ddim_lesson import (
    NoiseSchedule,
    ddim_invert,
    ddim_progressive,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    lerp,
    slerp,
)

T = 20
SCH = NoiseSchedule.linear(T, 1e-3, 0.2)
X = torch.zeros(2, 3, dtype=torch.float64)


def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.1 * x_t


def wrong_shape_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x_t.shape[0], 4, dtype=x_t.dtype)


# Each callable takes the argument under test; the rest are valid.
STEPS_CALLS = {
    "ddim_sample": lambda s: ddim_sample(eps_model, SCH, X, steps=s),
    "ddim_progressive": lambda s: ddim_progressive(eps_model, SCH, X, steps=s),
    "ddpm_sample": lambda s: ddpm_sample(eps_model, SCH, X, steps=s),
    "ddim_invert": lambda s: ddim_invert(eps_model, SCH, X, steps=s),
    "ddim_timesteps": lambda s: ddim_timesteps(T, s),
}
ETA_CALLS = {
    "ddim_sample": lambda e: ddim_sample(eps_model, SCH, X, steps=5, eta=e),
    "ddim_progressive": lambda e: ddim_progressive(eps_model, SCH, X, steps=5, eta=e),
    "ddim_step": lambda e: ddim_step(X, X, 0.5, 0.7, eta=e, noise=X),
}
SPACING_CALLS = {
    "ddim_sample": lambda sp: ddim_sample(eps_model, SCH, X, steps=5, spacing=sp),
    "ddim_progressive": lambda sp: ddim_progressive(eps_model, SCH, X, steps=5, spacing=sp),
    "ddpm_sample": lambda sp: ddpm_sample(eps_model, SCH, X, steps=5, spacing=sp),
    "ddim_invert": lambda sp: ddim_invert(eps_model, SCH, X, steps=5, spacing=sp),
    "ddim_timesteps": lambda sp: ddim_timesteps(T, 5, sp),
}
X_CALLS = {
    "ddim_sample": lambda x: ddim_sample(eps_model, SCH, x, steps=5),
    "ddim_progressive": lambda x: ddim_progressive(eps_model, SCH, x, steps=5),
    "ddpm_sample": lambda x: ddpm_sample(eps_model, SCH, x),
    "ddim_invert": lambda x: ddim_invert(eps_model, SCH, x, steps=5),
}
SHAPE_CALLS = {
    "ddim_sample": lambda: ddim_sample(wrong_shape_model, SCH, X, steps=5),
    "ddim_progressive": lambda: next(ddim_progressive(wrong_shape_model, SCH, X, steps=5)),
    "ddpm_sample": lambda: ddpm_sample(wrong_shape_model, SCH, X),
    "ddim_invert": lambda: ddim_invert(wrong_shape_model, SCH, X, steps=5),
    "ddim_step": lambda: ddim_step(X, torch.zeros(2, 4, dtype=torch.float64), 0.5, 0.7),
}


@pytest.mark.parametrize("name", STEPS_CALLS)
@pytest.mark.parametrize("steps", [0, T + 1, -3, 2.5, True, "5", None])
def test_bad_steps(name: str, steps) -> None:
    if steps is None and name == "ddpm_sample":
        pytest.skip("ddpm_sample's steps=None means all T steps")
    got = f"got (the bool )?{re.escape(repr(steps))}"
    with pytest.raises(ValueError, match=rf"steps must be an integer in \[1, {T}\], {got}"):
        STEPS_CALLS[name](steps)


@pytest.mark.parametrize("name", ETA_CALLS)
@pytest.mark.parametrize("eta", [-0.1, 1.5, 1.0000001, 2, math.nan, math.inf, -math.inf, True, "0.5", None])
def test_bad_eta(name: str, eta) -> None:
    """eta outside [0, 1] is refused, never clamped: above 1, σ² > 1 - ᾱ_prev leaves DDIM's family."""
    with pytest.raises(ValueError, match=rf"eta must be a finite number in \[0.0, 1.0\], got {re.escape(repr(eta))}"):
        ETA_CALLS[name](eta)


@pytest.mark.parametrize("name", SPACING_CALLS)
@pytest.mark.parametrize("spacing", ["uniform", "Trailing", ""])
def test_unknown_spacing(name: str, spacing: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown spacing {re.escape(repr(spacing))}; allowed: leading, trailing"):
        SPACING_CALLS[name](spacing)


@pytest.mark.parametrize("name", X_CALLS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input(name: str, bad: float) -> None:
    x = X.clone()
    x[1, 2] = bad
    what = "x0" if name == "ddim_invert" else "x_T"
    with pytest.raises(ValueError, match=rf"{what} must be finite everywhere; it has 1 NaN/inf entries"):
        X_CALLS[name](x)


@pytest.mark.parametrize("name", SHAPE_CALLS)
def test_model_output_of_wrong_shape(name: str) -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 4\) must equal x\w* shape \(2, 3\)"):
        SHAPE_CALLS[name]()


def test_progressive_validates_before_iterating() -> None:
    """The generator form checks its arguments at call time, not at the first ``next``."""
    with pytest.raises(ValueError, match="steps"):
        ddim_progressive(eps_model, SCH, X, steps=0)
    with pytest.raises(ValueError, match="eta"):
        ddim_progressive(eps_model, SCH, X, steps=5, eta=-1.0)
    with pytest.raises(ValueError, match="x_T"):
        ddim_progressive(eps_model, SCH, torch.full((1, 2), math.nan), steps=5)


def test_ddim_step_needs_noise_when_sigma_positive() -> None:
    with pytest.raises(ValueError, match=r"sigma=.* > 0 needs a noise tensor"):
        ddim_step(X, X, 0.5, 0.7, eta=0.5)


def test_ddpm_unknown_variance() -> None:
    with pytest.raises(ValueError, match=r"unknown variance 'sigma'; allowed: posterior, beta"):
        ddpm_sample(eps_model, SCH, X, variance="sigma")


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan])
def test_interpolation_alpha_out_of_range(alpha: float) -> None:
    for f in (slerp, lerp):
        with pytest.raises(ValueError, match=rf"alpha must be in \[0, 1\], got {re.escape(repr(alpha))}"):
            f(X, X + 1, alpha)


def test_bad_schedule_arguments() -> None:
    with pytest.raises(ValueError, match=r"T must be an integer >= 1, got 0"):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError, match=r"need 0 < beta_start <= beta_end < 1, got beta_start=0.1, beta_end=0.01"):
        NoiseSchedule.linear(10, 0.1, 0.01)
    with pytest.raises(ValueError, match=r"timestep 20 out of range; allowed \[-1, 19\]"):
        SCH.abar(20)
