"""The ideal denoiser (core/ideal_denoiser.py): brute force, the two-point closed form, chunking, planted bugs,
samplers, bad inputs."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import GaussianEps

from ddim_lesson import IdealDenoiser, NoiseSchedule, cfg, ddim_invert, ddim_sample, ddpm_sample, ode_sample

SCHEDULE = NoiseSchedule.linear()


def brute_force(data: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule = SCHEDULE,
                sqrt_abar: bool = True, temperature: float = 2.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0_pred, eps, weights (B, N)) from the formula on all N at once, in float64.

    ``sqrt_abar=False`` and ``temperature=1`` are planted bugs: the means √ᾱ x_i written as x_i, and
    the Gaussian's 2(1 − ᾱ) written as (1 − ᾱ).
    """
    B = x_t.shape[0]
    x, d = x_t.reshape(B, -1).double(), data.reshape(data.shape[0], -1).double()  # (B, D), (N, D)
    a = schedule.alphas_cumprod[t][:, None]  # (B, 1)
    centre = a.sqrt()[:, :, None] * d[None] if sqrt_abar else d[None].expand(B, -1, -1)  # (B, N, D)
    sq = (x[:, None] - centre).pow(2).sum(-1)  # (B, N)
    w = torch.softmax(-sq / (temperature * (1 - a)), dim=1)  # (B, N)
    x0 = w @ d  # (B, D)
    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
    return x0.reshape(x_t.shape), eps.reshape(x_t.shape), w


def _batch(seed: int, n: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=g, dtype=torch.float64)
    t = torch.cat([torch.tensor([0, 999]), torch.randint(0, 1000, (n - 2,), generator=g)])
    return x, t


def test_matches_brute_force_on_image_shaped_data() -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.rand((37, 1, 3, 4), generator=g, dtype=torch.float64) * 2 - 1  # (N, C, H, W)
    model = IdealDenoiser(data, SCHEDULE, chunk=5)
    x, t = _batch(1, 12, (1, 3, 4))
    x0_ref, eps_ref, w = brute_force(data, x, t)
    post = model.posterior(x, t)
    torch.testing.assert_close(post.x0_pred, x0_ref, atol=1e-12, rtol=0)
    assert model.last is None
    torch.testing.assert_close(model(x, t), eps_ref, atol=1e-10, rtol=0)
    assert torch.equal(model.last.eps, model(x, t)) and torch.equal(model.last.nearest, w.argmax(1))
    torch.testing.assert_close(post.w_max, w.max(1).values, atol=1e-12, rtol=0)
    assert torch.equal(post.nearest, w.argmax(1))
    torch.testing.assert_close(post.n_eff, 1 / w.pow(2).sum(1), atol=1e-9, rtol=1e-12)
    # the weights span the range the test is meant to cover: one-hot at small t, spread at large t
    assert float(w.max(1).values.max()) > 0.999 and float(w.max(1).values.min()) < 0.2


def _two_point_error(denoise) -> float:
    """max |E[x0 | x_t] − tanh(√ᾱ x_t / (1 − ᾱ))| for x0 = ±1 with probability 1/2 each (1-D)."""
    xs = torch.linspace(-3, 3, 25, dtype=torch.float64)
    ts = torch.tensor([0, 5, 50, 200, 500, 800, 999])
    x = xs.repeat(len(ts))[:, None]  # (B, 1)
    t = ts.repeat_interleave(len(xs))  # (B,)
    a = SCHEDULE.alphas_cumprod[t][:, None]
    want = torch.tanh(a.sqrt() * x / (1 - a))  # the posterior mean of two point masses, from Bayes
    return float((denoise(x, t) - want).abs().max())


def test_two_point_closed_form_and_planted_bugs() -> None:
    data = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    model = IdealDenoiser(data, SCHEDULE, chunk=1)
    assert _two_point_error(model.x0_pred) < 1e-12
    assert _two_point_error(lambda x, t: brute_force(data, x, t)[0]) < 1e-12  # the reference agrees too
    missing_sqrt = _two_point_error(lambda x, t: brute_force(data, x, t, sqrt_abar=False)[0])
    temperature = _two_point_error(lambda x, t: brute_force(data, x, t, temperature=1.0)[0])
    assert missing_sqrt > 1e-2, f"a missing √ᾱ went unnoticed ({missing_sqrt:.2e})"
    assert temperature > 1e-2, f"a temperature off by 2 went unnoticed ({temperature:.2e})"
    # and eps from x0_pred by ε = (x_t − √ᾱ x̂0)/√(1 − ᾱ)
    x, t = torch.tensor([[0.3], [-1.2]], dtype=torch.float64), torch.tensor([100, 600])
    a = SCHEDULE.alphas_cumprod[t][:, None]
    eps_want = (x - a.sqrt() * torch.tanh(a.sqrt() * x / (1 - a))) / (1 - a).sqrt()
    torch.testing.assert_close(model(x, t), eps_want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunk_size_does_not_change_the_answer(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    data = torch.randn((53, 6), generator=g, dtype=dtype)
    x, t = _batch(3, 9, (6,))
    x = x.to(dtype)
    outs = [IdealDenoiser(data, SCHEDULE, chunk=c).posterior(x, t) for c in (1, 4, 53, 1000)]
    tol = 1e-12 if dtype == torch.float64 else 2e-4
    for o in outs[1:]:
        torch.testing.assert_close(o.eps, outs[0].eps, atol=tol, rtol=0)
        assert torch.equal(o.nearest, outs[0].nearest)
    assert outs[0].eps.dtype == dtype
    # float32 against float64: at t = 0, ε = (x_t − √ᾱ x̂0)/0.01 carries x̂0's rounding 100-fold
    torch.testing.assert_close(outs[0].eps.double(), brute_force(data, x, t)[1], atol=tol * 10,
                               rtol=0 if dtype == torch.float64 else 2e-4)


def test_many_gaussian_points_give_the_gaussian_denoiser_at_large_t() -> None:
    """An independent reference: 20,000 draws of N(mu, s²) act as the Gaussian where many points share the weight."""
    g = torch.Generator().manual_seed(4)
    mu, s = torch.tensor([0.5, -0.3], dtype=torch.float64), torch.tensor([0.8, 0.4], dtype=torch.float64)
    data = mu + s * torch.randn((20000, 2), generator=g, dtype=torch.float64)
    model, gauss = IdealDenoiser(data, SCHEDULE), GaussianEps(SCHEDULE, mu, s)
    x = torch.randn((64, 2), generator=g, dtype=torch.float64)
    t = torch.full((64,), 900)
    post = model.posterior(x, t)
    assert float(post.n_eff.min()) > 1000, "at t = 900 thousands of points share the weight"
    err = float((post.eps - gauss(x, t)).abs().max())
    assert err < 0.02, err
    # near t = 0 the same model is nothing like the Gaussian one: a handful of the 20,000 points share the weight
    post0 = model.posterior(x * 0.1, torch.full((64,), 0))
    assert float(post0.n_eff.max()) < 50


def test_ddim_lands_on_training_points_and_every_sampler_composes() -> None:
    g = torch.Generator().manual_seed(5)
    data = 2.0 * torch.eye(4, dtype=torch.float64)[:3] - 0.5  # 3 points in 4-D, 2√2 apart
    model = IdealDenoiser(data, SCHEDULE)
    x_T = torch.randn((40, 4), generator=g, dtype=torch.float64)
    for x0 in (ddim_sample(model, SCHEDULE, x_T, steps=50, clip_x0=False),
               ode_sample(model, SCHEDULE, x_T, steps=20, solver="dpmpp_2m"),
               ode_sample(model, SCHEDULE, x_T, steps=21, solver="heun"),
               ddim_sample(model, SCHEDULE, x_T, steps=50, eta=1.0, clip_x0=False, generator=g),
               ddpm_sample(model, SCHEDULE, x_T, clip_x0=False, generator=g)):
        d = torch.cdist(x0, data).min(1).values
        assert float(d.max()) < 1e-6, float(d.max())
    x0 = ddim_sample(model, SCHEDULE, x_T, steps=50, clip_x0=False)
    assert len({int(i) for i in torch.cdist(x0, data).argmin(1)}) == 3, "all three points are reached"
    # inversion of a training point, then sampling, returns that point
    back = ddim_sample(model, SCHEDULE, ddim_invert(model, SCHEDULE, data, steps=50), steps=50, clip_x0=False)
    torch.testing.assert_close(back, data, atol=1e-6, rtol=0)
    # float32 samples from float64 data come back in float32
    assert ddim_sample(model, SCHEDULE, x_T.float(), steps=5).dtype == torch.float32


def test_labels_make_it_class_conditional_and_cfg_wraps_it() -> None:
    g = torch.Generator().manual_seed(7)
    data = torch.randn((30, 5), generator=g, dtype=torch.float64)
    labels = torch.arange(30) % 3  # classes 0, 1, 2; label 3 is "no label"
    cond = IdealDenoiser(data, SCHEDULE, labels=labels, chunk=4)  # chunks that hold no point of a class, too
    plain = IdealDenoiser(data, SCHEDULE)
    x, t = _batch(8, 6, (5,))
    y = torch.tensor([0, 1, 2, 3, 1, 3])
    got = cond(x, t, y)
    for b in range(6):
        ref = plain if y[b] == 3 else IdealDenoiser(data[labels == y[b]], SCHEDULE)  # the class's own points
        torch.testing.assert_close(got[b:b + 1], ref(x[b:b + 1], t[b:b + 1]), atol=1e-10, rtol=0)
    assert all(int(labels[i]) == int(c) for i, c in zip(cond.last.nearest[[0, 1, 2, 4]], y[[0, 1, 2, 4]]))
    torch.testing.assert_close(cond(x, t), plain(x, t), atol=1e-12, rtol=0)  # no y: every point
    # cfg: scale 1 is the conditional model, 0 the unconditional one; DDIM with it lands on the class's points
    torch.testing.assert_close(cfg(cond, y[:4], 1.0)(x[:4], t[:4]), cond(x[:4], t[:4], y[:4]), atol=1e-12, rtol=0)
    torch.testing.assert_close(cfg(cond, 2, 0.0)(x, t), plain(x, t), atol=1e-12, rtol=0)
    x0 = ddim_sample(cfg(cond, 2, 1.0), SCHEDULE, torch.randn((20, 5), generator=g, dtype=torch.float64), steps=100,
                     clip_x0=False)
    nn = torch.cdist(x0, data).min(1)
    assert float(nn.values.max()) < 1e-6 and bool((labels[nn.indices] == 2).all())
    with pytest.raises(ValueError, match=r"every label y must be an integer in \[0, 3\] \(3: no label\), got 4"):
        cond(x, t, torch.full((6,), 4))
    with pytest.raises(ValueError, match="no training point has label 1"):
        IdealDenoiser(data, SCHEDULE, labels=labels * 2, num_classes=5)(x, t, torch.ones(6, dtype=torch.long))
    with pytest.raises(ValueError, match="built with labels"):
        plain(x, t, y)
    with pytest.raises(ValueError, match="labels must be an int64"):
        IdealDenoiser(data, SCHEDULE, labels=labels[:5])


def test_sixty_thousand_images_a_batch_of_16_in_seconds() -> None:
    g = torch.Generator().manual_seed(6)
    data = torch.rand((60000, 1, 28, 28), generator=g) * 2 - 1  # 188 MB in float32
    model = IdealDenoiser(data, SCHEDULE)
    x = torch.randn((16, 1, 28, 28), generator=g)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread, as the course runs on a busy 2-core machine (0.2 s a call there)
    try:
        seconds = []
        for _ in range(3):
            t0 = time.perf_counter()
            eps = model(x, torch.full((16,), 500))
            seconds.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert min(seconds) < 5.0, f"one call took {min(seconds):.2f} s at best"


@pytest.mark.parametrize("make, match", [
    (lambda m, x, t: m(x[:, :2], t), "x_t must have shape"),
    (lambda m, x, t: m(x, t.int()), "t must be an int64"),
    (lambda m, x, t: m(x, t[:2]), "t must be an int64 tensor of shape"),
    (lambda m, x, t: m(x, t + 1000), r"every t must be in \[0, 999\]"),
    (lambda m, x, t: m(x, t - 1000), r"every t must be in \[0, 999\]"),
    (lambda m, x, t: IdealDenoiser(torch.ones(3, 2), SCHEDULE, chunk=0), "chunk"),
    (lambda m, x, t: IdealDenoiser(torch.tensor([[1.0, float("nan")]]), SCHEDULE), "finite"),
    (lambda m, x, t: IdealDenoiser(torch.ones(3, 2, dtype=torch.long), SCHEDULE), "floating"),
    (lambda m, x, t: IdealDenoiser(torch.ones(0, 2), SCHEDULE), "N >= 1"),
])
def test_bad_inputs_raise_naming_the_value(make, match) -> None:
    model = IdealDenoiser(torch.randn(5, 3), SCHEDULE)
    x, t = torch.randn(4, 3), torch.tensor([0, 10, 500, 999])
    with pytest.raises(ValueError, match=match):
        make(model, x, t)
