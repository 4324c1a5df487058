"""The course layer, and the notebooks' one import surface besides ``import ddim_lesson as dl``.

A notebook reads ``import ddim_lesson as dl`` for the maths (samplers, schedules, ``pretrained``) and
``from ddim_lesson.course import ...`` for everything else it shows: measurements (``evaluate``), data and
shipped files (``store``), training (``train``), figures, explorers and exercises (``course``). Each name
below is imported from its home only when first asked for, so ``import ddim_lesson`` stays light and a
script that never draws a widget never imports ipywidgets. The home of each name is listed in
:data:`HOMES` (module path relative to the package); ``tests/system/test_notebook_surface.py`` checks that every
entry resolves and that the notebooks import through ``ddim_lesson`` and ``ddim_lesson.course`` only.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES: dict[str, str] = {  # home module -> the names notebooks take from it (space-separated)
    "core.distill": "EpsFromV abar_at alpha_sigma ddim_jump distill_grid distill_target eps_from_v teacher_two_steps "
                    "v_from_x0 x0_from_v",
    "core.exact_gaussian": "gaussian_eps guided_gaussian_eps",
    "core.flow": "euler_xt_sample flow_start s_of_abar",
    "core.multistep": "D2_WEIGHT multistep_update order_3m",
    "core.updates": "ddpm_coefs",
    "core.solvers": "make_grid",
    "store.assets": "sample_images",
    "store.classifier_io": "load_classifier",
    "store.data": "FASHION_CLASSES load_images toy_2d",
    "store.pretrained": "PRETRAINED pretrained_meta",
    "train.loop": "train",
    "train.train_config": "TrainConfig subset_indices",
    "train.distill": "distill student_path",
    "train.distill_config": "DistillConfig",
    "evaluate.table1": "Table1Config run_table1 table1_markdown",
    "evaluate.fid_spread": "spread_summary",
    "evaluate.eps_gap": "eps_gap_by_t",
    "evaluate.generate": "seeded_latents",
    "evaluate.guidance_eval": "blocky class_samples classify diversity rmse roundtrip_mse",
    "evaluate.inversion_gap": "inversion_eps_gap",
    "evaluate.loss_by_t": "eps_mse_by_t linear_eps_mse",
    "evaluate.memorisation": "RATIO agreement memorisation_rate nearest_neighbours pair_distances",
    "evaluate.image_stats": "background_share correlation highlights neighbour_correlation total_variation",
    "evaluate.metrics": "FeatureStats classifier_and_sha mse reference_stats",
    "evaluate.moons": "energy_distance near_fraction rms_spread",
    "evaluate.records": "hide_provenance load_results model_sha256",
    "evaluate.flow_twin_fid": "fid_by_method paired paired_verdict",
    "evaluate.sampler_loops": "diffusers_ddim_sample diffusers_ddim_scheduler",
    "evaluate.seed_stats": "beats_every_seed mean_range mean_sd per_seed",
    "evaluate.solver_fid": "best_spacing fid_table sample_solver_cell solver_fid_markdown",
    "evaluate.solver_study": "errors_vs_calls fine_clock fitted_order gaussian_data last_timestep_errors rel_error "
                             "scalar_errors step_errors",
    "evaluate.spacing_fid": "fids_by_spacing spacing_summary",
    "store.instruments": "CallCounter Stopwatch progress",
    "course.measure": "timed",
    "course.plotting.tables": "format_table",
    "course.plotting.curves": "plot_curves",
    "course.plotting.image_figures": "plot_image_rows",
    "course.plotting.points": "plot_points",
    "course.plotting.basins": "plot_basins",
    "course.trajectories": "path_length plot_sampler_paths stack_path straightness",
    "course.pitfalls": "naive_ddim_sample",
    "course.flow_study": "CONTROL MODELS run_reflow_study",
    "course.distill_study": "DISTILL_SAMPLERS distill_sample",
    "course.widgets.interpolation": "interpolation_explorer rms_norm",
    "course.widgets.sampler": "sample_run sampler_explorer",
    "course.widgets.forward": "forward_explorer",
    "course.widgets.guidance": "guidance_explorer sdedit_explorer sdedit_run",
    "course.widgets.solver": "solver_explorer",
    "course.widgets.distill": "distill_explorer distill_run",
    "course.exercises": "CHECKERS SOLUTIONS solution",
    "course.env": "check_environment",
    "course.exercises.ideal": "reference_ideal_weights",
    "course.exercises.latents": "reference_invert_step",
}
# submodules a notebook may take whole: `from ddim_lesson.course import exercises`
_SUBMODULES = ("exercises", "plotting", "widgets", "measure", "trajectories")

HOMES: dict[str, str] = {name: home for home, names in _NAMES.items() for name in names.split()}

__all__ = sorted([*HOMES, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    """Import ``name`` from its home on first use (PEP 562); an unknown name is an AttributeError as usual."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("check_") and name not in HOMES:  # every exercise's checker, from the exercises' facade
        exercises = importlib.import_module(f"{__name__}.exercises")
        if hasattr(exercises, name):
            return getattr(exercises, name)
    if name not in HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ddim_lesson.{HOMES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
