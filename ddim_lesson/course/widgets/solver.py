"""Notebook 06's solver explorer: pick a solver, a budget of model calls and a spacing; see the
samples, a converged reference from the same x_T, and how far apart they are.

Built like the other explorers (``widgets.kit``, ``images``): a pure, cached ``solver_run`` does
the maths, the widget only draws. Heun spends 2N-1 calls, so for an even budget
it runs with one call fewer and the readout says so.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
import torch

from ...core.checks import check_choice, check_image_shape, check_int, check_model_input
from ...core.samplers import Model
from ...core.schedules import SPACINGS, NoiseSchedule
from ...core.solvers import SOLVERS, calls_within, ode_sample
from ...evaluate.solver_study import rel_error
from ...store.instruments import CallCounter, Stopwatch
from ..images import labelled_row, png_bytes, stack
from .kit import STYLE, RunCache, connect, slider_args

OFF_RANGE = 3.0  # |pixel| above this: said in the readout (the shipped model: 1.4 at 10-40 calls, Heun 5.4-959 at 9-3)


@dataclass(frozen=True)
class SolverRun:
    """What one setting produced: samples (n, C, H, W) and their error against the reference."""

    solver: str
    budget: int  # the NFE asked for
    calls: int  # the model calls spent, counted (== budget except Heun with an even budget)
    spacing: str
    samples: torch.Tensor  # (n, C, H, W)
    error: float  # ‖samples - reference‖/‖reference‖ over the batch
    per_sample: tuple[float, ...]  # (n,) the same, per sample
    seconds: float


def solver_run(model: Model, schedule: NoiseSchedule, x_T: torch.Tensor, reference: torch.Tensor, solver: str,
               budget: int, spacing: str) -> SolverRun:
    """Solve from x_T (n, C, H, W) with at most ``budget`` calls; compare with ``reference`` (n, C, H, W)."""
    calls = calls_within(solver, budget, schedule.T)
    counted = CallCounter(model)
    x_T = check_model_input(model, x_T)  # checked against the model itself, not the counter
    with Stopwatch() as sw:
        x0 = ode_sample(counted, schedule, x_T, steps=calls, solver=solver, spacing=spacing)
    seconds = sw.seconds
    per = tuple(rel_error(a, b) for a, b in zip(x0, reference))
    return SolverRun(solver, budget, counted.calls, spacing, x0, rel_error(x0, reference), per, seconds)


def render_solver_run(run: SolverRun, reference: torch.Tensor) -> bytes:
    """PNG: the samples (labelled with their errors), the reference, and |difference| (black 0, white >= 0.5)."""
    diff = ((run.samples - reference).abs() * 4 - 1).clamp(-1, 1)  # |d| = 0 -> black, |d| >= 0.5 -> white
    rows = [
        labelled_row(run.samples, [f"{e:.3f}" for e in run.per_sample],
                 title=f"{run.solver}, {run.calls} model calls, {run.spacing} spacing (label: error vs reference)"),
        labelled_row(reference, title="reference: the same x_T, solved to convergence"),
        labelled_row(diff, title="|sample - reference| (white: 0.5 or more)"),
    ]
    return png_bytes(stack(rows))


def solver_readout(run: SolverRun, cached: bool) -> str:
    """The text under the controls: settings, calls spent, error, time (or that it came from the cache)."""
    note = "" if run.calls == run.budget else (f" (heun makes 2N-1 calls: {run.budget} cannot be spent exactly, "
                                               f"so it ran {run.calls})")
    peak = float(run.samples.abs().max())
    if peak > OFF_RANGE:  # Heun at 3-9 calls on the shipped model reaches ±1092: say so beside the image
        note += (f" <b>· the samples reach ±{peak:.3g}, far outside the pixel range [-1, 1] (drawn clipped): "
                 f"{html.escape(str(run.solver))} diverges at {run.calls} calls here; give it more calls, or pick "
                 "another solver</b>")
    return (f"<code>solver = {html.escape(str(run.solver))}, NFE = {run.budget}, "
            f"spacing = {html.escape(str(run.spacing))}</code>{note}"
            f" &nbsp;·&nbsp; error vs reference {run.error:.4f} &nbsp;·&nbsp; {run.calls} model calls, "
            f"{run.seconds:.2f} s ({'from cache' if cached else 'computed'})")


@dataclass
class SolverExplorer:
    """The widget: ``.ui`` to display; the controls and the last run, for tests."""

    ui: w.Widget
    solver: w.Dropdown
    nfe: w.IntSlider
    spacing: w.Dropdown
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: SolverRun | None = None
    update: Callable[..., None] = lambda *_: None


def solver_explorer(model: Model, schedule: NoiseSchedule, x_T: torch.Tensor, reference: torch.Tensor,
                    solver: str = "dpmpp_2m", nfe: int = 10, spacing: str = "logsnr",
                    max_nfe: int = 40) -> SolverExplorer:
    """Build the explorer over x_T and its reference, both (n, C, H, W); NFE in [1, max_nfe]. A 2-D toy model
    is refused by name (the explorer draws images), as the sampler explorer refuses it."""
    check_image_shape(model, tuple(x_T.shape[1:]), "the solver explorer")
    check_choice("solver", solver, SOLVERS)
    check_choice("spacing", spacing, SPACINGS)
    max_nfe = check_int("max_nfe", max_nfe, 1, schedule.T)
    nfe = check_int("nfe", nfe, 1, max_nfe)
    if x_T.shape != reference.shape:
        raise ValueError(f"reference shape {tuple(reference.shape)} must equal x_T shape {tuple(x_T.shape)}")
    solver_w = w.Dropdown(options=list(SOLVERS), value=solver, description="solver", style=STYLE)
    nfe_w = w.IntSlider(value=nfe, min=1, max=max_nfe, step=1, description="NFE", **slider_args())
    spacing_w = w.Dropdown(options=list(SPACINGS), value=spacing, description="spacing", style=STYLE)
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ui = w.VBox([w.HBox([solver_w, spacing_w]), nfe_w, readout_w, image_w])
    ex = SolverExplorer(ui, solver_w, nfe_w, spacing_w, image_w, readout_w, RunCache())

    def compute(key: tuple[str, int, str]) -> tuple[SolverRun, bytes]:
        run = solver_run(model, schedule, x_T, reference, *key)
        return run, render_solver_run(run, reference)

    def key() -> tuple[str, int, str]:
        return (solver_w.value, int(nfe_w.value), spacing_w.value)

    connect(ex, (solver_w, nfe_w, spacing_w), key, compute, solver_readout)
    return ex
