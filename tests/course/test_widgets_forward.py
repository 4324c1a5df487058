"""The forward-process explorer of notebook 01, driven without a browser."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ddim_lesson import NoiseSchedule
from ddim_lesson.course.plotting import image_grid
from ddim_lesson.course.widgets.forward import forward_explorer, forward_frame


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 1, 6, 6, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def schedules() -> dict[str, NoiseSchedule]:
    return {"lin": NoiseSchedule.linear(50, 1e-3, 0.1), "cos": NoiseSchedule.cosine(50)}


def test_forward_frame_is_the_closed_form(images, schedules):
    s = schedules["lin"]
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    abar = float(np.prod(1 - np.linspace(1e-3, 0.1, 50)[:21]))  # ᾱ_20, from β directly
    out = forward_frame(images, s, 20, noise)
    assert torch.allclose(out, math.sqrt(abar) * images + math.sqrt(1 - abar) * noise, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 49\]"):
        forward_frame(images, s, 50, noise)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))).astype(np.float64)


def test_explorer_callback_follows_the_controls(images, schedules):
    ex = forward_explorer(images, schedules, t=10, seed=3)
    assert ex.t.max == 49 and list(ex.schedule.options) == ["lin", "cos"]
    first_png = ex.image.value
    ex.t.value = 30
    assert ex.image.value != first_png
    s = schedules["lin"]
    abar = s.abar(30)
    assert torch.allclose(ex.last, math.sqrt(abar) * images + math.sqrt(1 - abar) * ex.noise, atol=1e-6)
    assert "t = 30" in ex.readout.value and f"{abar:.4f}" in ex.readout.value
    ex.schedule.value = "cos"
    abar_c = schedules["cos"].abar(30)
    assert torch.allclose(ex.last, math.sqrt(abar_c) * images + math.sqrt(1 - abar_c) * ex.noise, atol=1e-6)
    assert "cos" in ex.readout.value and f"{abar_c:.4f}" in ex.readout.value
    # the PNG: top row the clean images, bottom row x_t, each pixel drawn 3 × 3
    img = _decode(ex.image.value)
    want = np.round(image_grid(torch.cat([images, ex.last]), nrow=3) * 255).repeat(3, 0).repeat(3, 1)
    assert img.shape == want.shape and np.array_equal(img, want)


def test_explorer_extremes(images, schedules):
    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    ex = forward_explorer(images, schedules, t=0)
    assert corr(ex.last, images) > 0.99  # t = 0: almost clean (ᾱ_0 = 0.999)
    ex.schedule.value, ex.t.value = "cos", 49  # ᾱ_49 ≈ 1e-6
    assert corr(ex.last, ex.noise) > 0.99 and abs(corr(ex.last, images)) < 0.3  # t = T-1: the fixed noise


def test_explorer_rejects_bad_arguments(images, schedules):
    with pytest.raises(ValueError, match="same T"):
        forward_explorer(images, {"a": NoiseSchedule.linear(50), "b": NoiseSchedule.linear(60)})
    with pytest.raises(ValueError, match="1 <= B <= 16"):
        forward_explorer(torch.zeros(17, 1, 4, 4), schedules)
    with pytest.raises(ValueError, match=r"\[0, 49\]"):
        forward_explorer(images, schedules, t=50)
    default = forward_explorer(images)
    assert list(default.schedule.options) == ["linear", "cosine"] and default.t.max == 999
