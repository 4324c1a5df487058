"""Reading a measurement seed by seed: summaries over seeds, a measure per seed's block, a win in every seed.

The course repeats each measurement over a few seeds (the seed sets x_T) and reads a claim only where it holds
beyond that spread. These are the small readers its notebooks share (07, 09 and 11):

- :func:`mean_sd`: mean and sample standard deviation over seeds (0 for one seed);
- :func:`mean_range`: "mean (min-max)" as text, for a table;
- :func:`per_seed`: a paired measure f(a, b) on each seed's block of a batch that stacks the seeds' x_T;
- :func:`beats_every_seed`: one method ahead of each rival on every measure, in every seed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import torch

from ..core.checks import check_int

R = TypeVar("R")

__all__ = ["beats_every_seed", "mean_range", "mean_sd", "per_seed"]


def _floats(values: Sequence[float]) -> torch.Tensor:
    v = torch.tensor([float(x) for x in values], dtype=torch.float64)
    if v.numel() == 0 or not bool(torch.isfinite(v).all()):
        raise ValueError(f"values must be one or more finite numbers, got {list(values)!r}")
    return v


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) of per-seed values, in float64; the sd of one value is 0.0.

    Empty or non-finite values: ValueError naming them.
    """
    v = _floats(values)
    return float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0


def mean_range(values: Sequence[float], digits: int) -> str:
    """"mean (min-max)" of per-seed values, each with ``digits`` decimals (digits in [0, 12])."""
    v, d = _floats(values), check_int("digits", digits, 0, 12)
    return f"{float(v.sum()) / v.numel():.{d}f} ({float(v.min()):.{d}f}-{float(v.max()):.{d}f})"


def per_seed(f: Callable[[torch.Tensor, torch.Tensor], R], a: torch.Tensor, b: torch.Tensor, n_seeds: int) -> list[R]:
    """f(a_k, b_k) for each seed k, where a and b (n_seeds·m, ...) stack the seeds' blocks of m samples in order.

    a and b must have the same length, a multiple of n_seeds (n_seeds >= 1): else ValueError naming both.
    """
    n = check_int("n_seeds", n_seeds, 1)
    if a.shape[0] != b.shape[0] or a.shape[0] % n or a.shape[0] == 0:
        raise ValueError(f"a and b must hold the same number of samples, a positive multiple of n_seeds={n}; "
                         f"got {a.shape[0]} and {b.shape[0]}")
    m = a.shape[0] // n
    return [f(a[m * k:m * (k + 1)], b[m * k:m * (k + 1)]) for k in range(n)]


def beats_every_seed(score: Mapping[Any, Sequence[float]], method: Hashable, rivals: Sequence[Hashable], k: Hashable,
                     seeds: Sequence[Hashable], higher_is_better: Sequence[bool]) -> bool:
    """True if ``method`` is strictly ahead of every rival on every measure in every seed.

    score[(m, k, seed)] holds one value per measure, in the order of ``higher_is_better`` (True: higher wins).
    A missing (m, k, seed) or a score of another length: ValueError naming it.
    """
    want = len(higher_is_better)
    for m in (method, *rivals):
        for s in seeds:
            if (m, k, s) not in score or len(score[m, k, s]) != want:
                raise ValueError(f"score has no {want} measures for {(m, k, s)!r}; "
                                 f"allowed keys: {sorted(score, key=str)}")
    return all((mine > theirs) if up else (mine < theirs)
               for s in seeds for r in rivals
               for mine, theirs, up in zip(score[method, k, s], score[r, k, s], higher_is_better))
