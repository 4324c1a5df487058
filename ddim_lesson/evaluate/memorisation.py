"""Does a model copy its training set? Nearest-neighbour distances, the memorisation rate, and agreement.

All distances are Euclidean (L2) over the flattened sample, in the data's units (pixels in [-1, 1]).

- ``nearest_neighbours(x, ref, k)``: the k smallest distances from each of B samples to a reference set
  of N points (N may be 60,000 images), streamed over N in chunks with a running top-k.
- ``memorisation_rate(d)``: the fraction of samples whose nearest training point is much closer than
  the second nearest, d1/d2 < 1/3. This is the rule of Yoon et al. 2023 ("Diffusion probabilistic
  models generalize when they fail to memorize") and Gu et al. 2023 ("On memorization in diffusion
  models"); Carlini et al. 2023 ("Extracting training data from diffusion models") use a relative
  rule of the same kind, with the mean distance to the nearest 50 in place of d2. A copy of a training
  point plus a little noise has d1 ≈ 0 and so counts; a new point between training points does not.
- ``agreement(a, b)``: how far two models' samples from the same x_T are apart, relative to how far
  independent samples are: mean_i ‖a_i − b_i‖ / mean_{i≠j} ‖a_i − b_j‖. 0: the same map; about 1: the
  pairing by x_T means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.checks import check_float, check_int

RATIO = 1 / 3  # d1/d2 below this: memorised (Yoon et al. 2023, Gu et al. 2023)


@dataclass(frozen=True)
class Neighbours:
    """dist: (B, k) float64, ascending, the L2 distances to the k nearest reference points; index: (B, k) int64."""

    dist: torch.Tensor
    index: torch.Tensor


def _flat(name: str, x: torch.Tensor, check_finite: bool = True) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a floating tensor of shape (n, ...) with n >= 1, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite everywhere (allowed: finite values)")
    return x.reshape(x.shape[0], -1)


SPARE = 8  # candidates kept beyond k in the fast pass, then re-ranked by exact float64 distances


@torch.no_grad()
def nearest_neighbours(
    x: torch.Tensor, ref: torch.Tensor, k: int = 2, *, exclude: torch.Tensor | None = None, chunk: int = 8192,
) -> Neighbours:
    """The k nearest points of ``ref`` (N, ...) to each sample of ``x`` (B, ...), same trailing shape.

    exclude: (B,) int64, optional; sample b never matches ref[exclude[b]] (use it when x is drawn from
    ref, to find a training image's nearest *other* training image). Two passes: chunk points of ref at
    a time (memory B·chunk), ‖x‖² − 2x·r + ‖r‖² in the wider dtype of x and ref keeps the k + 8 best
    candidates; their distances are then recomputed as ‖x − r‖ in float64 and sorted, so a copy of a
    training point at 1e-6 reads as 1e-6, not as float32's rounding of 400 − 2·200 + 200.
    """
    xf, rf = _flat("x", x), _flat("ref", ref, check_finite=False)  # ref is checked chunk by chunk, below
    if xf.shape[1] != rf.shape[1]:
        raise ValueError(f"x and ref must have the same shape per point, got {tuple(x.shape[1:])} and "
                         f"{tuple(ref.shape[1:])}")
    N = rf.shape[0]
    k = check_int("k", k, 1, N - (exclude is not None))
    chunk = check_int("chunk", chunk, 1)
    B = xf.shape[0]
    if exclude is not None and (exclude.dtype != torch.long or tuple(exclude.shape) != (B,)):
        raise ValueError(f"exclude must be an int64 tensor of shape ({B},), got {exclude.dtype} of shape "
                         f"{tuple(exclude.shape)}")
    dtype = torch.promote_types(xf.dtype, rf.dtype)
    xd = xf.to(dtype)  # (B, D)
    x_sq = torch.linalg.vector_norm(xd, dim=1, keepdim=True).square()  # (B, 1)
    keep = min(k + SPARE, N)
    best_d = torch.full((B, 0), torch.inf, dtype=dtype, device=xd.device)
    best_i = torch.zeros((B, 0), dtype=torch.long, device=xd.device)
    for start in range(0, N, chunk):
        r = rf[start:start + chunk].to(dtype)  # (n, D)
        r_sq = torch.linalg.vector_norm(r, dim=1).square()  # (n,) without an (n, D) temporary
        if not torch.isfinite(r_sq).all():
            raise ValueError("ref must be finite everywhere (allowed: finite values)")
        d2 = x_sq - 2 * xd @ r.T + r_sq[None]  # (B, n) ‖x − r‖², up to rounding
        idx = torch.arange(start, start + r.shape[0], device=xd.device).expand(B, -1)  # (B, n)
        if exclude is not None:
            d2 = d2.masked_fill(idx == exclude[:, None].to(xd.device), torch.inf)
        both_d, both_i = torch.cat([best_d, d2], 1), torch.cat([best_i, idx], 1)
        top = both_d.topk(min(keep, both_d.shape[1]), dim=1, largest=False)
        best_d, best_i = top.values, both_i.gather(1, top.indices)
    exact = (xf.double()[:, None, :] - rf[best_i].double()).norm(dim=2)  # (B, keep) ‖x − r‖ in float64
    if exclude is not None:
        exact = exact.masked_fill(best_i == exclude[:, None].to(best_i.device), torch.inf)
    order = exact.argsort(dim=1)[:, :k]  # ascending
    return Neighbours(exact.gather(1, order), best_i.gather(1, order))


def memorisation_rate(dist: torch.Tensor, ratio: float = RATIO) -> float:
    """The fraction of samples with d1/d2 < ratio, from ``dist`` (B, >= 2) as ``nearest_neighbours`` gives it.

    ratio in (0, 1]; the literature's 1/3 is the default. A sample with d1 = d2 = 0 (an exact copy of a
    point that is itself duplicated in the reference set) counts as memorised.
    """
    ratio = check_float("ratio", ratio, 0.0, 1.0, lo_open=True)
    if dist.ndim != 2 or dist.shape[1] < 2 or dist.shape[0] < 1:
        raise ValueError(f"dist must have shape (B, k) with B >= 1 and k >= 2 (d1 and d2), got {tuple(dist.shape)}")
    d1, d2 = dist[:, 0].double(), dist[:, 1].double()
    return float(((d1 < ratio * d2) | (d2 == 0)).double().mean())


@torch.no_grad()
def pair_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_i‖ per pair: a, b (B, ...) of the same shape -> (B,) float64."""
    af, bf = _flat("a", a), _flat("b", b)
    if af.shape != bf.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (af.double() - bf.double()).norm(dim=1)


@torch.no_grad()
def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """mean_i ‖a_i − b_i‖ / mean_{i≠j} ‖a_i − b_j‖ for two models' samples a, b (B, ...), B >= 2, paired by x_T.

    0 when the two maps agree on every x_T; about 1 when the pairing is no closer than two independent
    samples (the denominator is the mean over all B(B − 1) unpaired couples, one from each model).
    """
    paired = pair_distances(a, b)  # checks shapes
    B = paired.shape[0]
    check_int("batch size B", B, 2)
    cross = torch.cdist(a.reshape(B, -1).double(), b.reshape(B, -1).double())  # (B, B)
    unpaired = (cross.sum() - cross.diagonal().sum()) / (B * (B - 1))
    if float(unpaired) == 0.0:
        raise ValueError("every sample of a equals every sample of b: the agreement ratio is undefined "
                         "(allowed: samples that are not all identical)")
    return float(paired.mean() / unpaired)
