"""The α explorer of notebooks 04 and 05: slerp against lerp between two latents, decoded by DDIM.

A thin ipywidgets layer over :func:`interpolation_run`, the pure (and cached) decoding; the widget
only draws, labelling each decoding with its latent's norm ‖z‖/√D.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
import torch

from ...core import checks
from ...core.inversion import lerp, slerp
from ...core.samplers import Model, ddim_sample
from ...core.schedules import DEFAULT_SPACING, NoiseSchedule, check_steps
from ...evaluate.generate import seeded_latents
from ...store.instruments import Stopwatch
from ..images import labelled_row, png_bytes
from .kit import RunCache, connect, slider_args


@dataclass(frozen=True)
class InterpolationRun:
    """Decodings of slerp(z0, z1, α) and lerp(z0, z1, α), and the latents' norms."""

    alpha: float
    images: torch.Tensor  # (4, C, H, W): decoded z0, slerp, lerp, z1
    norms: dict[str, float]  # ‖z‖/√D for "z0", "slerp", "lerp", "z1"
    seconds: float


def rms_norm(z: torch.Tensor) -> torch.Tensor:
    """‖z‖/√D per sample: 1 for a typical N(0, I) latent. z: (B, ...) -> (B,)."""
    flat = z.reshape(z.shape[0], -1)  # (B, D)
    return flat.norm(dim=1) / math.sqrt(flat.shape[1])


def interpolation_run(
    model: Model, schedule: NoiseSchedule, z0: torch.Tensor, z1: torch.Tensor, alpha: float, steps: int = 20,
    spacing: str = DEFAULT_SPACING,
) -> InterpolationRun:
    """Decode (η = 0) z0, slerp(z0, z1, α), lerp(z0, z1, α) and z1 in one batch.

    z0, z1: (1, C, H, W) or (C, H, W). Returns an :class:`InterpolationRun`.
    """
    z0, z1 = _one(z0, "z0"), _one(z1, "z1")
    if z0.shape != z1.shape:
        raise ValueError(f"z0 shape {tuple(z0.shape)} must equal z1 shape {tuple(z1.shape)}")
    zs = torch.cat([z0, slerp(z0, z1, alpha), lerp(z0, z1, alpha), z1])  # (4, C, H, W)
    norms = dict(zip(("z0", "slerp", "lerp", "z1"), rms_norm(zs).tolist()))
    with Stopwatch() as sw:
        images = ddim_sample(model, schedule, zs, steps=steps, eta=0.0, spacing=spacing)
    return InterpolationRun(float(alpha), images, norms, sw.seconds)


def _one(z: torch.Tensor, name: str) -> torch.Tensor:
    """One latent as a batch of one: (C, H, W) -> (1, C, H, W), (D,) -> (1, D); (1, ...) stays."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor latent of shape (C, H, W), got {type(z).__name__}")
    if z.ndim in (1, 3):
        return z[None]
    if z.ndim in (2, 4) and z.shape[0] == 1:
        return z
    raise ValueError(f"{name} must be one latent, (C, H, W) or (1, C, H, W), got shape {tuple(z.shape)}")


def render_interpolation(run: InterpolationRun) -> bytes:
    """PNG: decoded z0 | slerp(α) | lerp(α) | z1, each labelled with its latent's ‖z‖/√D."""
    n = run.norms
    heads = ["z0", f"slerp {run.alpha:.2f}", f"lerp {run.alpha:.2f}", "z1"]
    labels = [f"|z|={n[k]:.2f}" for k in ("z0", "slerp", "lerp", "z1")]
    return png_bytes(labelled_row(run.images, labels, gap=8, heads=heads))


@dataclass
class InterpolationExplorer:
    """The explorer's controls and output (``.ui`` to display)."""

    ui: w.Widget
    alpha: w.FloatSlider
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: InterpolationRun | None = None
    update: Callable[..., None] = lambda *_: None


def interpolation_explorer(
    model: Model,
    schedule: NoiseSchedule,
    z0: torch.Tensor | None = None,
    z1: torch.Tensor | None = None,
    seeds: tuple[int, int] = (0, 1),
    steps: int = 20,
    alpha: float = 0.5,
    shape: tuple[int, ...] | None = None,
) -> InterpolationExplorer:
    """Build the α explorer. Without z0/z1 the latents are N(0, I) draws from ``seeds``.

    z0, z1: (C, H, W) or (1, C, H, W), e.g. the DDIM inversions of two real images.
    """
    steps, alpha = check_steps(steps, schedule.T), checks.check_float("alpha", alpha, 0.0, 1.0)
    if z0 is None or z1 is None:
        shape = checks.check_image_shape(model, shape, "the interpolation explorer")
        z0 = seeded_latents(seeds[0], 1, shape) if z0 is None else z0
        z1 = seeded_latents(seeds[1], 1, shape) if z1 is None else z1
    z0, z1 = _one(z0, "z0"), _one(z1, "z1")
    for name, z in (("z0", z0), ("z1", z1)):
        checks.check_image_shape(model, tuple(z.shape[1:]), "the interpolation explorer")
        checks.check_model_input(model, z, name)  # finite, the model's device
    alpha_w = w.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha", readout_format=".2f",
                            **slider_args())
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ex = InterpolationExplorer(w.VBox([alpha_w, readout_w, image_w]), alpha_w, image_w, readout_w, RunCache())

    def compute(a: float) -> tuple[InterpolationRun, bytes]:
        run = interpolation_run(model, schedule, z0, z1, a, steps)
        return run, render_interpolation(run)

    def readout(run: InterpolationRun, cached: bool) -> str:
        n = run.norms
        return (f"<code>alpha = {run.alpha:.2f}</code> &nbsp;·&nbsp; |z|/&radic;D: z0 {n['z0']:.3f}, "
                f"slerp {n['slerp']:.3f}, lerp {n['lerp']:.3f}, z1 {n['z1']:.3f}"
                f" &nbsp;·&nbsp; {steps} steps, {run.seconds:.2f} s ({'from cache' if cached else 'computed'})")

    connect(ex, (alpha_w,), lambda: round(float(alpha_w.value), 6), compute, readout)
    return ex
