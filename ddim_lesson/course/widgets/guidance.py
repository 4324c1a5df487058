"""The guidance explorer of notebook 07: a class dropdown and a guidance-scale slider over a
class-conditional model. The same seeded latents are used at every setting, so what changes
between two settings is the label or the scale alone. Results are cached by setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
import torch
from torch import nn

from ...core.checks import check_float, check_int, check_model_input
from ...core.guidance import cfg
from ...core.samplers import ddim_sample
from ...core.schedules import NoiseSchedule
from ...core.seeds import sdedit_generator
from ...evaluate.generate import image_shape, seeded_latents
from ...evaluate.guidance_eval import classify
from ...store.data import FASHION_CLASSES
from ...store.instruments import CallCounter, Stopwatch
from ..images import labelled_grid, png_bytes
from .forward import check_images
from .kit import STYLE, RunCache, connect, slider_args

MAX_SCALE = 7.0


@dataclass(frozen=True)
class GuidedRun:
    """What one setting of the explorer produced."""

    label: int
    scale: float
    steps: int
    samples: torch.Tensor  # (n, 1, 28, 28) in [-1, 1]
    on_class: int  # how many of the n samples the course classifier assigns to ``label``
    seconds: float
    model_calls: int  # guided calls, counted (= steps); each is one forward pass on a batch of 2n


@torch.no_grad()
def guided_run(model: nn.Module, schedule: NoiseSchedule, label: int, scale: float, steps: int = 20, n: int = 8,
               seed: int = 0) -> GuidedRun:
    """n DDIM samples (η = 0) of class ``label`` at guidance ``scale``, from latents seeded by ``seed``."""
    guided = cfg(model, label, scale)
    x_T = seeded_latents(seed, n, image_shape(model, "guided_run"))  # (n, C, H, W): the same at every label and scale
    x_T = check_model_input(guided, x_T)
    counted = CallCounter(guided)
    with Stopwatch() as sw:
        x = ddim_sample(counted, schedule, x_T, steps=steps)
    seconds = sw.seconds
    on_class = int((classify(x)[1].argmax(1) == label).sum())
    return GuidedRun(label, scale, steps, x, on_class, seconds, counted.calls)


def guided_readout(run: GuidedRun, cached: bool) -> str:
    """The text under the controls: class, scale (with w = scale - 1), the classifier's verdict, the cost."""
    n = run.samples.shape[0]
    cost = "cached" if cached else f"{run.seconds:.2f} s for {run.model_calls} guided calls"
    return (f"class = {FASHION_CLASSES[run.label]}, scale = {run.scale:.1f} (w = {run.scale - 1:.1f}), "
            f"steps = {run.steps}: the classifier says {FASHION_CLASSES[run.label]} for {run.on_class}/{n}; {cost}")


@dataclass
class GuidanceExplorer:
    """The explorer's controls and output (``.ui`` to display)."""

    ui: w.Widget
    label: w.Dropdown
    scale: w.FloatSlider
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: GuidedRun | None = None
    update: Callable[..., None] = lambda *_: None


def guidance_explorer(model: nn.Module, schedule: NoiseSchedule, label: int = 0, scale: float = 1.0,
                      steps: int = 20, n: int = 8, seed: int = 0) -> GuidanceExplorer:
    """Build the explorer: class in the dropdown, scale in [0, 7] in steps of 0.5."""
    k = cfg(model, 0, 1.0).num_classes  # the model's classes; an unconditional one: "not class-conditional"
    label = check_int("label", label, 0, k - 1)
    scale = check_float("scale", scale, 0.0, MAX_SCALE)
    n = check_int("n", n, 1, 32)
    label_w = w.Dropdown(options=[(name, i) for i, name in enumerate(FASHION_CLASSES[:k])], value=label,
                         description="class", style=STYLE)
    scale_w = w.FloatSlider(value=scale, min=0.0, max=MAX_SCALE, step=0.5, description="scale", readout_format=".1f",
                            **slider_args())
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ex = GuidanceExplorer(w.VBox([w.HBox([label_w, scale_w]), readout_w, image_w]), label_w, scale_w, image_w,
                          readout_w, RunCache())

    def compute(key: tuple[int, float]) -> tuple[GuidedRun, bytes]:
        lab, sc = key
        run = guided_run(model, schedule, lab, sc, steps, n, seed)
        title = f"{FASHION_CLASSES[lab]}, scale {sc:.1f}: {n} samples from the same {n} x_T (seed {seed})"
        return run, png_bytes(labelled_grid(run.samples, n, title=title))

    def key() -> tuple[int, float]:
        return (int(label_w.value), round(float(scale_w.value), 6))

    connect(ex, (label_w, scale_w), key, compute, guided_readout)
    return ex


# -- the SDEdit explorer of notebook 08 ---------------------------------------------------------
@dataclass(frozen=True)
class SDEditRun:
    """What one strength of the SDEdit explorer produced."""

    strength: float
    steps: int  # model calls: round(steps_full · strength), at least 1
    edits: torch.Tensor  # (n, 1, 28, 28)
    rmse_to_input: float  # mean over the n images, [-1, 1] scale
    p_class: float  # the classifier's mean probability of each image's true class
    seconds: float


@torch.no_grad()
def sdedit_run(model: nn.Module, schedule: NoiseSchedule, x_in: torch.Tensor, labels: torch.Tensor, strength: float,
               steps_full: int = 20, seed: int = 0, scale: float = 1.0) -> SDEditRun:
    """SDEdit of every input towards its own label (``cfg(model, labels, scale)``; scale 1 is the conditional
    model) at ``strength``, with round(steps_full·strength) guided model calls."""
    from ...core.guidance import sdedit
    from ...evaluate.guidance_eval import rmse

    strength = check_float("strength", strength, 0.0, 1.0, lo_open=True)
    steps_full = check_int("steps_full", steps_full, 1, schedule.T)
    steps = max(1, round(steps_full * strength))
    with Stopwatch() as sw:
        out = sdedit(cfg(model, labels, scale), schedule, x_in, strength=strength, steps=steps,
                     generator=sdedit_generator(seed))
    seconds = sw.seconds
    p = float(classify(out)[1].gather(1, labels[:, None]).mean())
    return SDEditRun(strength, steps, out, float(rmse(out, x_in).mean()), p, seconds)


@dataclass
class SDEditExplorer:
    """The explorer's controls and output (``.ui`` to display)."""

    ui: w.Widget
    strength: w.FloatSlider
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: SDEditRun | None = None
    update: Callable[..., None] = lambda *_: None


def sdedit_explorer(model: nn.Module, schedule: NoiseSchedule, x_in: torch.Tensor, labels: torch.Tensor,
                    strength: float = 0.5, steps_full: int = 20) -> SDEditExplorer:
    """A strength slider in [0.05, 1] over SDEdit of the images x_in (n, 1, 28, 28), each towards its label
    (the conditional model, scale 1): inputs above, edits below. x_in: finite, in [-1, 1], at most 16 images;
    labels: int64 (n,); steps_full: the model calls at strength 1, in [1, T]. A strength the slider cannot hold
    (NaN) is written in the readout, not raised from the slider's observer."""
    strength = check_float("strength", strength, 0.05, 1.0)
    steps_full = check_int("steps_full", steps_full, 1, schedule.T)
    x_in = check_images(x_in)  # (n, C, H, W): as the forward explorer takes images (0..255 refused)
    if not torch.is_tensor(labels) or labels.shape != (x_in.shape[0],):
        got = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
        raise ValueError(f"labels must be an int64 tensor of shape ({x_in.shape[0]},), one per image, got {got}")
    cfg(model, labels, 1.0)  # the labels against the model, before any work
    s_w = w.FloatSlider(value=strength, min=0.05, max=1.0, step=0.05, description="strength", readout_format=".2f",
                        **slider_args())
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ex = SDEditExplorer(w.VBox([s_w, readout_w, image_w]), s_w, image_w, readout_w, RunCache())
    n = x_in.shape[0]

    def compute(s: float) -> tuple[SDEditRun, bytes]:
        s = check_float("strength", s, 0.05, 1.0)  # a NaN set on the slider: said in the readout
        run = sdedit_run(model, schedule, x_in, labels, s, steps_full)
        grid = labelled_grid(torch.cat([x_in, run.edits]), n, title=f"inputs (top) and SDEdit at strength {s:.2f}")
        return run, png_bytes(grid)

    def readout(run: SDEditRun, cached: bool) -> str:
        cost = "cached" if cached else f"{run.seconds:.2f} s"
        return (f"strength = {run.strength:.2f} (t0 = {round(run.strength * (schedule.T - 1))}, "
                f"{run.steps} model calls): distance to input {run.rmse_to_input:.3f}, classifier's "
                f"probability of the true class {run.p_class:.2f}; {cost}")

    connect(ex, (s_w,), lambda: round(float(s_w.value), 6), compute, readout, show_errors=True)
    return ex
