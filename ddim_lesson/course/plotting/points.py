"""Figures of points in the plane: 2-D point clouds, and sampler paths over the data.

Points are tensors (N, 2); paths are (K+1, P, 2): x_T followed by x after each of K steps.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def plot_points(panels: dict[str, torch.Tensor], lim: float | None = None, size: float = 3.4) -> Figure:
    """2-D point clouds (N, 2), one panel each, on shared and equal axes (±lim, or fitted to the data)."""
    if lim is None:
        lim = 1.1 * max(float(p.abs().max()) for p in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (name, p) in zip(axes[0], panels.items()):
        q = p.detach().cpu().numpy()
        ax.scatter(q[:, 0], q[:, 1], s=3, alpha=0.5)
        ax.set_title(f"{name} (n = {q.shape[0]})", fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_paths_2d(
    panels: dict[str, torch.Tensor], data: torch.Tensor | None = None, n_paths: int = 12, lim: float = 3.0,
    size: float = 4.2,
) -> Figure:
    """Sampler trajectories in the plane, one panel per sampler.

    panels[name] is (K+1, P, 2): x_T followed by x after each of the K steps, for P points. The
    first ``n_paths`` points are drawn as paths (x start, o end); every point's end is a dot.
    ``data`` (N, 2), if given, is drawn in light grey underneath.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (name, xs) in zip(axes[0], panels.items()):
        q = xs.detach().double().cpu().numpy()  # (K+1, P, 2)
        if data is not None:
            d = data.detach().cpu().numpy()
            ax.scatter(d[:, 0], d[:, 1], s=2, color="0.82", label="training data")
        ax.scatter(q[-1, :, 0], q[-1, :, 1], s=4, color="tab:blue", alpha=0.6, label="samples (end points)")
        lw = 0.9 if q.shape[0] <= 101 else 0.5  # long random walks are drawn thinner
        for p in range(min(n_paths, q.shape[1])):
            color = f"C{(p % 9) + 1}"
            ax.plot(q[:, p, 0], q[:, p, 1], "-", lw=lw, color=color, alpha=0.85)
            ax.plot(q[0, p, 0], q[0, p, 1], "x", color=color, ms=6)
            ax.plot(q[-1, p, 0], q[-1, p, 1], "o", color=color, ms=5, mec="black", mew=0.5)
        ax.set_title(f"{name}: {q.shape[0] - 1} steps", fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
