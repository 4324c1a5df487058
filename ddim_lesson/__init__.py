"""ddim_lesson: the tested PyTorch package behind the DDIM course.

The public API the notebooks and tests rely on is re-exported here.
"""

from .core.flow import eps_to_velocity, flow_grid, flow_progressive, flow_sample
from .core.forward import ddim_sigma, q_posterior, q_sample, q_sigma_step, q_step, sigma_bar
from .core.guidance import cfg, sdedit
from .core.ideal_denoiser import IdealDenoiser
from .core.inversion import ddim_invert, lerp, slerp
from .core.losses import theorem1_weights
from .core.samplers import (
    SamplerStep,
    ddim_progressive,
    ddim_sample,
    ddpm_progressive,
    ddpm_sample,
)
from .core.schedules import DEFAULT_SPACING, SPACINGS, NoiseSchedule, ddim_timesteps, naive_timesteps
from .core.solvers import SOLVERS, ode_progressive, ode_sample
from .core.updates import ddim_step
from .evaluate.records import load_results
from .store.assets import sample_images
from .store.instruments import CallCounter, Stopwatch
from .store.pretrained import pretrained

__version__ = "0.1.0"

__all__ = [
    "CallCounter",
    "IdealDenoiser",
    "Stopwatch",
    "sample_images",
    "sdedit",
    "DEFAULT_SPACING",
    "SPACINGS",
    "SOLVERS",
    "NoiseSchedule",
    "SamplerStep",
    "ddim_invert",
    "ddim_progressive",
    "ddim_sample",
    "ddim_sigma",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_progressive",
    "ddpm_sample",
    "eps_to_velocity",
    "flow_grid",
    "flow_progressive",
    "flow_sample",
    "cfg",
    "lerp",
    "load_results",
    "naive_timesteps",
    "ode_progressive",
    "ode_sample",
    "pretrained",
    "q_posterior",
    "q_sample",
    "q_sigma_step",
    "q_step",
    "sigma_bar",
    "slerp",
    "theorem1_weights",
]
