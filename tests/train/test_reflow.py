"""train.reflow: pairs from a flow, and training on the straight lines between them.

On pairs x0 = A·x1 (A diagonal) the straight-line velocity is known, and a model trained on them must
take x1 to A·x1 in ONE Euler step; the same data with the pairs shuffled (an independent coupling, as
in the first round of flow matching) must not: the coupling is what reflow changes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ddim_lesson import flow_sample
from ddim_lesson.course.flow_study import moons_config
from ddim_lesson.train.reflow import reflow_pairs, train_on_pairs


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread, as the notebooks run (two threads on a busy 2-core machine made this file 20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


A = torch.tensor([0.3, 0.6])  # positive: the straight lines x_s = ((1 - s)A + s)·x1 never cross


def _pairs(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return x1 * A, x1


def test_trained_on_coupled_pairs_one_euler_step_lands() -> None:
    x0, x1 = _pairs()
    cfg = dataclasses.replace(moons_config("flow", 300, batch_size=128, progress=False), mlp_hidden=64, mlp_depth=2)
    res = train_on_pairs(cfg, x0, x1)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    err = float((flow_sample(res.ema, z, steps=1) - z * A).norm(dim=1).mean())
    shuffled = train_on_pairs(cfg, x0[torch.randperm(len(x0), generator=torch.Generator().manual_seed(2))], x1).ema
    err_shuffled = float((flow_sample(shuffled, z, steps=1) - z * A).norm(dim=1).mean())
    assert err < 0.1 and err_shuffled > 5 * err, (err, err_shuffled)
    assert res.losses[-1] < 0.1 * res.losses[0] and len(res.losses) == 300
    assert res.meta["pairs"] == 2000 and res.meta["init"] == "fresh"


def test_init_copies_and_does_not_touch_the_given_model() -> None:
    x0, x1 = _pairs(512)
    cfg = moons_config("flow", 5, batch_size=64, progress=False)
    base = train_on_pairs(cfg, x0, x1).ema
    before = {k: v.clone() for k, v in base.state_dict().items()}
    res = train_on_pairs(cfg, x0, x1, init=base)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the flow itself is kept
    assert res.meta["init"] == "given model" and res.ema is not base


def test_reflow_pairs_are_the_flows_own_map() -> None:
    def v(x, s):
        return x * (1 - A)  # any field will do here

    x0, x1 = reflow_pairs(v, 64, 3, seed=4)
    assert torch.equal(x1, torch.randn(64, 2, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(x0, flow_sample(v, x1, steps=3))


@pytest.mark.parametrize("bad,match", [
    ({"objective": "eps"}, "objective must be 'flow'"),
    ({"out": "somewhere"}, "writes no files"),
])
def test_refuses_bad_config(bad, match) -> None:
    x0, x1 = _pairs(64)
    cfg = moons_config("flow", 5, progress=False)
    for k, val in bad.items():
        setattr(cfg, k, val)
    with pytest.raises(ValueError, match=match):
        train_on_pairs(cfg, x0, x1)
    with pytest.raises(ValueError, match="one shape"):
        train_on_pairs(moons_config("flow", 5, progress=False), x0, x1[:10])
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        reflow_pairs(lambda x, s: x, 0, 3)
