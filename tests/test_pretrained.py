"""The shipped models: they load by name (EMA weights, eval mode, CPU, their schedule), and the
2-D model's samples lie on the two moons."""

import math

import pytest
import torch

import ddim_lesson
from ddim_lesson.cli.main import sample_in_batches
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.nets.models import MLPDenoiser, UNet
from ddim_lesson.store.pretrained import PRETRAINED, WEIGHTS_DIR, pretrained, pretrained_meta

HAVE_FASHION = all((WEIGHTS_DIR / f"fashion-mnist{s}").exists() for s in (".safetensors", ".json"))


def _moon_curves(n=2000):
    """The noise-free two-moons curves of data.toy_2d: (cos u, sin u) and (1 - cos u, 1/2 - sin u),
    u in [0, π], shifted by (-1/2, -1/4) and scaled by 1.4."""
    u = torch.linspace(0, math.pi, n, dtype=torch.float64)
    shift = torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = (torch.stack([torch.cos(u), torch.sin(u)], 1) - shift) * 1.4
    lower = (torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], 1) - shift) * 1.4
    return upper, lower


def test_two_moons_loads_in_eval_mode_on_cpu_with_its_schedule():
    model, schedule = ddim_lesson.pretrained("two-moons")
    assert isinstance(model, MLPDenoiser) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    meta = pretrained_meta("two-moons")
    assert meta["dataset"] == "two-moons" and meta["schedule"]["kind"] == "linear"
    assert torch.equal(schedule.betas, NoiseSchedule.from_dict(meta["schedule"]).betas)
    assert torch.equal(schedule.betas, NoiseSchedule.linear(1000).betas)
    assert model(torch.zeros(3, 2), torch.tensor([0, 500, 999])).shape == (3, 2)


def test_two_moons_samples_lie_on_the_moons():
    """Fresh data: 95% of points lie within 0.1 of the curves (the noise has σ = 0.05); a standard
    Gaussian: 14%. The shipped model at DDIM 20 steps must come close to the data, on both moons."""
    model, schedule = pretrained("two-moons")
    x = sample_in_batches(model, schedule, 1000, 1000, steps=20, seed=0).double()
    upper, lower = _moon_curves()
    d_up, d_low = torch.cdist(x, upper).min(1).values, torch.cdist(x, lower).min(1).values
    near = (torch.minimum(d_up, d_low) < 0.1).double().mean()
    assert near > 0.85, float(near)
    assert 0.4 < float((d_up < d_low).double().mean()) < 0.6  # both moons, about equally


@pytest.mark.skipif(not HAVE_FASHION, reason=f"the fashion-mnist weights are not in {WEIGHTS_DIR} yet")
def test_fashion_mnist_loads():
    model, schedule = pretrained("fashion-mnist")
    assert isinstance(model, UNet) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert (model.config.in_channels, model.config.image_size) == (1, 28)
    assert schedule.T == 1000 and pretrained_meta("fashion-mnist")["dataset"] == "fashion-mnist"
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28), torch.tensor([10, 900])).shape == (2, 1, 28, 28)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'cifar'; allowed: fashion-mnist, two-moons"):
        pretrained("cifar")
    assert set(PRETRAINED) == {"fashion-mnist", "two-moons", "fashion-mnist-cond"}
