"""The exact noise prediction of Gaussian data, unguided and guided: where every score is a closed form.

For data x0 ~ N(μ, v) per dimension, x_t = √ᾱ x0 + √(1-ᾱ) ε is Gaussian too, p_t = N(√ᾱ μ, ᾱ v + 1 - ᾱ), and
the minimum-MSE noise prediction is

    E[ε | x_t] = -√(1-ᾱ) ∇ log p_t(x_t) = √(1-ᾱ) (x_t - √ᾱ μ) / (ᾱ v + 1 - ᾱ).

Classifier-free guidance of two such Gaussians, "no label" N(μ_∅, v_∅) and class y N(μ_y, v_y), is then exact
too: ε = ε_∅ + scale·(ε_y - ε_∅), the combination ``cfg`` forms (scale 0: ε_∅, scale 1: ε_y). Notebook 07 runs
the ODE on it to show that guidance does not sample the tilted distribution p0(x) p0(y | x)^scale.
"""

from __future__ import annotations

import torch

from .checks import check_float

__all__ = ["gaussian_eps", "guided_gaussian_eps"]


def _check_abar(abar_t: torch.Tensor) -> None:
    if not torch.is_tensor(abar_t) or not bool(((abar_t > 0) & (abar_t < 1)).all()):
        got = (f"values from {float(abar_t.min())} to {float(abar_t.max())}" if torch.is_tensor(abar_t)
               and abar_t.numel() else repr(abar_t))
        raise ValueError(f"abar_t must be a tensor with every value in (0, 1), got {got}")


def gaussian_eps(x_t: torch.Tensor, abar_t: torch.Tensor, mean: float, var: float) -> torch.Tensor:
    """E[ε | x_t] for data x0 ~ N(mean, var) in every dimension: √(1-ᾱ)(x_t - √ᾱ mean)/(ᾱ var + 1 - ᾱ).

    x_t: (B, D) (any shape); abar_t: ᾱ_t broadcastable to x_t, e.g. (B, 1), every value in (0, 1); var > 0.
    Returns a tensor shaped like x_t. Bad ᾱ, mean or var: ValueError naming the value and the range.
    """
    _check_abar(abar_t)
    mean, var = check_float("mean", mean), check_float("var", var, 0.0, lo_open=True)
    return (1 - abar_t).sqrt() * (x_t - abar_t.sqrt() * mean) / (abar_t * var + 1 - abar_t)


def guided_gaussian_eps(x_t: torch.Tensor, abar_t: torch.Tensor, *, uncond: tuple[float, float],
                        cond: tuple[float, float], scale: float) -> torch.Tensor:
    """The exact guided ε_∅ + scale·(ε_y - ε_∅) for "no label" data N(*uncond) and class data N(*cond).

    uncond, cond: (mean, var) each; x_t: (B, D) (any shape); abar_t broadcastable to x_t, values in (0, 1).
    scale: ``cfg``'s guidance scale (Ho & Salimans' w = scale - 1), any finite number. Returns x_t's shape.
    """
    scale = check_float("scale", scale)
    eps_u, eps_c = gaussian_eps(x_t, abar_t, *uncond), gaussian_eps(x_t, abar_t, *cond)
    return eps_u + scale * (eps_c - eps_u)
