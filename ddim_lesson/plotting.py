"""Figures for the notebooks. Each helper takes tensors the package computed and returns a Figure.

Images are float tensors in [-1, 1] of shape (B, C, H, W) with C in {1, 3}. Nothing here does
maths the notebooks rely on: the curves and samples are passed in, so a figure shows exactly
what a cell computed. Figures are made with ``matplotlib.pyplot`` so Jupyter shows them inline;
assign the result (``fig = ...``) to avoid showing a figure twice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from .data import to_unit
from .samplers import SamplerStep
from .schedules import NoiseSchedule


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------
def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile images (B, C, H, W) in [-1, 1] into one array in [0, 1] with white gaps of ``pad`` pixels.

    Returns (R·(H+pad)-pad, n·(W+pad)-pad) for C = 1, or the same with a last axis of 3 for C = 3,
    where n = min(nrow, B) columns and R = ceil(B / n) rows.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    if nrow < 1 or pad < 0:
        raise ValueError(f"need nrow >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    B, C, H, W = x.shape
    n = min(nrow, B)
    R = math.ceil(B / n)
    grid = np.ones((C, R * (H + pad) - pad, n * (W + pad) - pad), dtype=np.float32)
    u = to_unit(x.detach().float().cpu()).numpy()  # (B, C, H, W) in [0, 1]
    for k in range(B):
        r, c = divmod(k, n)
        grid[:, r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = u[k]
    return grid[0] if C == 1 else grid.transpose(1, 2, 0)


def image_png(x: torch.Tensor, nrow: int = 8, scale: int = 3, pad: int = 1) -> bytes:
    """PNG bytes of :func:`image_grid` (for ``ipywidgets.Image``), each pixel drawn ``scale`` × ``scale``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be an integer in [1, 16], got {scale!r}")
    u8 = np.round(image_grid(x, nrow, pad) * 255).astype(np.uint8)  # (H', W') or (H', W', 3)
    u8 = u8.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="PNG")
    return buf.getvalue()


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
        for k, ax in enumerate(axes.flat):
            if k < B:
                _imshow(ax, image_grid(x[k : k + 1]))
                ax.set_title(titles[k], fontsize=8)
            else:
                ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_rows(rows: dict[str, torch.Tensor], size: float = 0.9, title: str | None = None) -> Figure:
    """One labelled row of images per entry: rows[label] is (B, C, H, W) in [-1, 1]."""
    if not rows:
        raise ValueError("rows is empty")
    n = max(x.shape[0] for x in rows.values())
    fig, axes = plt.subplots(len(rows), 1, figsize=(size * n + 1.8, size * len(rows) + (0.4 if title else 0.1)),
                             squeeze=False)
    for ax, (label, x) in zip(axes[:, 0], rows.items()):
        _imshow(ax, image_grid(x, nrow=n))
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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


# --------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------
def plot_schedules(schedules: dict[str, NoiseSchedule]) -> Figure:
    """ᾱ_t, SNR_t = ᾱ_t/(1-ᾱ_t) (log scale) and log-SNR_t against t, one curve per schedule."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, s in schedules.items():
        t = np.arange(s.T)
        axes[0].plot(t, s.alphas_cumprod.numpy(), label=name)
        axes[1].plot(t, s.snr.numpy(), label=name)
        axes[2].plot(t, s.log_snr.numpy(), label=name)
    axes[0].set_title("ᾱ$_t$: the share of signal variance")
    axes[0].set_ylabel("ᾱ$_t$")
    axes[1].set_yscale("log")
    axes[1].set_title("SNR$_t$ = ᾱ$_t$ / (1 - ᾱ$_t$)")
    axes[1].set_ylabel("SNR (log scale)")
    axes[1].axhline(1.0, color="gray", lw=0.8, ls="--")
    axes[2].set_title("log-SNR$_t$")
    axes[2].set_ylabel("log SNR")
    axes[2].axhline(0.0, color="gray", lw=0.8, ls="--", label="SNR = 1")
    for ax in axes:
        ax.set_xlabel("timestep t")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_histograms(
    samples: dict[str, torch.Tensor], mean: float, std: float, title: str = "", bins: int = 60
) -> Figure:
    """Histograms of 1-D samples (N,) against the density of N(mean, std²), drawn as a black line."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    lo, hi = mean - 4.5 * std, mean + 4.5 * std
    for name, v in samples.items():
        ax.hist(v.detach().double().cpu().numpy(), bins=bins, range=(lo, hi), density=True, alpha=0.45, label=name)
    grid = np.linspace(lo, hi, 400)
    pdf = np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    ax.plot(grid, pdf, color="black", lw=1.5, label=f"N({mean:.3g}, {std:.3g}²)")
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss(losses: Sequence[float], window: int = 50, title: str = "training loss", every: int = 1) -> Figure:
    """Loss (faint) and its moving average over ``window`` entries, on a log y axis.

    ``every``: training steps per entry (e.g. 25 for a log that keeps the mean of every 25 steps).
    """
    y = np.asarray(losses, dtype=np.float64)
    if y.size == 0:
        raise ValueError("losses is empty")
    if every < 1 or window < 1:
        raise ValueError(f"need every >= 1 and window >= 1, got every={every}, window={window}")
    w = min(window, y.size)
    smooth = np.convolve(y, np.ones(w) / w, mode="valid")  # (N - w + 1,)
    steps = (np.arange(y.size) + 1) * every
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(steps, y, color="tab:blue", alpha=0.25 if w > 1 else 1.0, lw=0.8,
            label="per step" if every == 1 else f"mean of each {every} steps")
    if w > 1:
        ax.plot(steps[w - 1 :], smooth, color="tab:blue", lw=2, label=f"moving average over {w * every} steps")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("ε-prediction MSE")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


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


def plot_timesteps(timesteps: dict[str, torch.Tensor], schedule: NoiseSchedule) -> Figure:
    """Where each timestep sequence evaluates the model, on the log-SNR curve of ``schedule``.

    Top: log-SNR_t, with a marker at every sequence's first timestep. Bottom: one row per
    sequence, a tick at each timestep, labelled with its number of model calls.
    """
    T = schedule.T
    names = list(timesteps)
    fig, (top, bot) = plt.subplots(2, 1, figsize=(10, 2.4 + 0.45 * len(names)), sharex=True,
                                   gridspec_kw={"height_ratios": [2, 0.35 * len(names) + 0.5]})
    log_snr = schedule.log_snr.numpy()
    top.plot(np.arange(T), log_snr, color="gray", lw=1)
    for k, name in enumerate(names):
        ts = timesteps[name].long()
        first = int(ts.max())
        color = f"C{k}"
        top.plot([first], [log_snr[first]], "o", color=color, label=f"{name}: first t = {first}, "
                 f"log-SNR = {log_snr[first]:.2f}")
        bot.plot(ts.numpy(), np.full(ts.numel(), k), "|", color=color, ms=12, mew=2)
    top.set_ylabel("log-SNR$_t$")
    top.set_title("where sampling starts: the first timestep of each sequence")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    bot.set_yticks(range(len(names)))
    bot.set_yticklabels([f"{n} ({timesteps[n].numel()} calls)" for n in names])
    bot.set_ylim(-0.6, len(names) - 0.4)
    bot.invert_yaxis()
    bot.set_xlim(-10, T + 10)
    bot.set_xlabel("timestep t")
    bot.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_ode_paths(
    paths: dict[str, tuple[torch.Tensor, torch.Tensor]], sigma_max: float | None = None,
    title: str = "DDIM in the ODE variables: x̄ against σ",
) -> Figure:
    """Paths x̄(σ) of a few coordinates: paths[name] = (σ of shape (K,), x̄ of shape (K, P)).

    σ = √(1-ᾱ)/√ᾱ falls from large (noise) to 0 (data), so the axis runs right to left and sampling
    moves left to right. Each sampler's points are joined by straight lines, which is what an
    Euler step draws. ``sigma_max`` zooms in on σ <= sigma_max (the y range follows).
    """
    fig, ax = plt.subplots(figsize=(8, 4.2))
    markers = ["o", ".", "x", "s"]
    lo, hi = math.inf, -math.inf
    for k, (name, (sigma, xbar)) in enumerate(paths.items()):
        s, xb = sigma.detach().double().cpu().numpy(), xbar.detach().double().cpu().numpy()
        if s.shape[0] != xb.shape[0]:
            raise ValueError(f"{name}: sigma has {s.shape[0]} entries but xbar has {xb.shape[0]} rows")
        inside = s <= (sigma_max if sigma_max is not None else np.inf)
        if inside.any():
            lo, hi = min(lo, float(xb[inside].min())), max(hi, float(xb[inside].max()))
        for p in range(xb.shape[1]):
            ax.plot(s, xb[:, p], marker=markers[k % len(markers)], color=f"C{p}", ls="-" if k == 0 else "--",
                    alpha=0.9 if k == 0 else 0.6, ms=5 if k == 0 else 2.5, lw=1.2 if k == 0 else 0.8,
                    label=f"{name}" if p == 0 else None)
    if sigma_max is not None:
        ax.set_xlim(sigma_max, 0)
        if math.isfinite(lo):
            pad = 0.08 * (hi - lo + 1e-9)
            ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.invert_xaxis()
    ax.set_xlabel("σ = √(1-ᾱ) / √ᾱ   (noise level; sampling runs left to right, to σ = 0)")
    ax.set_ylabel("x̄ = x / √ᾱ")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title="colour = one pixel", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A plain-text table of ``rows`` (dicts); floats get ``digits`` significant digits, None prints as '-'."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(s.rjust(w) for s, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(b) for b in body])


# --- notebooks 04-05
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
    for k, ct in enumerate(col_titles or []):
        axes[0, k].set_title(ct, fontsize=8)
    top = 1.0 - (0.3 / fig.get_figheight() if title else 0.0)  # room for the suptitle
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, top))
    return fig


def plot_curves(
    curves: dict[str, tuple[Sequence[float] | torch.Tensor, Sequence[float] | torch.Tensor]],
    xlabel: str, ylabel: str, title: str = "", logx: bool = False, logy: bool = False,
    hlines: dict[str, float] | None = None, markers: bool = True, size: tuple[float, float] = (6.5, 3.6),
    styles: dict[str, str] | None = None,
) -> Figure:
    """Line plot of curves[name] = (x, y), with optional labelled horizontal reference lines.

    ``styles`` maps a curve name to a matplotlib format string (e.g. "k--" for a theory line).
    """
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=size)
    for k, (name, (x, y)) in enumerate(curves.items()):
        xa, ya = np.asarray(torch.as_tensor(x).double()), np.asarray(torch.as_tensor(y).double())
        fmt = (styles or {}).get(name, "o-" if markers else "-")
        kw = {} if any(ch in fmt for ch in "bgrcmykw") else {"color": f"C{k}"}
        ax.plot(xa, ya, fmt, ms=4, lw=1.5, label=name, **kw)
    for k, (name, v) in enumerate((hlines or {}).items()):
        ax.axhline(v, color="gray", ls=["--", ":", "-."][k % 3], lw=1, label=name)
    if logx:
        ax.set_xscale("log")
        xs = sorted({float(v) for x, _ in curves.values() for v in torch.as_tensor(x).flatten().tolist()})
        if len(xs) <= 12:  # few x values: label exactly those, in plain numbers
            ax.set_xticks(xs, [f"{v:g}" for v in xs])
            ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
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
