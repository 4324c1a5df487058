"""The notebooks' explorers under one name: ``from ddim_lesson.course.widgets import sampler_explorer``.

Each explorer is a thin ipywidgets layer over a pure, cached function, in its own module:

- :mod:`ddim_lesson.course.widgets.sampler`: steps, eta, seed, spacing -> DDIM samples (notebook 04);
- :mod:`ddim_lesson.course.widgets.interpolation`: slerp against lerp between two latents (notebooks 04-05);
- :mod:`ddim_lesson.course.widgets.forward`, :mod:`ddim_lesson.course.widgets.solver`,
  :mod:`ddim_lesson.course.widgets.guidance`:
  the explorers of notebooks 01, 06 and 07-08;
- :mod:`ddim_lesson.course.widgets.kit`: what they share (the cache, the wiring); their seeded latents come
  from :mod:`ddim_lesson.evaluate.generate`, the one seeding rule of every front-end.
"""

from __future__ import annotations

from ...evaluate.generate import seeded_latents
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

__all__ = [
    "InterpolationExplorer", "InterpolationRun", "RunCache", "SampleRun", "SamplerExplorer", "explorer_key",
    "explorer_readout", "interpolation_explorer", "interpolation_run", "render_interpolation",
    "render_sample_run", "rms_norm", "sample_grid_title", "sample_run", "sampler_explorer", "seeded_latents",
    "trajectory_indices",
]
