"""The DDIM explorer of notebook 04: steps, eta, seed and spacing -> samples and one x0 trajectory.

A thin ipywidgets layer over :func:`sample_run`, the pure (and cached) sampling run; the widget
only draws. Sliders use ``continuous_update=False``, so a slider move costs at most one run.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
import torch

from ...core import checks
from ...core.checks import check_eta
from ...core.samplers import Model, ddim_progressive
from ...core.schedules import DEFAULT_SPACING, SPACINGS, NoiseSchedule, check_steps
from ...evaluate.generate import noise_generator, seeded_latents
from ...store.instruments import CallCounter, Stopwatch
from ..images import labelled_grid, labelled_row, png_bytes, stack
from .kit import STYLE, RunCache, connect, slider_args


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
    model_calls: int  # the model's forward passes in this run, counted (DDIM makes exactly ``steps``)


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
    x_T = checks.check_model_input(model, seeded_latents(seed, n, shape))  # (n, *shape), checked before wrapping
    gen = noise_generator(seed)  # the η noise, apart from x_T: the one seeding rule (evaluate.generate)
    keep = set(trajectory_indices(steps, n_traj))
    counted = CallCounter(model)
    traj, traj_t = [], []
    x = x_T
    with Stopwatch() as sw:
        for i, st in enumerate(ddim_progressive(counted, schedule, x_T, steps=steps, eta=eta, spacing=spacing,
                                                generator=gen)):
            x = st.x
            if i in keep:
                traj.append(st.x0_pred[0])
                traj_t.append(st.t)
    seconds = sw.seconds
    return SampleRun(steps, float(eta), seed, spacing, x, torch.stack(traj), tuple(traj_t), seconds, counted.calls)


def sample_grid_title(run: SampleRun) -> str:
    """The grid's title: n samples from n different x_T, all drawn from one seed (``seeded_latents``)."""
    n = run.samples.shape[0]
    return f"{n} samples from {n} different x_T, all drawn from seed {run.seed}"


def render_sample_run(run: SampleRun, ncol: int = 8) -> bytes:
    """PNG: the sample grid, then sample 0's predicted x0 at several timesteps."""
    grid = labelled_grid(run.samples, ncol, title=sample_grid_title(run))
    traj = labelled_row(run.x0_traj, [f"t={t}" for t in run.traj_t], title="predicted x0 of sample 1 along the steps")
    return png_bytes(stack([grid, traj]))


def explorer_key(steps: int, eta: float, seed: int, spacing: str) -> tuple[int, float, int, str]:
    """Cache key; eta is rounded so 0.30000000000000004 and 0.3 are the same setting."""
    return (int(steps), round(float(eta), 6), int(seed), str(spacing))


def explorer_readout(run: SampleRun, cached: bool) -> str:
    """The text under the sliders: the settings, then how long the run took (or that it was cached)."""
    how = "from cache" if cached else "computed"
    return (
        f"<code>steps = {run.steps}, eta = {run.eta:.1f}, seed = {run.seed}, "
        f"spacing = {html.escape(str(run.spacing))}</code>"
        f" &nbsp;·&nbsp; {run.model_calls} model calls, {run.seconds:.2f} s ({how})"
    )


@dataclass
class SamplerExplorer:
    """The explorer's controls and output (``.ui`` to display)."""

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
    steps_w = w.IntSlider(value=steps, min=1, max=max_steps, step=1, description="steps", **slider_args())
    eta_w = w.FloatSlider(value=eta, min=0.0, max=1.0, step=0.1, description="eta", readout_format=".1f",
                          **slider_args())
    seed_w = w.IntSlider(value=seed, min=0, max=max_seed, step=1, description="seed", **slider_args())
    spacing_w = w.Dropdown(options=list(SPACINGS), value=spacing, description="spacing", style=STYLE)
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ui = w.VBox([w.HBox([w.VBox([steps_w, eta_w]), w.VBox([seed_w, spacing_w])]), readout_w, image_w])
    ex = SamplerExplorer(ui, steps_w, eta_w, seed_w, spacing_w, image_w, readout_w, RunCache())

    def compute(key: tuple[int, float, int, str]) -> tuple[SampleRun, bytes]:
        run = sample_run(model, schedule, *key, n=n, shape=shape)
        return run, render_sample_run(run)

    def key() -> tuple[int, float, int, str]:
        return explorer_key(steps_w.value, eta_w.value, seed_w.value, spacing_w.value)

    # a ValueError is not reachable through the controls; it is shown rather than lost
    connect(ex, (steps_w, eta_w, seed_w, spacing_w), key, compute, explorer_readout, show_errors=True)
    return ex
