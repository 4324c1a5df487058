"""course.widgets.solver: the solver explorer runs, caches and says what Heun spent."""

from __future__ import annotations

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.course.widgets.solver import solver_explorer
from ddim_lesson.evaluate.solver_study import gaussian_data


# -- the explorer --------------------------------------------------------------------------------------
def test_solver_explorer_runs_caches_and_says_what_heun_spent(counting) -> None:
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x_T = torch.randn(4, 1, 1, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def model(x, t):  # (B, 1, 1, 3) images of 3 pixels
        return data.eps(x.view(-1, 3), t).view_as(x)

    ref = data.solution(x_T.view(-1, 3)).view_as(x_T)
    m = counting(model)
    e = solver_explorer(m, sch, x_T, ref, solver="dpmpp_2m", nfe=10, spacing="logsnr")
    assert m.calls == 10 and e.last.calls == 10 and e.image.value[:4] == b"\x89PNG"
    first = e.last.error
    e.nfe.value = 30
    assert e.last.error < first and "NFE = 30" in e.readout.value
    e.solver.value = "heun"
    assert e.last.calls == 29 and "cannot be spent exactly" in e.readout.value
    calls = m.calls
    e.solver.value, e.nfe.value = "dpmpp_2m", 10
    assert m.calls == calls and "from cache" in e.readout.value and e.last.error == first
    with pytest.raises(ValueError, match="'rk4'"):
        solver_explorer(model, sch, x_T, ref, solver="rk4")
    with pytest.raises(ValueError, match="shape"):
        solver_explorer(model, sch, x_T, ref[:2])
