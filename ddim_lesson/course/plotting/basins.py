"""Where each starting point goes: x_T in the plane, coloured by the training point its sample lands on.

A deterministic sampler is a map x_T -> x0. When every x0 is one of N training points (the ideal
denoiser of notebook 09), the map cuts the plane of x_T into N regions, its basins.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def plot_basins(x_T: torch.Tensor, dest: torch.Tensor, data: torch.Tensor, samples: torch.Tensor | None = None,
                title: str = "", lim: float = 3.0, size: float = 4.6) -> Figure:
    """x_T (P, 2) coloured by dest (P,) int64, the index of the training point in data (N, 2) each one reaches.

    Left: the starting points, each training point drawn as a star in its basin's colour. Right, if
    ``samples`` (P, 2) is given: where the samples end, over the training points.
    """
    xs, d, pts = x_T.detach().double().cpu().numpy(), dest.detach().cpu().numpy(), data.detach().double().cpu().numpy()
    cmap = plt.get_cmap("tab20")
    colours = np.array([cmap(i % 20) for i in range(len(pts))])
    panels = 1 if samples is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(size * panels, size), squeeze=False)
    ax = axes[0][0]
    ax.scatter(xs[:, 0], xs[:, 1], s=6, c=colours[d], alpha=0.8)
    ax.scatter(pts[:, 0], pts[:, 1], s=160, c=colours, marker="*", edgecolors="black", linewidths=0.8,
               label="training points")
    ax.set_title(title or f"{len(xs)} starting points x_T, coloured by where DDIM takes them", fontsize=10)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    if samples is not None:
        s = samples.detach().double().cpu().numpy()
        ax2 = axes[0][1]
        ax2.scatter(pts[:, 0], pts[:, 1], s=160, c=colours, marker="*", edgecolors="black", linewidths=0.8,
                    label="training points")
        ax2.scatter(s[:, 0], s[:, 1], s=10, c="black", marker="x", label="samples")
        ax2.set_title(f"where the {len(s)} samples end", fontsize=10)
        span = 1.2 * float(np.abs(pts).max())
        ax2.set_xlim(-span, span)
        ax2.set_ylim(-span, span)
    for a in axes[0]:
        a.set_aspect("equal")
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
