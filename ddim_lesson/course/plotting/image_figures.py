"""Figures of images: a grid, labelled rows, the noising columns of notebook 01, one sample's path.

Images are float tensors in [-1, 1] of shape (B, C, H, W) with C in {1, 3}, drawn through
:func:`ddim_lesson.course.images.image_grid`. Each helper returns a Figure made with ``matplotlib.pyplot``
(so Jupyter shows it inline); assign the result (``fig = ...``) to avoid showing a figure twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextPath

from ...core.samplers import SamplerStep
from ...core.schedules import NoiseSchedule
from ..images import image_grid

TITLE_PT = 8  # the font size of a panel's title, in points
MIN_TITLE_PT = 6


def text_width_in(text: str, fontsize: float) -> float:
    """The width in inches of one line of ``text`` drawn at ``fontsize`` points in matplotlib's default font."""
    return TextPath((0, 0), text, size=fontsize, prop=FontProperties()).get_extents().width / 72


def fit_title(text: str, width_in: float, fontsize: float = TITLE_PT) -> tuple[str, float]:
    """(``text`` wrapped at spaces into lines at most ``width_in`` inches wide, font size): a panel's title whole,
    never cut ("Pullover → Coat", not "Pullove>Coat"); a word wider than the panel shrinks the font (down to
    MIN_TITLE_PT), and wider still it overflows rather than losing letters."""
    lines: list[str] = []
    for part in text.split("\n"):
        line = ""
        for word in part.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width_in(trial, fontsize) > width_in:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    widest = max(text_width_in(line, fontsize) for line in lines)
    if widest > width_in:
        fontsize = max(MIN_TITLE_PT, fontsize * width_in / widest)
    return "\n".join(lines), fontsize


def _title(ax: plt.Axes, text: str, width_in: float) -> int:
    """Set ``ax``'s title to fit ``width_in`` inches (:func:`fit_title`); returns its number of lines."""
    wrapped, fontsize = fit_title(text, width_in)
    ax.set_title(wrapped, fontsize=fontsize)
    return wrapped.count("\n") + 1


def _imshow(ax: plt.Axes, img: np.ndarray) -> None:
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def show_images(
    x: torch.Tensor, nrow: int = 8, title: str | None = None, titles: Sequence[str] | None = None, size: float = 1.1
) -> Figure:
    """Show images (B, C, H, W) in [-1, 1] as a grid of ``nrow`` columns.

    With ``titles`` (one per image) each image gets its own small panel and caption.
    ``size`` is the width in inches of one image.
    """
    B = x.shape[0]
    n = min(nrow, B)
    R = math.ceil(B / n)
    if titles is None:
        fig, ax = plt.subplots(figsize=(size * n, size * R + (0.4 if title else 0.0)))
        _imshow(ax, image_grid(x, nrow))
        ax.axis("off")
    else:
        if len(titles) != B:
            raise ValueError(f"need one title per image: got {len(titles)} titles for {B} images")
        fig, axes = plt.subplots(R, n, figsize=(size * n, (size + 0.35) * R + (0.4 if title else 0.0)), squeeze=False)
        lines = 1
        for k, ax in enumerate(axes.flat):
            if k < B:
                _imshow(ax, image_grid(x[k : k + 1]))
                lines = max(lines, _title(ax, titles[k], 0.9 * size))
            else:
                ax.axis("off")
        fig.set_figheight(fig.get_figheight() + R * (lines - 1) * TITLE_PT * 1.25 / 72)  # room for wrapped titles
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_image_rows(
    rows: dict[str, torch.Tensor], col_titles: Sequence[str] | None = None, title: str | None = None,
    size: float = 1.05,
) -> Figure:
    """One row of images per entry: rows[name] is (K, C, H, W) in [-1, 1], named on the left.

    Rows may differ in length K; ``col_titles`` (one per column of the longest row) head the top row.
    """
    if not rows:
        raise ValueError("rows is empty: pass {name: images of shape (K, C, H, W)}")
    K = max(x.shape[0] for x in rows.values())
    if col_titles is not None and len(col_titles) != K:
        raise ValueError(f"need one column title per column: got {len(col_titles)} for {K} columns")
    R = len(rows)
    fig, axes = plt.subplots(R, K, figsize=(size * K + 1.2, size * R + (0.5 if title else 0.2)
                                            + (0.25 if col_titles else 0.0)), squeeze=False)
    for r, (name, x) in enumerate(rows.items()):
        for k in range(K):
            ax = axes[r, k]
            if k < x.shape[0]:
                _imshow(ax, image_grid(x[k : k + 1]))
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    lines = max([_title(axes[0, k], ct, 0.9 * size) for k, ct in enumerate(col_titles or [])], default=1)
    fig.set_figheight(fig.get_figheight() + (lines - 1) * TITLE_PT * 1.25 / 72)  # room for wrapped titles
    top = 1.0 - (0.3 / fig.get_figheight() if title else 0.0)  # room for the suptitle
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, top))
    return fig


def show_rows(rows: dict[str, torch.Tensor], size: float = 0.9, title: str | None = None) -> Figure:
    """:func:`plot_image_rows` under the name notebooks 02 and 03 call: one labelled row per entry."""
    return plot_image_rows(rows, title=title, size=size)


def plot_noising(x0: torch.Tensor, x_ts: torch.Tensor, ts: Sequence[int], schedule: NoiseSchedule) -> Figure:
    """Columns of noised images: x0 (B, C, H, W) first, then x_ts (K, B, C, H, W), one column per t in ts.

    Each column is headed by t, ᾱ_t and the signal-to-noise ratio ᾱ_t/(1-ᾱ_t).
    """
    if x_ts.shape[0] != len(ts) or x_ts.shape[1:] != x0.shape:
        raise ValueError(f"x_ts must have shape ({len(ts)}, *{tuple(x0.shape)}), got {tuple(x_ts.shape)}")
    K, B = len(ts), x0.shape[0]
    fig, axes = plt.subplots(1, K + 1, figsize=(1.25 * (K + 1), 1.1 * B + 0.9))
    _imshow(axes[0], image_grid(x0, nrow=1))
    axes[0].set_title("x$_0$ (data)", fontsize=9)
    abar, snr = schedule.alphas_cumprod, schedule.snr
    for k, t in enumerate(ts):
        _imshow(axes[k + 1], image_grid(x_ts[k], nrow=1))
        axes[k + 1].set_title(f"t = {t}\nᾱ = {float(abar[t]):.3g}\nSNR = {float(snr[t]):.2g}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_trajectory(
    x_T: torch.Tensor, steps: Sequence[SamplerStep], k: int = 8, index: int = 0, title: str | None = None
) -> Figure:
    """A strip of one sample's path: the model input x_t (top) and its predicted x0 (bottom).

    x_T: (B, C, H, W), the sampler's start; steps: every SamplerStep of that run, in order.
    Shows ``k`` steps spread evenly from the first to the last, then the output x (top right).
    """
    if not steps:
        raise ValueError("steps is empty: pass the list of SamplerStep from a progressive sampler")
    if not 0 <= index < x_T.shape[0]:
        raise ValueError(f"index must be in [0, {x_T.shape[0] - 1}], got {index}")
    picks = sorted({round(i * (len(steps) - 1) / max(k - 1, 1)) for i in range(k)})
    inputs = [x_T] + [s.x for s in steps[:-1]]  # the x_t the model saw at each step
    fig, axes = plt.subplots(2, len(picks) + 1, figsize=(1.2 * (len(picks) + 1), 3.0), squeeze=False)
    for col, i in enumerate(picks):
        _imshow(axes[0, col], image_grid(inputs[i][index : index + 1]))
        _imshow(axes[1, col], image_grid(steps[i].x0_pred[index : index + 1]))
        axes[0, col].set_title(f"t = {steps[i].t}", fontsize=9)
    _imshow(axes[0, -1], image_grid(steps[-1].x[index : index + 1]))
    axes[0, -1].set_title("output", fontsize=9)
    axes[1, -1].axis("off")
    axes[0, 0].set_ylabel("x$_t$", fontsize=10)
    axes[1, 0].set_ylabel("predicted x$_0$", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
