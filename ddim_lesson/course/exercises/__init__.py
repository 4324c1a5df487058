"""The course's exercises: every checker and reference solution, and ``solution``, under one name.

Each ``check_*`` takes the learner's function and compares it with the library on random inputs:

- it returns True, and says what was checked, when the function matches;
- it returns False, and says what to write, while the function still raises NotImplementedError;
- it raises AssertionError naming the largest difference and the likely mistake otherwise.

The reference solutions are the ``reference_*`` functions. ``solution(name)`` runs the checker on the
reference quietly and says so in one line, without showing it; ``solution(name, show=True)`` (the one
way to see a solution) prints it, for a learner who asks. A wrong answer is rendered as the hint
alone (:class:`~ddim_lesson.course.exercises.harness.CheckFailed`), never with the checker's frames.
They are written from the papers' equations, not by calling the library, so a checker accepting
its reference solution is itself a test of the library. The checkers live in one module per
group of notebooks, all calling the learner's code through :mod:`ddim_lesson.course.exercises.harness`:

- :mod:`ddim_lesson.course.exercises.ddpm` (01-02), :mod:`ddim_lesson.course.exercises.ddim` (03-04),
  :mod:`ddim_lesson.course.exercises.latents` (04-05), :mod:`ddim_lesson.course.exercises.solvers` (06),
  :mod:`ddim_lesson.course.exercises.fixed_point` (08), :mod:`ddim_lesson.course.exercises.ideal` (09),
  :mod:`ddim_lesson.course.exercises.flow` (10), :mod:`ddim_lesson.course.exercises.distill` (11).

``check_environment``, which every notebook runs first, lives in :mod:`ddim_lesson.course.env`.
"""

from __future__ import annotations

import contextlib
import inspect
import io

from ...store.data import fashion_mnist_location
from ..env import check_environment
from .ddim import (
    DDIM_CASES,
    STEP_SIGMA_CASES,
    check_ddim_step,
    check_step_sigmas,
    reference_ddim_step,
    reference_step_sigmas,
)
from .ddpm import check_ddpm_step, check_q_sample, reference_ddpm_step, reference_q_sample
from .distill import check_distill_target, reference_distill_target
from .fixed_point import check_fixed_point_step, reference_fixed_point_step
from .flow import check_to_flow, reference_to_flow
from .harness import CheckFailed, LearnerError
from .ideal import check_ideal_weights, reference_ideal_weights
from .latents import INVERT_CASES, check_invert_step, check_slerp, reference_invert_step, reference_slerp
from .solvers import check_heun_step, reference_heun_step

SOLUTIONS = {
    "q_sample": reference_q_sample,
    "ddpm_step": reference_ddpm_step,
    "ddim_step": reference_ddim_step,
    "step_sigmas": reference_step_sigmas,
    "slerp": reference_slerp,
    "invert_step": reference_invert_step,
    "heun_step": reference_heun_step,
    "fixed_point_step": reference_fixed_point_step,
    "ideal_weights": reference_ideal_weights,
    "distill_target": reference_distill_target,
    "to_flow": reference_to_flow,
}


CHECKERS = {
    "q_sample": check_q_sample,
    "ddpm_step": check_ddpm_step,
    "ddim_step": check_ddim_step,
    "step_sigmas": check_step_sigmas,
    "slerp": check_slerp,
    "invert_step": check_invert_step,
    "heun_step": check_heun_step,
    "fixed_point_step": check_fixed_point_step,
    "ideal_weights": check_ideal_weights,
    "distill_target": check_distill_target,
    "to_flow": check_to_flow,
}


def solution(name: str, show: bool = False) -> bool:
    """Check the reference solution ``name`` with its own checker, quietly, and say so in one line.

    The source is printed only with ``show=True``: a notebook run from the top shows no spoiler.
    Returns True when the reference passes (it is written from the paper, so this also tests the
    library); a failure raises, naming the exercise.
    """
    if name not in SOLUTIONS:
        raise ValueError(f"unknown exercise {name!r}; allowed: {', '.join(SOLUTIONS)}")
    with contextlib.redirect_stdout(io.StringIO()) as said:
        passed = CHECKERS[name](SOLUTIONS[name])
    if not passed:
        raise AssertionError(f"the reference solution of {name!r} did not pass its checker: {said.getvalue()}")
    if show:
        print(inspect.getsource(SOLUTIONS[name]))
    else:
        print(f"The reference solution of this exercise passes the same checker (a test of the library too). "
              f"To see it, once you have tried: solution({name!r}, show=True).")
    return True


__all__ = [
    "CHECKERS", "CheckFailed", "DDIM_CASES", "INVERT_CASES", "STEP_SIGMA_CASES", "SOLUTIONS", "LearnerError",
    "check_ddim_step",
    "check_ddpm_step", "check_environment", "check_fixed_point_step", "check_invert_step", "check_q_sample",
    "check_slerp", "check_step_sigmas", "fashion_mnist_location", "reference_ddim_step", "reference_ddpm_step",
    "reference_fixed_point_step", "reference_invert_step", "reference_q_sample", "reference_slerp",
    "reference_step_sigmas", "solution",
    "check_ideal_weights", "reference_ideal_weights",
    "check_distill_target", "reference_distill_target",
    "check_to_flow", "reference_to_flow",
]
