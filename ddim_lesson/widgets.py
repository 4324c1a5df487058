"""Widgets for the notebooks: thin ipywidgets layers over pure, cached sampling functions.

Each explorer is built by a factory that returns a small dataclass holding the UI (``.ui``)
and its controls, so a test can set ``explorer.steps.value = 20`` and read what the callback
produced (``explorer.image.value`` holds PNG bytes, ``explorer.readout.value`` the text) without
a browser. The maths lives in :func:`sample_run` and :func:`interpolation_run`; the widgets only
draw. Results are cached by their settings, and sliders use ``continuous_update=False``, so a
slider move costs at most one sampling run of a small batch.
"""

from __future__ import annotations

import io
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w
import torch
from PIL import Image, ImageDraw, ImageFont

from . import checks
from .forward import check_eta
from .inversion import lerp, slerp
from .samplers import Model, ddim_progressive, ddim_sample
from .schedules import DEFAULT_SPACING, SPACINGS, NoiseSchedule, check_steps

SCALE = 3  # each 28×28 pixel grid is drawn 3× larger (nearest neighbour)
LABEL_H = 16  # height of a text label row, in output pixels


# --------------------------------------------------------------------------------------
# Pure functions: one sampling run, one interpolation run
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleRun:
    """What one setting of the explorer produced."""

    steps: int
    eta: float
    seed: int
    spacing: str
    samples: torch.Tensor  # (n, C, H, W) the final samples, in [-1, 1]
    x0_traj: torch.Tensor  # (K, C, H, W) predicted x0 of sample 0 at K of the steps
    traj_t: tuple[int, ...]  # (K,) the timestep t at which each x0_traj entry was predicted
    seconds: float  # wall time of the sampling run
    model_calls: int  # how many times the model was called (equals steps)


def sample_shape(model: torch.nn.Module) -> tuple[int, ...]:
    """Shape of one sample for a package model: (C, H, W) for a UNet, (dim,) for the MLP."""
    shape = checks.expected_input_shape(model)
    if shape is not None:
        return shape
    raise ValueError(f"cannot infer the sample shape of {type(model).__name__}; pass shape=(C, H, W)")


def seeded_latents(seed: int, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T ~ N(0, I) of shape (n, *shape), drawn from ``torch.Generator().manual_seed(seed)``."""
    seed, n = checks.check_seed(seed), checks.check_int("n", n, 1)
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def trajectory_indices(steps: int, k: int) -> list[int]:
    """At most k step indices in [0, steps-1], evenly spread, always including the first and last."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if steps <= k:
        return list(range(steps))
    return sorted({round(i * (steps - 1) / (k - 1)) for i in range(k)})


def sample_run(
    model: Model,
    schedule: NoiseSchedule,
    steps: int,
    eta: float,
    seed: int,
    spacing: str = DEFAULT_SPACING,
    n: int = 8,
    shape: tuple[int, ...] = (1, 28, 28),
    n_traj: int = 8,
) -> SampleRun:
    """Run DDIM once: n samples from the x_T that ``seed`` fixes, plus sample 0's x0 trajectory.

    x_T depends only on (seed, n, shape), so changing steps, eta or spacing keeps the same
    starting noise; with eta > 0 the extra noise comes from a generator seeded with ``seed`` too,
    so each setting is reproducible. Bad values raise ValueError (from the samplers).
    """
    steps, seed = check_steps(steps, schedule.T), checks.check_seed(seed)
    x_T = seeded_latents(seed, n, shape)  # (n, *shape)
    gen = torch.Generator().manual_seed(seed + 1_000_003)  # the η noise, separate from x_T
    keep = set(trajectory_indices(steps, n_traj))
    traj, traj_t = [], []
    t0 = time.perf_counter()
    x = x_T
    for i, st in enumerate(ddim_progressive(model, schedule, x_T, steps, eta, spacing, generator=gen)):
        x = st.x
        if i in keep:
            traj.append(st.x0_pred[0])
            traj_t.append(st.t)
    seconds = time.perf_counter() - t0
    return SampleRun(steps, float(eta), seed, spacing, x, torch.stack(traj), tuple(traj_t), seconds, steps)


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
    t0 = time.perf_counter()
    images = ddim_sample(model, schedule, zs, steps=steps, eta=0.0, spacing=spacing)
    return InterpolationRun(float(alpha), images, norms, time.perf_counter() - t0)


def _one(z: torch.Tensor, name: str) -> torch.Tensor:
    """One latent as a batch of one: (C, H, W) -> (1, C, H, W), (D,) -> (1, D); (1, ...) stays."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor latent of shape (C, H, W), got {type(z).__name__}")
    if z.ndim in (1, 3):
        return z[None]
    if z.ndim in (2, 4) and z.shape[0] == 1:
        return z
    raise ValueError(f"{name} must be one latent, (C, H, W) or (1, C, H, W), got shape {tuple(z.shape)}")


# --------------------------------------------------------------------------------------
# Drawing: tensors -> labelled PNG bytes (PIL, a few milliseconds)
# --------------------------------------------------------------------------------------
def _to_pil(x: torch.Tensor, scale: int = SCALE) -> Image.Image:
    """One image in [-1, 1], (C, H, W) with C in {1, 3} -> a PIL image scaled up ``scale`` times."""
    u8 = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (C, H, W)
    arr = u8[0].numpy() if u8.shape[0] == 1 else u8.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at 12 px (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _pil_row(
    images: torch.Tensor, labels: list[str] | None = None, title: str = "", gap: int = 2,
    heads: list[str] | None = None,
) -> Image.Image:
    """Images (K, C, H, W) side by side: a title, a head above and a label under each. Returns RGB."""
    tiles = [_to_pil(x).convert("RGB") for x in images]
    tw, th = tiles[0].size
    top = LABEL_H * (bool(title) + bool(heads))
    bottom = LABEL_H if labels else 0
    row = Image.new("RGB", (len(tiles) * (tw + gap) - gap, top + th + bottom), "white")
    draw, font = ImageDraw.Draw(row), _font()
    if title:
        draw.text((2, 1), title, fill="black", font=font)
    for k, tile in enumerate(tiles):
        x = k * (tw + gap)
        row.paste(tile, (x, top))
        if heads:
            draw.text((x + 2, top - LABEL_H + 1), heads[k], fill="black", font=font)
        if labels:
            draw.text((x + 2, top + th + 1), labels[k], fill="black", font=font)
    return row


def _pil_grid(images: torch.Tensor, ncol: int, title: str = "", gap: int = 2) -> Image.Image:
    """Images (N, C, H, W) as rows of ``ncol``, one title above. Returns RGB."""
    rows = [_pil_row(images[i : i + ncol], gap=gap) for i in range(0, images.shape[0], ncol)]
    if title:
        rows = [Image.new("RGB", (rows[0].width, LABEL_H), "white")] + rows  # room for the title
    return _pil_stack(rows, title, gap=gap)


def _pil_stack(parts: list[Image.Image], title: str = "", gap: int = 6) -> Image.Image:
    """Stack images vertically on white; a title, if given, is written in the first part's top row."""
    width = max(p.width for p in parts)
    out = Image.new("RGB", (width, sum(p.height for p in parts) + gap * (len(parts) - 1)), "white")
    y = 0
    for p in parts:
        out.paste(p, (0, y))
        y += p.height + gap
    if title:
        ImageDraw.Draw(out).text((2, 1), title, fill="black", font=_font())
    return out


def png_bytes(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (for ``ipywidgets.Image``)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def sample_grid_title(run: SampleRun) -> str:
    """The grid's title: n samples from n different x_T, all drawn from one seed (``seeded_latents``)."""
    n = run.samples.shape[0]
    return f"{n} samples from {n} different x_T, all drawn from seed {run.seed}"


def render_sample_run(run: SampleRun, ncol: int = 8) -> bytes:
    """PNG: the sample grid, then sample 0's predicted x0 at several timesteps."""
    grid = _pil_grid(run.samples, ncol, title=sample_grid_title(run))
    traj = _pil_row(run.x0_traj, [f"t={t}" for t in run.traj_t], title="predicted x0 of sample 1 along the steps")
    return png_bytes(_pil_stack([grid, traj]))


def render_interpolation(run: InterpolationRun) -> bytes:
    """PNG: decoded z0 | slerp(α) | lerp(α) | z1, each labelled with its latent's ‖z‖/√D."""
    n = run.norms
    heads = ["z0", f"slerp {run.alpha:.2f}", f"lerp {run.alpha:.2f}", "z1"]
    labels = [f"|z|={n[k]:.2f}" for k in ("z0", "slerp", "lerp", "z1")]
    return png_bytes(_pil_row(run.images, labels, gap=8, heads=heads))


# --------------------------------------------------------------------------------------
# A small cache that counts its misses
# --------------------------------------------------------------------------------------
@dataclass
class RunCache:
    """Least-recently-used cache of (result, png) keyed by the explorer's settings."""

    maxsize: int = 64
    hits: int = 0
    misses: int = 0
    _data: OrderedDict = field(default_factory=OrderedDict)

    def get(self, key: Hashable, compute: Callable[[], tuple[Any, bytes]]) -> tuple[Any, bytes, bool]:
        """Return (result, png, was_cached); ``compute`` runs only on a miss."""
        if key in self._data:
            self.hits += 1
            self._data.move_to_end(key)
            return (*self._data[key], True)
        self.misses += 1
        value = compute()
        self._data[key] = value
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return (*value, False)


# --------------------------------------------------------------------------------------
# The explorers
# --------------------------------------------------------------------------------------
@dataclass
class SamplerExplorer:
    """The DDIM explorer of notebook 04: steps, eta, seed and spacing -> samples and x0 trajectory."""

    ui: w.Widget
    steps: w.IntSlider
    eta: w.FloatSlider
    seed: w.IntSlider
    spacing: w.Dropdown
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: SampleRun | None = None
    update: Callable[..., None] = lambda *_: None  # re-render from the controls' current values


def explorer_key(steps: int, eta: float, seed: int, spacing: str) -> tuple[int, float, int, str]:
    """Cache key; eta is rounded so 0.30000000000000004 and 0.3 are the same setting."""
    return (int(steps), round(float(eta), 6), int(seed), str(spacing))


def sampler_explorer(
    model: Model,
    schedule: NoiseSchedule,
    n: int = 8,
    shape: tuple[int, ...] | None = None,
    steps: int = 10,
    eta: float = 0.0,
    seed: int = 0,
    spacing: str = DEFAULT_SPACING,
    max_steps: int = 50,
    max_seed: int = 99,
) -> SamplerExplorer:
    """Build the explorer. ``n`` images per setting; steps in [1, max_steps], eta in [0, 1].

    The controls' ranges make invalid settings impossible (ipywidgets clips a value outside
    [min, max] to the range); the factory itself raises ValueError for bad arguments.
    """
    shape = checks.check_image_shape(model, shape, "the sampler explorer")
    max_steps = check_steps(max_steps, schedule.T)
    steps, eta = check_steps(steps, max_steps), check_eta(eta)
    spacing = checks.check_choice("spacing", spacing, SPACINGS)
    n, max_seed = checks.check_int("n", n, 1, 64), checks.check_seed(max_seed, "max_seed")
    seed = checks.check_int("seed", seed, 0, max_seed)
    style = {"description_width": "60px"}
    layout = w.Layout(width="420px")
    ctl = dict(continuous_update=False, style=style, layout=layout)
    steps_w = w.IntSlider(value=steps, min=1, max=max_steps, step=1, description="steps", **ctl)
    eta_w = w.FloatSlider(value=eta, min=0.0, max=1.0, step=0.1, description="eta", readout_format=".1f", **ctl)
    seed_w = w.IntSlider(value=seed, min=0, max=max_seed, step=1, description="seed", **ctl)
    spacing_w = w.Dropdown(options=list(SPACINGS), value=spacing, description="spacing", style=style)
    image_w = w.Image(format="png")
    readout_w = w.HTML()
    cache = RunCache()
    ui = w.VBox([w.HBox([w.VBox([steps_w, eta_w]), w.VBox([seed_w, spacing_w])]), readout_w, image_w])
    ex = SamplerExplorer(ui, steps_w, eta_w, seed_w, spacing_w, image_w, readout_w, cache)

    def compute(s: int, e: float, sd: int, sp: str) -> tuple[SampleRun, bytes]:
        run = sample_run(model, schedule, s, e, sd, sp, n=n, shape=shape)
        return run, render_sample_run(run)

    def update(*_: Any) -> None:
        key = explorer_key(steps_w.value, eta_w.value, seed_w.value, spacing_w.value)
        try:
            run, png, cached = cache.get(key, lambda: compute(*key))
        except ValueError as e:  # not reachable through the controls; shown rather than lost
            readout_w.value = f"<span style='color:#b00'>error: {e}</span>"
            return
        ex.last = run
        image_w.value = png
        readout_w.value = explorer_readout(run, cached)

    for c in (steps_w, eta_w, seed_w, spacing_w):
        c.observe(update, names="value")
    ex.update = update
    update()
    return ex


def explorer_readout(run: SampleRun, cached: bool) -> str:
    """The text under the sliders: the settings, then how long the run took (or that it was cached)."""
    how = "from cache" if cached else "computed"
    return (
        f"<code>steps = {run.steps}, eta = {run.eta:.1f}, seed = {run.seed}, spacing = {run.spacing}</code>"
        f" &nbsp;·&nbsp; {run.model_calls} model calls, {run.seconds:.2f} s ({how})"
    )


@dataclass
class InterpolationExplorer:
    """The α slider of notebooks 04 and 05: slerp against lerp between two latents."""

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
                            continuous_update=False, style={"description_width": "60px"},
                            layout=w.Layout(width="420px"))
    image_w, readout_w, cache = w.Image(format="png"), w.HTML(), RunCache()
    ex = InterpolationExplorer(w.VBox([alpha_w, readout_w, image_w]), alpha_w, image_w, readout_w, cache)

    def compute(a: float) -> tuple[InterpolationRun, bytes]:
        run = interpolation_run(model, schedule, z0, z1, a, steps)
        return run, render_interpolation(run)

    def update(*_: Any) -> None:
        a = round(float(alpha_w.value), 6)
        run, png, cached = cache.get(a, lambda: compute(a))
        ex.last = run
        image_w.value = png
        n = run.norms
        readout_w.value = (
            f"<code>alpha = {run.alpha:.2f}</code> &nbsp;·&nbsp; |z|/&radic;D: z0 {n['z0']:.3f}, "
            f"slerp {n['slerp']:.3f}, lerp {n['lerp']:.3f}, z1 {n['z1']:.3f}"
            f" &nbsp;·&nbsp; {steps} steps, {run.seconds:.2f} s ({'from cache' if cached else 'computed'})"
        )

    alpha_w.observe(update, names="value")
    ex.update = update
    update()
    return ex
