"""evaluate.solver_study: the Gaussian data's exact flow map, per-step errors and the fitted order."""

from __future__ import annotations

import math

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.evaluate.solver_study import fitted_order, gaussian_data, step_errors


# -- Gaussian study helpers -------------------------------------------------------------------------
def test_gaussian_flow_is_exact_and_step_errors_add_up() -> None:
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b, c = 0.1, 0.5, 0.9
    assert float((data.flow(data.flow(x, a, b), b, c) - data.flow(x, a, c)).abs().max()) < 1e-12  # a flow composes
    se = step_errors(data, x, steps=1000, solver="ddim", spacing="trailing")
    assert se.global_[-1] < 0.002 and len(se.local) == 1000  # DDIM with every timestep is nearly exact
    se = step_errors(data, x, steps=10, solver="ddim", spacing="trailing")
    assert se.global_[0] == pytest.approx(se.local[0])  # the first step's error is all there is after one step
    assert math.isinf(se.log_snr[-1]) and se.log_snr[0] < se.log_snr[1]
    assert fitted_order([10, 100], [1.0, 0.01]) == pytest.approx(2.0)
