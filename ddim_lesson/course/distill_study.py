"""Notebook 11's comparison at equal model calls: a round's k-step student against its teacher's samplers.

Every sampler here runs η = 0 without clipping, from one x_T, and spends exactly k model calls: the student
with k DDIM steps (its own sampler, eq. 12), the teacher with DDIM, DPM-Solver++ 2M or the exact-order 3M rung
(``core.solvers``). :func:`distill_sample` runs one of them and returns the calls it counted beside the
samples, so a table built on it can assert that each row paid what its column says.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..core import checks
from ..core.samplers import Model, ddim_sample
from ..core.schedules import NoiseSchedule
from ..core.solvers import ode_sample
from ..store.instruments import CallCounter

__all__ = ["DISTILL_SAMPLERS", "distill_sample"]

# method -> the solver it runs ("student": the round's student with its own DDIM steps; the rest: the teacher)
DISTILL_SAMPLERS = {"student": "ddim", "DDIM": "ddim", "DPM-Solver++ 2M": "dpmpp_2m",
                    "DPM-Solver++ 3M": "dpmpp_3m_exact"}


def distill_sample(students: Mapping[int, Model], teacher: Model, schedule: NoiseSchedule, method: str, k: int,
                   x_T: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``method`` at k model calls from x_T (B, ...), η = 0, no clipping: (samples (B, ...), model calls counted).

    method: a key of :data:`DISTILL_SAMPLERS`; "student" samples ``students[k]`` (k must be a round's step count,
    a key of ``students``), any other the teacher (k >= 1). A bad method or k: ValueError naming the allowed ones.
    """
    method = checks.check_choice("method", method, DISTILL_SAMPLERS)
    if method == "student" and (isinstance(k, bool) or not isinstance(k, int) or k not in students):
        raise ValueError(f"k {k!r} is not a round's step count; allowed: {', '.join(map(str, sorted(students)))}")
    k = checks.check_int("k", k, 1)
    counted = CallCounter(students[k] if method == "student" else teacher)
    with torch.no_grad():
        if DISTILL_SAMPLERS[method] == "ddim":
            x = ddim_sample(counted, schedule, x_T, steps=k, clip_x0=False)
        else:
            x = ode_sample(counted, schedule, x_T, steps=k, solver=DISTILL_SAMPLERS[method])
    return x, counted.calls
