"""The two-moons quality measure of the model card (``weights/README.md``) and notebook 04.

- :func:`near_fraction`: the share of points within ``radius`` of either noise-free moon curve (the closed
  form of ``store.data.toy_2d``). Fresh data: 0.95 at radius 0.1 (its noise has σ = 0.05).
- :func:`energy_distance`: Székely's energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between two point sets,
  0 for identical distributions. Against a fresh draw of the data: a second draw of 5,000 points gives 0.001.
- :func:`rms_spread`: the RMS distance of points from a centre, per coordinate (notebook 11: a sampler's blob at
  the data's mean against the data's own spread).
"""

from __future__ import annotations

import math

import torch

__all__ = ["energy_distance", "moon_curves", "moon_distance", "near_fraction", "rms_spread"]


def moon_curves(n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """The two noise-free moons as (n, 2) float64 polylines (upper, lower), scaled as ``toy_2d`` scales them."""
    u = torch.linspace(0, math.pi, n, dtype=torch.float64)
    shift = torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = (torch.stack([torch.cos(u), torch.sin(u)], 1) - shift) * 1.4
    lower = (torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], 1) - shift) * 1.4
    return upper, lower


def moon_distance(x: torch.Tensor) -> torch.Tensor:
    """Each point's distance to the nearer moon curve. x: (N, 2) -> (N,) float64."""
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must be (N, 2) points, got shape {tuple(x.shape)}")
    upper, lower = moon_curves()
    x = x.double()
    return torch.minimum(torch.cdist(x, upper).min(1).values, torch.cdist(x, lower).min(1).values)


def near_fraction(x: torch.Tensor, radius: float = 0.1) -> float:
    """The share of the points (N, 2) within ``radius`` of either moon curve (the card's "near")."""
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a finite number > 0, got {radius}")
    return float((moon_distance(x) < radius).double().mean())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2E|X-Y| - E|X-X'| - E|Y-Y'| for point sets x: (N, d), y: (M, d) (V-statistics, in float64)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, d) and (M, d) point sets, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def rms_spread(x: torch.Tensor, centre: torch.Tensor) -> float:
    """√mean((x - centre)²) over every point and coordinate. x: (N, d) with N >= 1, centre: (d,)."""
    if x.ndim != 2 or x.shape[0] == 0 or centre.shape != x.shape[1:]:
        raise ValueError(f"x must be (N, d) points with N >= 1 and centre (d,), got {tuple(x.shape)} and "
                         f"{tuple(centre.shape)}")
    return float((x - centre).pow(2).mean().sqrt())
