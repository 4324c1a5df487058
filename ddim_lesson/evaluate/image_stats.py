"""Small measurements of images and samples that the notebooks read off a batch, each a number or one per image.

- :func:`correlation`: Pearson's correlation between the entries of two tensors (notebook 01: how much of x_0
  is left in x_t; notebook 03: how consecutive states x_t, x_{t-1} of DDIM's inference process
  q_σ(x_{t-1} | x_t, x_0), given x_0, correlate for each η).
- :func:`neighbour_correlation`: the correlation of horizontally adjacent pixels (notebook 05: does an inverted
  latent look like noise, about 0, or like an image, near 1?).
- :func:`total_variation`: the mean |difference| between neighbouring pixels (notebook 04: how grainy a sample is).
- :func:`highlights`, :func:`background_share`: per image, the 95th percentile of the pixels and the share of
  nearly black ones (notebook 04: why lerp's midpoints look washed out).

Pixels are on the [-1, 1] scale the models use. The mean squared error of two batches is
:func:`~ddim_lesson.evaluate.metrics.mse`; the distance to the nearest data point is
:func:`~ddim_lesson.evaluate.memorisation.nearest_neighbours`.
"""

from __future__ import annotations

import torch

from ..core.checks import check_float

__all__ = ["background_share", "correlation", "highlights", "neighbour_correlation", "total_variation"]


def _tensor(name: str, x: torch.Tensor, min_ndim: int) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < min_ndim:
        raise ValueError(f"{name} must be a floating tensor with at least {min_ndim} dimensions, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite everywhere (allowed: finite values)")
    return x


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation between corresponding entries of a and b, over all their entries.

    a, b: any shape with the same number of entries, n >= 2 (e.g. (B, C, H, W) images, or (N,) draws of
    one pixel); computed in their common dtype, torch.promote_types(a.dtype, b.dtype) (float32 with float64:
    float64). Returns a float in [-1, 1]. ValueError if either is constant (the correlation is then undefined).
    """
    a, b = _tensor("a", a, 1), _tensor("b", b, 1)
    if a.numel() != b.numel() or a.numel() < 2:
        raise ValueError(f"a and b must have the same number of entries, at least 2; got shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)  # no copy where the dtype is already the common one
    constant = bool(a.amin() == a.amax()) or bool(b.amin() == b.amax())  # exact: a - mean can round to ±1e-8
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()  # (n,) each, centred
    norms = a.norm() * b.norm()
    if constant or float(norms) == 0.0:
        raise ValueError("a or b is constant: the correlation is undefined (allowed: tensors that vary)")
    return float(a @ b / norms)


def neighbour_correlation(z: torch.Tensor) -> float:
    """Correlation between horizontally adjacent entries of z: (B, C, H, W) (any (..., W) with W >= 2).

    About 0 for N(0, I) noise, near 1 for natural images. Returns a float in [-1, 1]. ValueError, as for
    :func:`correlation`, if the right or the left neighbours are constant (the correlation is then undefined).
    """
    z = _tensor("z", z, 2)
    if z.shape[-1] < 2:
        raise ValueError(f"z must be at least 2 entries wide (its last dimension), got shape {tuple(z.shape)}")
    pairs = torch.stack([z[..., :, 1:].flatten(), z[..., :, :-1].flatten()])  # (2, n): right and left neighbours
    if bool((pairs.amin(dim=1) == pairs.amax(dim=1)).any()):
        raise ValueError("z's right or left neighbours are constant: the correlation is undefined "
                         "(allowed: tensors that vary)")
    return float(torch.corrcoef(pairs)[0, 1])


def total_variation(x: torch.Tensor) -> float:
    """Mean |difference| between vertically and between horizontally neighbouring pixels, averaged.

    x: (B, C, H, W) (any (..., H, W) with H, W >= 2), pixels in [-1, 1]. Returns a float >= 0; 0 for flat images.
    """
    x = _tensor("x", x, 2)
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"x must be at least 2 × 2 pixels (H, W >= 2), got shape {tuple(x.shape)}")
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return 0.5 * float(vertical + horizontal)


def highlights(x: torch.Tensor, q: float = 0.95) -> torch.Tensor:
    """The q-quantile of the pixels of each image (default the 95th percentile: how bright its brightest 5% are).

    x: (B, C, H, W) (any (B, ...)), q in [0, 1]. Returns (B,), in x's dtype (linear interpolation between pixels).
    """
    x = _tensor("x", x, 2)
    q = check_float("q", q, 0.0, 1.0)
    return torch.quantile(x.flatten(1), q, dim=1)


def background_share(x: torch.Tensor, below: float = -0.9) -> torch.Tensor:
    """The share of nearly black pixels (value < ``below``, default -0.9) of each image.

    x: (B, C, H, W) (any (B, ...)), pixels in [-1, 1]; below in [-1, 1]. Returns (B,) in [0, 1].
    """
    x = _tensor("x", x, 2)
    below = check_float("below", below, -1.0, 1.0)
    return (x.flatten(1) < below).float().mean(dim=1)
