"""course.flow_study: notebook 10's two-moons study, at a small size (the notebook runs the full one).

The claims the notebook makes are checked here on a short run: the flow objective alone leaves the paths
about as curved as the ε-model's (both learn the same marginal velocity), one round of reflow straightens
them, and reflow's samples at 1 call are far closer to the moons than the flow's.
"""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import eps_to_velocity, flow_grid, flow_sample
from ddim_lesson.course.flow_study import CONTROL, MODELS, flow_paths, quality, run_reflow_study, sample_at
from ddim_lesson.course.trajectories import straightness
from ddim_lesson.store.data import toy_2d


@pytest.fixture(scope="module")
def study():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the notebook runs; two threads on a busy 2-core CPU were 20x slower
    try:
        yield run_reflow_study(train_steps=300, reflow_steps=200, n_pairs=1000, path_steps=50, n_paths=200,
                               n_eval=500, progress=False)
    finally:
        torch.set_num_threads(n)


def test_reflow_straightens_and_improves_one_call(study) -> None:
    st, q = study.straightness, study.quality
    assert set(st) == set(MODELS) | {CONTROL, "ε-model (DDIM), in x_t"}
    assert st[MODELS[2]] > st[CONTROL] + 0.2, st  # the coupling, not the extra steps, straightens
    assert st[MODELS[2]] > st[MODELS[1]] + 0.2 and st[MODELS[2]] > 0.9, st
    assert abs(st[MODELS[0]] - st[MODELS[1]]) < 0.15, st  # same path, same marginal velocity: about as curved
    near_flow, ed_flow = q[(MODELS[1], 1)]
    near_re, ed_re = q[(MODELS[2], 1)]
    assert near_re > near_flow + 0.2 and ed_re < 0.5 * ed_flow, q
    assert near_re > q[(CONTROL, 1)][0] + 0.2, q  # the control (same steps, independent pairs) does not get there
    assert study.data_quality[0] > 0.9 and study.data_quality[1] < ed_re  # fresh data is the floor


def test_pairs_are_the_flows_own_coupling(study) -> None:
    x0, x1 = study.pairs
    assert x0.shape == x1.shape == (1000, 2)
    assert torch.equal(x0[:50], flow_sample(study.models[MODELS[1]], x1[:50], steps=50))


def test_eps_model_path_in_x_s_is_ddim_rescaled(study) -> None:
    """The ε-model's path in the study is DDIM's, in flow coordinates (the identity, on the trained MLP)."""
    model, sched = study.models[MODELS[0]], study.schedule
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    a = sched.alphas_cumprod[-1]
    p = flow_paths(eps_to_velocity(model, sched), z / float(a.sqrt() + (1 - a).sqrt()), flow_grid(sched, 5))
    ddim = sample_at(MODELS[0], model, sched, z, 5)
    assert p.shape == (6, 20, 2) and float((p[-1] - ddim).abs().max()) < 1e-5
    assert 0 < float(straightness(p).mean()) <= 1


def test_quality_measures_separate_data_from_noise() -> None:
    data = toy_2d("two-moons", 500, torch.Generator().manual_seed(1))
    near_d, ed_d = quality(toy_2d("two-moons", 500, torch.Generator().manual_seed(2)), data)
    near_n, ed_n = quality(torch.randn(500, 2, generator=torch.Generator().manual_seed(3)), data)
    assert near_d > 0.9 > 0.3 > near_n and ed_n > 0.04 and ed_n > 5 * ed_d, (near_d, ed_d, near_n, ed_n)
