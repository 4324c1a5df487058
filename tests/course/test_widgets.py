"""The explorers of ddim_lesson.course.widgets (course/widgets/sampler.py, course/widgets/interpolation.py),
driven by setting .value as a browser would."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ddim_lesson import NoiseSchedule, ddim_sample, lerp, slerp
from ddim_lesson.course.widgets import (
    RunCache,
    interpolation_explorer,
    interpolation_run,
    rms_norm,
    sample_grid_title,
    sample_run,
    sampler_explorer,
    seeded_latents,
    trajectory_indices,
)

SHAPE = (1, 28, 28)


class GaussianDenoiser(torch.nn.Module):
    """The exact ε-predictor for data x0 ~ N(m, s² I), counting its calls.

    x_t = √ᾱ x0 + √(1-ᾱ) ε, so E[ε | x_t] = √(1-ᾱ)(x_t - √ᾱ m) / (ᾱ s² + 1 - ᾱ). Its output
    depends on t, so DDIM with different steps or eta gives different (valid) samples.
    """

    def __init__(self, schedule: NoiseSchedule, m: float = -0.2, s: float = 0.5) -> None:
        super().__init__()
        self.abar = schedule.alphas_cumprod.float()
        self.m, self.s, self.calls = m, s, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        a = self.abar[t].view(-1, *([1] * (x.ndim - 1)))  # (B, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)


@pytest.fixture
def sched() -> NoiseSchedule:
    return NoiseSchedule.linear(T=1000)


@pytest.fixture
def model(sched: NoiseSchedule) -> GaussianDenoiser:
    return GaussianDenoiser(sched)


def pixels(png: bytes) -> torch.Tensor:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return torch.from_numpy(np.array(img.convert("L"))).float()


# -- the pure functions ---------------------------------------------------------------------
def test_sample_run_matches_ddim_sample(model, sched):
    run = sample_run(model, sched, steps=7, eta=0.0, seed=3, n=4, shape=SHAPE)
    assert run.model_calls == model.calls == 7 and run.seconds > 0  # counted, and what the model itself saw
    ref = ddim_sample(model, sched, seeded_latents(3, 4, SHAPE), steps=7)
    torch.testing.assert_close(run.samples, ref)
    assert run.traj_t[0] == 999  # the default (trailing) spacing starts at T-1
    assert run.x0_traj.shape == (7, *SHAPE)
    torch.testing.assert_close(run.x0_traj[-1], ref[0])  # the last x0 prediction is the sample


def test_grid_title_says_each_sample_has_its_own_x_T(model, sched):
    run = sample_run(model, sched, steps=2, eta=0.0, seed=5, n=3, shape=SHAPE)
    x_T = seeded_latents(5, 3, SHAPE)  # what sample_run starts from: one seed, three different draws
    assert (x_T[0] - x_T[1]).abs().max() > 0.5 and (x_T[1] - x_T[2]).abs().max() > 0.5
    assert sample_grid_title(run) == "3 samples from 3 different x_T, all drawn from seed 5"


def test_sample_run_eta_is_reproducible_and_random(model, sched):
    a = sample_run(model, sched, steps=5, eta=1.0, seed=0, n=2, shape=SHAPE)
    b = sample_run(model, sched, steps=5, eta=1.0, seed=0, n=2, shape=SHAPE)
    c = sample_run(model, sched, steps=5, eta=0.0, seed=0, n=2, shape=SHAPE)
    torch.testing.assert_close(a.samples, b.samples)
    assert (a.samples - c.samples).abs().max() > 1e-2


def test_trajectory_indices():
    assert trajectory_indices(5, 8) == [0, 1, 2, 3, 4]
    idx = trajectory_indices(100, 8)
    assert idx[0] == 0 and idx[-1] == 99 and len(idx) == 8 and idx == sorted(set(idx))
    with pytest.raises(ValueError, match="k must be"):
        trajectory_indices(10, 1)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=1001), dict(eta=-0.1), dict(eta=float("nan")),
                                 dict(spacing="uniform"), dict(seed=-1)])
def test_sample_run_rejects_bad_values(model, sched, bad):
    kw = dict(steps=5, eta=0.0, seed=0, spacing="trailing") | bad
    with pytest.raises(ValueError, match=list(bad)[0]):
        sample_run(model, sched, n=1, shape=SHAPE, **kw)


def test_rms_norm_of_gaussian_and_lerp_midpoint():
    z = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert abs(rms_norm(z).mean().item() - 1.0) < 0.02
    # independent Gaussians: ‖(z0+z1)/2‖ ≈ √(1/2) ‖z‖; slerp keeps ≈ 1
    assert abs(rms_norm(lerp(z[:32], z[32:], 0.5)).mean().item() - math.sqrt(0.5)) < 0.02
    assert abs(rms_norm(slerp(z[:32], z[32:], 0.5)).mean().item() - 1.0) < 0.03


def test_interpolation_run_endpoints_and_norms(model, sched):
    z0, z1 = seeded_latents(0, 1, SHAPE), seeded_latents(1, 1, SHAPE)
    run = interpolation_run(model, sched, z0, z1, alpha=0.0, steps=4)
    ref = ddim_sample(model, sched, torch.cat([z0, z1]), steps=4)
    for k in (0, 1, 2):  # at α = 0 slerp and lerp both return z0
        torch.testing.assert_close(run.images[k], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(run.images[3], ref[1], atol=1e-5, rtol=1e-5)
    mid = interpolation_run(model, sched, z0, z1, alpha=0.5, steps=4)
    assert mid.norms["lerp"] < 0.8 * mid.norms["slerp"]
    with pytest.raises(ValueError, match="alpha"):
        interpolation_run(model, sched, z0, z1, alpha=1.5, steps=4)
    with pytest.raises(ValueError, match="z0"):
        interpolation_run(model, sched, torch.zeros(2, 1, 28, 28), z1, alpha=0.5, steps=4)


def test_run_cache_counts_and_evicts():
    cache, computed = RunCache(maxsize=2), []

    def make(k):
        return lambda: (computed.append(k) or k, b"png")

    for k in (1, 2, 1, 3, 2):
        cache.get(k, make(k))
    assert computed == [1, 2, 3, 2]  # 2 was evicted by 3 (1 was used more recently)
    assert (cache.hits, cache.misses) == (1, 4)


# -- the sampler explorer -------------------------------------------------------------------
def make_explorer(model, sched, **kw):
    return sampler_explorer(model, sched, n=4, shape=SHAPE, steps=5, max_steps=50, **kw)


def test_explorer_initial_render(model, sched):
    ex = make_explorer(model, sched)
    assert ex.steps.description == "steps" and ex.eta.description == "eta"
    assert not ex.steps.continuous_update and not ex.eta.continuous_update
    assert model.calls == 5 and ex.cache.misses == 1
    assert "steps = 5" in ex.readout.value and "eta = 0.0" in ex.readout.value
    img = Image.open(io.BytesIO(ex.image.value))
    assert img.width >= 4 * 28 * 3  # 4 samples, drawn 3x larger


def test_steps_slider_changes_image_and_readout(model, sched):
    ex = make_explorer(model, sched)
    before = ex.image.value
    ex.steps.value = 20
    assert ex.image.value != before
    assert model.calls == 5 + 20
    assert "steps = 20" in ex.readout.value and "20 model calls" in ex.readout.value
    assert ex.last.steps == 20


def test_eta_slider_changes_image_and_readout(model, sched):
    ex = make_explorer(model, sched)
    before = pixels(ex.image.value)
    ex.eta.value = 1.0
    after = pixels(ex.image.value)
    assert before.shape == after.shape
    assert (before - after).abs().mean() > 1.0  # a visible change, in grey levels
    assert "eta = 1.0" in ex.readout.value and ex.last.eta == 1.0


def test_seed_and_spacing_change_the_image(model, sched):
    ex = make_explorer(model, sched)
    seen = {ex.image.value}
    ex.seed.value = 7
    seen.add(ex.image.value)
    ex.spacing.value = "leading"
    seen.add(ex.image.value)
    assert len(seen) == 3
    assert "seed = 7" in ex.readout.value and "spacing = leading" in ex.readout.value


def test_cache_is_hit_on_repeated_values(model, sched):
    ex = make_explorer(model, sched)
    first = ex.image.value
    ex.steps.value = 12  # (12, 0.0): new
    ex.eta.value = 0.3  # (12, 0.3): new
    calls = model.calls
    assert calls == 5 + 12 + 12 and ex.cache.misses == 3
    ex.eta.value = 0.0  # (12, 0.0) again
    ex.steps.value = 5  # (5, 0.0) again: the first setting
    assert model.calls == calls and ex.cache.hits == 2
    assert ex.image.value == first
    assert "from cache" in ex.readout.value
    ex.eta.value = 0.1 + 0.2  # (5, 0.30000000000000004): new, 5 calls
    ex.steps.value = 12  # (12, 0.3): the same setting as 0.1 + 0.2, from the cache
    assert model.calls == calls + 5
    assert ex.cache.hits == 3 and ex.cache.misses == 4


def test_invalid_values_are_impossible_or_rejected(model, sched):
    ex = make_explorer(model, sched)
    calls = model.calls
    for slider, bad, clipped in ((ex.steps, 0, 1), (ex.steps, 10_000, 50), (ex.eta, -1.0, 0.0), (ex.eta, 5.0, 1.0)):
        slider.value = bad  # ipywidgets clips a value outside [min, max] to the range
        assert slider.value == clipped
    assert model.calls == calls + 1 + 50 + 50  # (1, 0.0), (50, 0.0), (50, 0.0) cached, (50, 1.0)
    with pytest.raises(Exception, match="Invalid selection"):
        ex.spacing.value = "uniform"  # not among the options
    with pytest.raises(ValueError, match="steps"):
        sampler_explorer(model, sched, shape=SHAPE, max_steps=2000)
    with pytest.raises(ValueError, match="eta"):
        sampler_explorer(model, sched, shape=SHAPE, eta=1.5)
    with pytest.raises(ValueError, match="spacing"):
        sampler_explorer(model, sched, shape=SHAPE, spacing="uniform")
    with pytest.raises(ValueError, match="sample shape"):
        sampler_explorer(lambda x, t: x, sched)


# -- the interpolation explorer -------------------------------------------------------------
def test_interpolation_explorer(model, sched):
    ex = interpolation_explorer(model, sched, shape=SHAPE, steps=4, alpha=0.5)
    assert ex.alpha.description == "alpha" and not ex.alpha.continuous_update
    assert model.calls == 4
    assert "alpha = 0.50" in ex.readout.value
    assert ex.last.norms["lerp"] < 0.8 * ex.last.norms["slerp"]
    mid = ex.image.value
    ex.alpha.value = 0.0
    assert ex.image.value != mid and "alpha = 0.00" in ex.readout.value
    assert abs(ex.last.norms["lerp"] - ex.last.norms["z0"]) < 1e-6
    ex.alpha.value = 0.5
    assert ex.image.value == mid and model.calls == 8 and "from cache" in ex.readout.value


def test_interpolation_explorer_takes_given_latents(model, sched):
    z0 = torch.zeros(1, 28, 28)
    z1 = torch.ones(1, 1, 28, 28)
    ex = interpolation_explorer(model, sched, z0=z0, z1=z1, steps=3, alpha=1.0)
    assert ex.last.norms["z0"] == 0.0 and abs(ex.last.norms["z1"] - 1.0) < 1e-6


def test_the_widgets_facade_exports_every_explorer_and_its_public_names():
    """The package's __init__ is its public face: every public name defined in an explorer's module is
    exported there (kit, the shared wiring, is imported by module); a module left out fails here."""
    import importlib
    import inspect
    import pkgutil

    import ddim_lesson.course.widgets as widgets

    modules = [m.name for m in pkgutil.iter_modules(widgets.__path__) if m.name != "kit"]
    assert {"sampler", "interpolation", "forward", "solver", "guidance", "distill"} <= set(modules)
    for name in modules:
        mod = importlib.import_module(f"{widgets.__name__}.{name}")
        defined = {n for n, v in vars(mod).items() if inspect.isfunction(v) or inspect.isclass(v)
                   if v.__module__ == mod.__name__}
        public = {n for n in defined if not n.startswith("_")}
        missing = public - set(widgets.__all__)
        assert not missing, f"widgets/{name}.py: {sorted(missing)} not exported by ddim_lesson.course.widgets"
    assert all(hasattr(widgets, n) for n in widgets.__all__)
    explorers = [n for n in widgets.__all__ if n.endswith("_explorer")]
    assert len(explorers) == 7, explorers  # forward, sampler, interpolation, solver, guidance, sdedit, distill
