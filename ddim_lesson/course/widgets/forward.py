"""The forward-process explorer of notebook 01: a t slider and a schedule choice over real images.

A thin ipywidgets layer over :func:`forward_frame`, which is q_sample with a fixed noise draw, so
moving t shows the same noise growing while the signal fades. Like the explorers in
:mod:`ddim_lesson.course.widgets`, the factory returns a dataclass holding the UI (``.ui``) and its
controls, so a test can set ``ex.t.value = 500`` and read ``ex.image.value`` (PNG bytes),
``ex.readout.value`` and ``ex.last`` (the x_t tensor) without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import numpy as np
import torch

from ...core.checks import check_int, check_seed
from ...core.forward import q_sample
from ...core.schedules import NoiseSchedule
from ...core.seeds import forward_noise_generator
from ..images import image_png


def check_images(images: Any) -> torch.Tensor:
    """Images for the explorer as a float32 CPU tensor (B, C, H, W), else ValueError naming what is wrong.

    Needs 1 <= B <= 16, C = 1 or 3, finite values in [-1, 1] (numpy arrays are accepted).
    """
    x = torch.as_tensor(images) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a floating tensor (B, C, H, W) in [-1, 1], got {what}")
    if x.ndim != 4 or not 1 <= x.shape[0] <= 16 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with 1 <= B <= 16 and C = 1 or 3, got {tuple(x.shape)}")
    x = x.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise ValueError(f"images must be finite; {int((~torch.isfinite(x)).sum())} entries are NaN/inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
        raise ValueError(f"images must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "scale [0, 1] images with 2 * x - 1")
    return x


def forward_frame(x0: torch.Tensor, schedule: NoiseSchedule, t: int, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x0 + √(1-ᾱ_t) noise for every image at the same t. x0, noise: (B, C, H, W) -> (B, C, H, W)."""
    t = check_int("t", t, 0, schedule.T - 1)
    return q_sample(x0, torch.full((x0.shape[0],), t, dtype=torch.long), schedule, noise=noise)


@dataclass
class ForwardExplorer:
    """The controls and output of the forward-process explorer."""

    ui: w.Widget
    t: w.IntSlider
    schedule: w.Dropdown
    image: w.Image
    readout: w.HTML
    noise: torch.Tensor  # (B, C, H, W) the fixed ε: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε
    last: torch.Tensor | None = None  # (B, C, H, W) the x_t shown now
    update: Callable[..., None] = lambda *_: None


def forward_explorer(
    images: torch.Tensor,
    schedules: dict[str, NoiseSchedule] | None = None,
    t: int = 250,
    seed: int = 0,
) -> ForwardExplorer:
    """Build the explorer over ``images`` (B, C, H, W) in [-1, 1] (at most 16 are shown).

    ``schedules`` maps a name to a schedule (default: linear and cosine, T = 1000); all must
    share T. The noise is drawn once from ``seed``, so only t and the schedule change the picture.
    """
    x0 = check_images(images)
    schedules = schedules or {"linear": NoiseSchedule.linear(), "cosine": NoiseSchedule.cosine()}
    if not isinstance(schedules, dict) or not all(isinstance(s, NoiseSchedule) for s in schedules.values()):
        raise ValueError(f"schedules must map names to NoiseSchedule objects, got {schedules!r:.200}")
    Ts = {s.T for s in schedules.values()}
    if len(Ts) != 1:
        raise ValueError(f"all schedules must have the same T, got {sorted(Ts)}")
    T = Ts.pop()
    t, seed = check_int("t", t, 0, T - 1), check_seed(seed)
    noise = torch.randn(x0.shape, generator=forward_noise_generator(seed))  # (B, C, H, W), fixed
    style = {"description_width": "70px"}
    t_w = w.IntSlider(value=t, min=0, max=T - 1, step=1, description="t", continuous_update=True,
                      style=style, layout=w.Layout(width="520px"))
    sched_w = w.Dropdown(options=list(schedules), value=next(iter(schedules)), description="schedule", style=style)
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ui = w.VBox([w.HBox([t_w, sched_w]), readout_w, image_w])
    ex = ForwardExplorer(ui, t_w, sched_w, image_w, readout_w, noise)

    def update(*_: Any) -> None:
        s, tt = schedules[sched_w.value], int(t_w.value)
        x_t = forward_frame(x0, s, tt, noise)
        ex.last = x_t
        image_w.value = image_png(torch.cat([x0, x_t]), nrow=x0.shape[0])  # top row x_0, bottom row x_t
        abar = s.abar(tt)
        readout_w.value = (
            f"top: x<sub>0</sub>, bottom: x<sub>t</sub> &nbsp;·&nbsp; "
            f"<code>{html.escape(str(sched_w.value))}, t = {tt}</code>"
            f" &nbsp;·&nbsp; ᾱ<sub>t</sub> = {abar:.4f} &nbsp;·&nbsp; "
            f"x<sub>t</sub> = {abar ** 0.5:.3f}·x<sub>0</sub> + {(1 - abar) ** 0.5:.3f}·ε &nbsp;·&nbsp; "
            f"SNR = {abar / (1 - abar):.3g}"
        )

    t_w.observe(update, names="value")
    sched_w.observe(update, names="value")
    ex.update = update
    update()
    return ex
