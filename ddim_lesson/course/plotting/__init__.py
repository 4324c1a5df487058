"""The notebooks' figures and tables, as one subpackage: ``from ddim_lesson.course import plotting``.

Each helper takes tensors the package computed and returns a Figure (or, for tables, text); the
code lives in one module per kind of picture, re-exported here:

- :mod:`ddim_lesson.course.images`: image tensors to arrays, PNG bytes and PNG files (``image_grid``, ``image_png``);
- :mod:`ddim_lesson.course.plotting.image_figures`: grids and labelled rows of images, noising columns,
  one sample's path;
- :mod:`ddim_lesson.course.plotting.curves`: schedules, timesteps, ODE paths, losses, histograms, x-y curves;
- :mod:`ddim_lesson.course.plotting.points`: 2-D point clouds and sampler paths;
- :mod:`ddim_lesson.course.plotting.tables`: plain-text tables.
"""

from __future__ import annotations

from ..images import image_grid, image_png
from .curves import plot_curves, plot_histograms, plot_loss, plot_ode_paths, plot_schedules, plot_timesteps
from .image_figures import plot_image_rows, plot_noising, plot_trajectory, show_images, show_rows
from .points import plot_paths_2d, plot_points
from .tables import format_table

__all__ = [
    "format_table", "image_grid", "image_png", "plot_curves", "plot_histograms", "plot_image_rows", "plot_loss",
    "plot_noising", "plot_ode_paths", "plot_paths_2d", "plot_points", "plot_schedules", "plot_timesteps",
    "plot_trajectory", "show_images", "show_rows",
]
