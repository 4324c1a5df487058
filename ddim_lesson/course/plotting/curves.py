"""Figures of curves: noise schedules, where timesteps fall, ODE paths, losses, histograms, any x-y curves.

Each helper takes numbers the package computed and returns a Figure made with ``matplotlib.pyplot``;
nothing here does maths the notebooks rely on, so a figure shows exactly what a cell computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ...core.schedules import NoiseSchedule


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


def plot_curves(
    curves: dict[str, tuple[Sequence[float] | torch.Tensor, Sequence[float] | torch.Tensor]],
    xlabel: str, ylabel: str, title: str = "", logx: bool = False, logy: bool = False,
    hlines: dict[str, float] | None = None, markers: bool = True, size: tuple[float, float] = (6.5, 3.6),
    styles: dict[str, str] | None = None,
) -> Figure:
    """Line plot of curves[name] = (x, y), with optional labelled horizontal reference lines.

    ``styles`` maps a curve name to a matplotlib format string (e.g. "k--" for a theory line).
    """
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
