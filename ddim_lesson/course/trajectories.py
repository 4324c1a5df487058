"""Sampler paths in the plane: how long and how straight they are, and their figure with a full legend.

A path is x_T followed by x after each of K steps, for P points: a tensor (K+1, P, D), D = 2 for
the toy sets. ``straightness`` (end-to-end distance over path length) is the number that tells an
ODE path from a random walk: an ODE's path keeps its shape whatever the step count, while a random
walk of K steps of size ~1/√K has a length that grows like √K, so its straightness falls like 1/√K.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..core.samplers import SamplerStep
from .plotting.points import plot_paths_2d


def stack_path(x_T: torch.Tensor, steps: Iterable[SamplerStep]) -> torch.Tensor:
    """A sampler's path: x_T followed by x after each step of a progressive sampler, stacked.

    x_T: (P, D) the start; steps: the steps of ``ddim_progressive`` / ``ode_progressive`` run from x_T (K >= 1 of
    them, each x of shape (P, D)). Returns (K+1, P, D), the input of :func:`path_length` and :func:`straightness`.
    """
    xs = [x_T] + [st.x for st in steps]
    if len(xs) < 2:
        raise ValueError("steps must hold at least one step (allowed: a progressive sampler's K >= 1 steps)")
    if any(x.shape != x_T.shape for x in xs):
        raise ValueError(f"every step's x must have x_T's shape {tuple(x_T.shape)}, got "
                         f"{sorted({tuple(x.shape) for x in xs})}")
    return torch.stack(xs)


def _check_paths(xs: torch.Tensor) -> None:
    if xs.ndim != 3 or xs.shape[0] < 2:
        raise ValueError(f"paths must have shape (K+1, P, D) with K >= 1 steps, got {tuple(xs.shape)}")


def path_length(xs: torch.Tensor) -> torch.Tensor:
    """Sum of the step lengths of each point's path. xs: (K+1, P, D) -> (P,)."""
    _check_paths(xs)
    return (xs[1:] - xs[:-1]).norm(dim=-1).sum(dim=0)  # (K, P) step lengths, summed over K


def straightness(xs: torch.Tensor) -> torch.Tensor:
    """|x_K - x_0| / path length per point: 1 for a straight segment, near 0 for a random walk.

    xs: (K+1, P, D) -> (P,). A point that never moves (length 0) gets NaN.
    """
    length = path_length(xs)  # (P,)
    end_to_end = (xs[-1] - xs[0]).norm(dim=-1)  # (P,)
    return torch.where(length > 0, end_to_end / length.clamp_min(1e-30), torch.full_like(length, float("nan")))


def plot_sampler_paths(
    panels: dict[str, torch.Tensor], data: torch.Tensor | None = None, data_label: str = "data",
    n_paths: int = 6, lim: float = 2.6,
) -> Figure:
    """``plotting.points.plot_paths_2d`` with a legend that names every mark: the data, the start x_T (×) and end (o).

    panels[name]: (K+1, P, 2). ``data_label`` says what the grey dots are (e.g. a fresh draw of the set).
    """
    fig = plot_paths_2d(panels, n_paths=n_paths, lim=lim)  # paths and end points; the data is drawn here
    marks = [Line2D([], [], ls="", marker="x", color="0.25", ms=6),
             Line2D([], [], ls="", marker="o", color="0.6", ms=5, mec="black", mew=0.5)]
    names = [f"start x_T ({n_paths} paths)", f"end x_0 ({n_paths} paths)"]
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        if data is not None:
            d = data.detach().cpu().numpy()  # (N, 2)
            handles = [ax.scatter(d[:, 0], d[:, 1], s=2, color="0.82", zorder=0)] + handles
            labels = [data_label] + labels
        ax.legend(handles + marks, labels + names, fontsize=7, loc="lower left")
    return fig
