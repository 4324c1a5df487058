"""Notebook 11's distillation explorer: a round's k-step student beside its teacher with a training-free sampler
at the same k model calls, from the same seeded x_T, on two-moons.

Built like the other explorers (``widgets.kit``): a pure, cached :func:`distill_run` does the maths (samples,
model calls counted, the two-moons measures of ``evaluate.moons``), :func:`render_distill_run` draws two scatter
panels side by side, and :func:`distill_explorer` wires a slider over the rounds' k, a dropdown over the teacher's
sampler and a seed slider to them. Both samplers run η = 0 without clipping, as notebook 11's section 4 runs them, so
at the same seed and reference draw the explorer's numbers are that table's.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ipywidgets as w
import torch

from ...core import checks
from ...core.samplers import Model, ddim_sample
from ...core.schedules import NoiseSchedule
from ...core.seeds import reference_data_generator
from ...core.solvers import ode_sample
from ...evaluate.generate import seeded_latents
from ...evaluate.moons import energy_distance, near_fraction
from ...store.data import toy_2d
from ...store.instruments import CallCounter, Stopwatch
from ..distill_study import DISTILL_SAMPLERS
from ..images import labelled_row, png_bytes
from .kit import STYLE, RunCache, connect, slider_args

TEACHER_SAMPLERS = {m: solver for m, solver in DISTILL_SAMPLERS.items() if m != "student"}  # notebook 11's, -> solver
REF_SEED = 20  # the fresh two-moons draw the energy distance compares with (notebook 11's section 4 uses seed 20)
LIM = 2.6  # each panel shows [-LIM, LIM]² (notebook 11's figures use the same)
PANEL = 120  # panel side in pixels, before the explorers' 3x upscale
BLUE, GREY = (-0.76, -0.07, 0.41), (0.5, 0.5, 0.5)  # samples (tab:blue) and fresh data, as RGB in [-1, 1]


@dataclass(frozen=True)
class DistillRun:
    """What one setting produced: the k-step student's and the teacher's samples from one x_T, and their scores."""

    k: int  # the round's student steps, and the teacher's model calls
    method: str  # the teacher's sampler, a key of TEACHER_SAMPLERS
    seed: int  # x_T = seeded_latents(seed, n, (2,))
    student: torch.Tensor  # (n, 2) the student's samples, DDIM with k steps
    teacher: torch.Tensor  # (n, 2) the teacher's samples, ``method`` at k model calls
    student_calls: int  # counted (== k)
    teacher_calls: int  # counted (== k)
    student_near: float  # near_fraction(student): share within 0.1 of a noise-free moon (fresh data: about 0.95)
    teacher_near: float
    student_energy: float  # energy_distance(student, ref) against fresh data (0 for identical distributions)
    teacher_energy: float
    seconds: float  # wall time of both sampling runs


def reference_moons(n: int = 1000, seed: int = REF_SEED) -> torch.Tensor:
    """The fresh data (n, 2) the energy distance compares with: ``toy_2d("two-moons", n)`` from ``seed``."""
    return toy_2d("two-moons", checks.check_int("n", n, 1), reference_data_generator(seed))


def check_round(k: object, students: Mapping[int, Model]) -> int:
    """``k`` if it is one of the rounds' step counts (the keys of ``students``), else ValueError naming them."""
    allowed = sorted(students, reverse=True)
    if isinstance(k, bool) or not isinstance(k, int) or k not in students:
        raise ValueError(f"k {k!r} is not a round's step count; allowed: {', '.join(str(a) for a in allowed)}")
    return k


def distill_run(students: Mapping[int, Model], teacher: Model, schedule: NoiseSchedule, k: int, method: str,
                seed: int, n: int = 1000, ref: torch.Tensor | None = None) -> DistillRun:
    """Sample ``students[k]`` with k DDIM steps and ``teacher`` with ``method`` at k model calls, both from
    x_T = seeded_latents(seed, n, (2,)) (n, 2), η = 0, no clipping; score both against ``ref`` (M, 2), by default
    :func:`reference_moons`. Bad k or method: ValueError naming the value and the allowed ones."""
    k, method = check_round(k, students), checks.check_choice("method", method, TEACHER_SAMPLERS)
    seed, n = checks.check_seed(seed), checks.check_int("n", n, 1)
    ref = reference_moons() if ref is None else ref
    x_T = seeded_latents(seed, n, (2,))  # (n, 2)
    student, teacher_c = CallCounter(students[k]), CallCounter(teacher)
    with Stopwatch() as sw, torch.no_grad():
        xs = ddim_sample(student, schedule, x_T, steps=k, clip_x0=False)  # the student's own sampler (eq. 12)
        if method == "DDIM":
            xt = ddim_sample(teacher_c, schedule, x_T, steps=k, clip_x0=False)
        else:
            xt = ode_sample(teacher_c, schedule, x_T, steps=k, solver=TEACHER_SAMPLERS[method])
    seconds = sw.seconds
    return DistillRun(k, method, seed, xs, xt, student.calls, teacher_c.calls, near_fraction(xs), near_fraction(xt),
                      energy_distance(xs, ref), energy_distance(xt, ref), seconds)


def scatter_tensor(points: torch.Tensor, ref: torch.Tensor | None = None, lim: float = LIM,
                   size: int = PANEL) -> tuple[torch.Tensor, int]:
    """Points (N, 2) drawn blue over ``ref`` (M, 2) in grey on white: an image (3, size, size) in [-1, 1], y up,
    showing [-lim, lim]²; also how many points fell outside it (not drawn)."""
    img = torch.ones(3, size, size)
    img[:, size // 2, :] = img[:, :, size // 2] = 0.85  # the axes through 0, light grey
    img[:, [0, -1], :] = img[:, :, [0, -1]] = 0.6  # the frame
    off = 0
    for pts, colour in ((ref, GREY), (points, BLUE)):
        if pts is None:
            continue
        ij = ((pts.detach().double().cpu() + lim) / (2 * lim) * size).floor().long()  # (N, 2) column, row from below
        inside = ((ij >= 0) & (ij < size)).all(1)
        col, row = ij[inside, 0], size - 1 - ij[inside, 1]
        img[:, row, col] = torch.tensor(colour).view(3, 1)
        if pts is points:
            off = int((~inside).sum())
    return img, off


def render_distill_run(run: DistillRun, ref: torch.Tensor | None = None) -> bytes:
    """PNG: the student's and the teacher's samples side by side (fresh data ``ref`` (M, 2) in grey underneath),
    each headed with its sampler and model calls, labelled with its near fraction and energy distance."""
    s = "s" * (run.k > 1)
    panels, labels = [], []
    for x, energy in ((run.student, run.student_energy), (run.teacher, run.teacher_energy)):
        img, off = scatter_tensor(x, ref)
        panels.append(img)
        labels.append(f"energy distance {energy:.4f}" + (f", {off} points off the panel" if off else ""))
    heads = [f"student, DDIM, {run.student_calls} call{s}, near {run.student_near:.3f}",
             f"teacher, {run.method}, {run.teacher_calls} call{s}, near {run.teacher_near:.3f}"]
    title = f"seed {run.seed}: {run.student.shape[0]} points each, from the same x_T (grey: fresh data)"
    return png_bytes(labelled_row(torch.stack(panels), labels, title=title, gap=8, heads=heads))


def distill_readout(run: DistillRun, cached: bool) -> str:
    """One line: the setting, both samplers' near fraction and energy distance, calls and time (or cached)."""
    return (f"<code>k = {run.k}, teacher sampler = {html.escape(run.method)}, seed = {run.seed}</code>"
            f" &nbsp;·&nbsp; student near {run.student_near:.3f}, energy {run.student_energy:.4f}"
            f" &nbsp;·&nbsp; teacher near {run.teacher_near:.3f}, energy {run.teacher_energy:.4f}"
            f" &nbsp;·&nbsp; {run.student_calls} + {run.teacher_calls} model calls, {run.seconds:.2f} s "
            f"({'from cache' if cached else 'computed'})")


@dataclass
class DistillExplorer:
    """The widget: ``.ui`` to display; the controls and the last run, for tests."""

    ui: w.Widget
    k: w.SelectionSlider
    method: w.Dropdown
    seed: w.IntSlider
    image: w.Image
    readout: w.HTML
    cache: RunCache
    last: DistillRun | None = None
    update: Callable[..., None] = lambda *_: None


def distill_explorer(students: Mapping[int, Model], teacher: Model, schedule: NoiseSchedule, k: int = 4,
                     method: str = "DPM-Solver++ 3M", seed: int = 0, n: int = 1000,
                     ref: torch.Tensor | None = None, max_seed: int = 99) -> DistillExplorer:
    """Build the explorer: k over the rounds (the keys of ``students``, most steps first), the teacher's sampler,
    the seed of the n points of x_T (n, 2); ``ref`` (M, 2), by default :func:`reference_moons`. Renders one run."""
    k, method = check_round(k, students), checks.check_choice("method", method, TEACHER_SAMPLERS)
    max_seed, n = checks.check_seed(max_seed, "max_seed"), checks.check_int("n", n, 1)
    seed = checks.check_int("seed", seed, 0, max_seed)
    ref = reference_moons() if ref is None else ref
    k_w = w.SelectionSlider(options=sorted(students, reverse=True), value=k, description="k steps", **slider_args())
    method_w = w.Dropdown(options=list(TEACHER_SAMPLERS), value=method, description="teacher", style=STYLE)
    seed_w = w.IntSlider(value=seed, min=0, max=max_seed, step=1, description="seed", **slider_args())
    image_w, readout_w = w.Image(format="png"), w.HTML()
    ui = w.VBox([w.HBox([w.VBox([k_w, seed_w]), method_w]), readout_w, image_w])
    ex = DistillExplorer(ui, k_w, method_w, seed_w, image_w, readout_w, RunCache())

    def compute(key: tuple[int, str, int]) -> tuple[DistillRun, bytes]:
        run = distill_run(students, teacher, schedule, *key, n=n, ref=ref)
        return run, render_distill_run(run, ref)

    def key() -> tuple[int, str, int]:
        return (int(k_w.value), str(method_w.value), int(seed_w.value))

    connect(ex, (k_w, method_w, seed_w), key, compute, distill_readout, show_errors=True)
    return ex
