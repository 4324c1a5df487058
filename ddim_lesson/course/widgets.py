"""The notebooks' explorers under one name: ``from ddim_lesson.course.widgets import sampler_explorer``.

Each explorer is a thin ipywidgets layer over a pure, cached function, in its own module:

- :mod:`ddim_lesson.course.sampler_widget`: steps, eta, seed, spacing -> DDIM samples (notebook 04);
- :mod:`ddim_lesson.course.interpolation_widget`: slerp against lerp between two latents (notebooks 04-05);
- :mod:`ddim_lesson.course.forward_widget`, :mod:`ddim_lesson.course.solver_widget`,
  :mod:`ddim_lesson.course.guidance_widget`:
  the explorers of notebooks 01, 06 and 07-08;
- :mod:`ddim_lesson.course.explorer_kit`: what they share (seeded latents, the cache, the wiring).
"""

from __future__ import annotations

from .explorer_kit import RunCache, seeded_latents
from .interpolation_widget import (
    InterpolationExplorer,
    InterpolationRun,
    interpolation_explorer,
    interpolation_run,
    render_interpolation,
    rms_norm,
)
from .sampler_widget import (
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

__all__ = [
    "InterpolationExplorer", "InterpolationRun", "RunCache", "SampleRun", "SamplerExplorer", "explorer_key",
    "explorer_readout", "interpolation_explorer", "interpolation_run", "render_interpolation",
    "render_sample_run", "rms_norm", "sample_grid_title", "sample_run", "sampler_explorer", "seeded_latents",
    "trajectory_indices",
]
