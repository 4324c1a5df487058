"""Models: output shapes, config validation, parameter counts, and the time embedding's closed form."""

import math

import numpy as np
import pytest
import torch

from ddim_lesson.nets.models import (
    MLPConfig,
    MLPDenoiser,
    UNet,
    UNetConfig,
    build_model,
    count_params,
    model_type_of,
    timestep_embedding,
)

TINY = dict(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2)


def _randomise_zero_inits(model: torch.nn.Module) -> None:
    """The UNet zero-initialises its last convs (output 0 at init); give them random weights."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("c, size", [(1, 28), (3, 32)])
def test_unet_output_shape(c, size):
    model = UNet(UNetConfig(in_channels=c, image_size=size, **TINY))
    x = torch.randn(3, c, size, size)
    eps = model(x, torch.tensor([0, 500, 999]))
    assert eps.shape == (3, c, size, size)
    assert eps.dtype == torch.float32


def test_unet_starts_at_zero_output():
    """The head is zero-initialised, so the initial ε prediction is 0 and the first loss is E[ε²] = 1."""
    model = UNet(UNetConfig(**TINY))
    assert torch.count_nonzero(model(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]))) == 0


def test_unet_samples_do_not_mix_and_t_matters():
    """Each sample's output depends only on that sample (GroupNorm and attention are per sample),
    and on its own timestep."""
    model = UNet(UNetConfig(**TINY)).eval()
    _randomise_zero_inits(model)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([10, 200, 600, 990])
    batched = model(x, t)
    for i in range(4):
        torch.testing.assert_close(batched[i : i + 1], model(x[i : i + 1], t[i : i + 1]), atol=1e-5, rtol=1e-4)
    other_t = model(x, torch.tensor([990, 600, 200, 10]))
    assert (other_t - batched).abs().max() > 1e-3


def test_mlp_output_shape():
    model = MLPDenoiser(MLPConfig(hidden=16, depth=2))
    assert model(torch.randn(5, 2), torch.arange(5)).shape == (5, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=2), "in_channels must be 1 or 3, got 2"),
        (dict(image_size=64), "image_size must be 28 or 32, got 64"),
        (dict(channel_mults=(1, 2, 2, 2)), "must be divisible by 8"),  # 28 -> 14 -> 7 -> 3.5
        (dict(base_channels=12, groups=8), "channels 12 must be divisible by groups=8"),
        (dict(base_channels=8, groups=4, attn_heads=3), "divisible by attn_heads=3"),
        (dict(base_channels=0), "base_channels must be an integer >= 1, got 0"),
        (dict(num_res_blocks=0), "num_res_blocks must be an integer >= 1, got 0"),
        (dict(channel_mults=()), "channel_mults must be a non-empty list"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_unet_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(hidden=0), "hidden must be an integer >= 1, got 0"), (dict(depth=-1), "depth must be an integer >= 0"),
     (dict(dim=0), "dim must be an integer >= 1")],
)
def test_mlp_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPConfig(**kwargs)


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model type 'gan'; allowed: unet, mlp"):
        build_model("gan", {})
    with pytest.raises(ValueError, match="bad mlp config"):
        build_model("mlp", {"widht": 3})
    assert model_type_of(build_model("mlp", {"hidden": 8})) == "mlp"


def test_mlp_param_count_matches_closed_form():
    """inp: (dim + t_dim)·h + h; each block: LayerNorm 2h + Linear h² + h; out: h·dim + dim."""
    for dim, h, depth, t_dim in [(2, 16, 2, 8), (2, 128, 3, 32), (3, 7, 0, 4)]:
        model = MLPDenoiser(MLPConfig(dim=dim, hidden=h, depth=depth, t_dim=t_dim))
        expected = (dim + t_dim) * h + h + depth * (2 * h + h * h + h) + h * dim + dim
        assert count_params(model) == expected


def test_unet_param_count_grows_with_config():
    small = count_params(UNet(UNetConfig(**TINY)))
    wider = count_params(UNet(UNetConfig(**{**TINY, "base_channels": 16})))
    deeper = count_params(UNet(UNetConfig(**{**TINY, "num_res_blocks": 2})))
    more_levels = count_params(UNet(UNetConfig(**{**TINY, "channel_mults": (1, 2, 2)})))
    assert small < deeper and small < more_levels
    # conv weights scale with channels²: doubling the width gives about 4× the parameters
    assert 3.0 < wider / small < 4.2


def test_time_embedding_closed_form():
    """emb[:, i] = cos(t·ω_i), emb[:, half + i] = sin(t·ω_i), with ω_i = 10000^(-i/half)."""
    t = torch.tensor([0, 1, 17, 500, 999])
    for dim in (8, 32, 33):
        emb = timestep_embedding(t, dim).numpy()
        half = dim // 2
        omega = 10000.0 ** (-np.arange(half) / half)
        args = t.numpy()[:, None].astype(np.float64) * omega[None]
        expected = np.concatenate([np.cos(args), np.sin(args), np.zeros((len(t), dim % 2))], axis=1)
        assert emb.shape == (5, dim)
        np.testing.assert_allclose(emb, expected, atol=2e-4)  # float32 arguments up to 999 rad
    assert math.isclose(float(timestep_embedding(torch.tensor([0]), 4)[0, 0]), 1.0)
