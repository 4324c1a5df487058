"""generate: the one seeded, batched sampler. Each seeding rule is checked against ddim_sample /
ddpm_sample called directly, so a change of seeds, offsets or batching shows up as a difference."""

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, pretrained
from ddim_lesson.evaluate.generate import batch_seed, image_shape, sample_cell, sample_in_batches, sample_shape
from ddim_lesson.nets.models import UNet, UNetConfig

TINY = dict(base_channels=8, channel_mults=(1, 2), groups=4)


def _tiny_unet():
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).eval()
    for p in model.parameters():  # the zero-initialised head would predict eps = 0 everywhere
        p.data.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_sample_in_batches_is_one_generator_drawing_each_batch_then_its_noise(eta):
    """The CLI's rule: one CPU generator seeded with ``seed`` draws batch 1's x_T, then batch 1's
    η-noise, then batch 2's x_T, ... (so n=5 in batches of 2 is three direct ddim_sample calls)."""
    model, schedule = _tiny_unet(), NoiseSchedule.linear(T=50)
    got = sample_in_batches(model, schedule, 5, 2, steps=3, eta=eta, spacing="trailing", seed=4)
    g = torch.Generator().manual_seed(4)
    want = []
    for b in (2, 2, 1):
        x_T = torch.randn((b, 1, 28, 28), generator=g)
        want.append(ddim_sample(model, schedule, x_T, steps=3, eta=eta, spacing="trailing", generator=g))
    assert torch.equal(got, torch.cat(want))


def test_sample_cell_batches_start_from_batch_seed():
    """Table 1's rule: batch b's x_T is seeded by seed·100003 + b, whatever the cell."""
    model, schedule = _tiny_unet(), NoiseSchedule.linear(T=50)
    assert batch_seed(3, 2) == 3 * 100_003 + 2
    f, _ = sample_cell(model, schedule, 0.0, 2, 3, 2, 3, "trailing")
    from ddim_lesson.evaluate.metrics import features

    x = [ddim_sample(model, schedule, torch.randn((b, 1, 28, 28), generator=torch.Generator().manual_seed(
        batch_seed(3, k))), steps=2, spacing="trailing") for k, b in enumerate((2, 1))]
    torch.testing.assert_close(f, features(torch.cat(x)), atol=1e-4, rtol=0)  # channels_last: rounding only


def test_sample_shape_of_the_shipped_models_and_refusals():
    assert sample_shape(pretrained("two-moons")[0]) == (2,)
    assert sample_shape(_tiny_unet()) == (1, 28, 28) == image_shape(_tiny_unet())
    with pytest.raises(ValueError, match="Table 1 needs an image model"):
        image_shape(pretrained("two-moons")[0])
    with pytest.raises(ValueError, match="got Linear"):
        sample_shape(torch.nn.Linear(2, 2))
