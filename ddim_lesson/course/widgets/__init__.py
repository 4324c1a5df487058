"""All seven of the notebooks' explorers, with their pure run functions, under one name:
``from ddim_lesson.course.widgets import sampler_explorer``.

Each explorer is a thin ipywidgets layer over a pure, cached function, in its own module:

- :mod:`ddim_lesson.course.widgets.sampler`: steps, eta, seed, spacing -> DDIM samples (notebook 04);
- :mod:`ddim_lesson.course.widgets.interpolation`: slerp against lerp between two latents (notebooks 04-05);
- :mod:`ddim_lesson.course.widgets.forward`, :mod:`ddim_lesson.course.widgets.solver`,
  :mod:`ddim_lesson.course.widgets.guidance`:
  the explorers of notebooks 01, 06 and 07-08;
- :mod:`ddim_lesson.course.widgets.distill`: a round's distilled student against its teacher's samplers at equal
  model calls (notebook 11);
- :mod:`ddim_lesson.course.widgets.kit`: what they share (the cache, the wiring); their seeded latents come
  from :mod:`ddim_lesson.evaluate.generate`, the one seeding rule of every front-end.
"""

from __future__ import annotations

from ...evaluate.generate import seeded_latents
from .distill import (
    TEACHER_SAMPLERS,
    DistillExplorer,
    DistillRun,
    check_round,
    distill_explorer,
    distill_readout,
    distill_run,
    reference_moons,
    render_distill_run,
    scatter_tensor,
)
from .forward import ForwardExplorer, check_images, forward_explorer, forward_frame
from .guidance import (
    MAX_SCALE,
    GuidanceExplorer,
    GuidedRun,
    SDEditExplorer,
    SDEditRun,
    guidance_explorer,
    guided_readout,
    guided_run,
    sdedit_explorer,
    sdedit_run,
)
from .interpolation import (
    InterpolationExplorer,
    InterpolationRun,
    interpolation_explorer,
    interpolation_run,
    render_interpolation,
    rms_norm,
)
from .kit import RunCache
from .sampler import (
    SamplerExplorer,
    SampleRun,
    explorer_key,
    explorer_readout,
    render_sample_run,
    sample_grid_title,
    sample_run,
    sampler_explorer,
    trajectory_indices,
)
from .solver import OFF_RANGE, SolverExplorer, SolverRun, render_solver_run, solver_explorer, solver_readout, solver_run

__all__ = [
    "DistillExplorer", "DistillRun", "ForwardExplorer", "GuidanceExplorer", "GuidedRun", "InterpolationExplorer",
    "InterpolationRun", "MAX_SCALE", "OFF_RANGE", "RunCache", "SDEditExplorer", "SDEditRun", "SampleRun",
    "SamplerExplorer", "SolverExplorer", "SolverRun", "TEACHER_SAMPLERS", "check_images", "check_round",
    "distill_explorer", "distill_readout", "distill_run", "explorer_key", "explorer_readout", "forward_explorer",
    "forward_frame", "guidance_explorer", "guided_readout", "guided_run", "interpolation_explorer",
    "interpolation_run", "reference_moons", "render_distill_run", "render_interpolation", "render_sample_run",
    "render_solver_run", "rms_norm", "sample_grid_title", "sample_run", "sampler_explorer", "scatter_tensor",
    "sdedit_explorer", "sdedit_run", "seeded_latents", "solver_explorer", "solver_readout", "solver_run",
    "trajectory_indices",
]
