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
def test_sample_in_batches_seeds_batch_b_with_batch_seed(eta):
    """The one rule, as ``ddim-lesson sample`` uses it: batch b starts from x_T drawn by a CPU generator
    seeded batch_seed(seed, b) and draws its η-noise from one seeded batch_seed(seed, b) + NOISE_OFFSET
    (so n=5 in batches of 2 is three direct ddim_sample calls)."""
    model, schedule = _tiny_unet(), NoiseSchedule.linear(T=50)
    got = sample_in_batches(model, schedule, 5, 2, steps=3, eta=eta, spacing="trailing", seed=4)
    want = []
    for k, b in enumerate((2, 2, 1)):
        s = 4 * 100_003 + k
        x_T = torch.randn((b, 1, 28, 28), generator=torch.Generator().manual_seed(s))
        g = torch.Generator().manual_seed(s + 1_000_000_007)
        want.append(ddim_sample(model, schedule, x_T, steps=3, eta=eta, spacing="trailing", generator=g))
    assert torch.equal(got, torch.cat(want))


def test_one_seeding_rule_for_the_cli_the_tables_and_the_explorer():
    """A batch with seed s is the same whoever draws it: ``sample`` (batch 0 of seed 0 has s = 0), a table
    cell's batch (sample_batch) and the sampler explorer (its seed), at η > 0 where the noise rule matters."""
    from ddim_lesson.course.widgets import sample_run
    from ddim_lesson.evaluate.generate import noise_generator, sample_batch, seeded_latents

    model, schedule = _tiny_unet(), NoiseSchedule.linear(T=50)
    cli = sample_in_batches(model, schedule, 3, 3, steps=4, eta=0.6, spacing="trailing", seed=0)
    table, _ = sample_batch(model, schedule, 0.6, 4, (3, 1, 28, 28), 0, "trailing", "cpu")
    widget = sample_run(model, schedule, 4, 0.6, 0, spacing="trailing", n=3, shape=(1, 28, 28)).samples
    direct = ddim_sample(model, schedule, seeded_latents(0, 3, (1, 28, 28)), steps=4, eta=0.6, spacing="trailing",
                         generator=noise_generator(0))
    assert torch.equal(cli, direct) and torch.equal(table, direct) and torch.equal(widget, direct)
    other = sample_run(model, schedule, 4, 0.6, 1, spacing="trailing", n=3, shape=(1, 28, 28)).samples
    assert not torch.allclose(other, direct), "a different seed must give different samples"
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        seeded_latents(0, 0, (2,))


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



def _spy_draws(monkeypatch):
    """Replace generate.draw by a recorder of (x_T's device, the generator's device and state); returns the list."""
    from ddim_lesson.evaluate import generate

    seen = []

    def fake_draw(model, schedule, x_T, *, generator=None, **kw):
        seen.append((x_T.device.type, generator.device.type, generator.get_state()))
        return torch.zeros(x_T.shape)  # (B, ...) on the CPU, as the caller moves it there anyway

    monkeypatch.setattr(generate, "draw", fake_draw)
    return seen


def test_the_noise_generator_is_a_cpu_one_whatever_the_device(monkeypatch):
    """The rule, checked without a GPU: sample_batch and sample_in_batches both hand the sampler a CPU generator in
    the state of noise_generator(s), while x_T goes to the model's device. "meta" stands in for a GPU: a device that
    is not the CPU on every machine (the old sample_batch built torch.Generator(device=device) and fails here)."""
    from ddim_lesson.evaluate.generate import noise_generator, sample_batch

    seen = _spy_draws(monkeypatch)
    sample_batch(None, NoiseSchedule.linear(T=50), 0.7, 3, (2, 1, 28, 28), 5, "trailing", "meta")
    model = _tiny_unet().to("meta")
    sample_in_batches(model, NoiseSchedule.linear(T=50), 3, 2, steps=3, eta=0.7, seed=4)
    assert [(x, g) for x, g, _ in seen] == [("meta", "cpu")] * 3
    for (_, _, state), s in zip(seen, (5, batch_seed(4, 0), batch_seed(4, 1))):
        assert torch.equal(state, noise_generator(s).get_state())
    assert not torch.equal(seen[1][2], seen[2][2]), "batches must draw different noise"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_seeding_rule_on_cuda_at_eta_above_zero():
    """On a GPU, a table cell's batch (sample_batch) and ``ddim-lesson sample`` (sample_in_batches) give the same
    samples for the same seed at η = 0.6, and both match the CPU's up to float rounding (TF32 convolutions). A CUDA
    generator seeded alike (the old sample_batch) lands far away: the planted bug is caught by the same check."""
    from ddim_lesson.core.seeds import NOISE_OFFSET
    from ddim_lesson.evaluate.generate import draw, sample_batch, seeded_latents

    cpu_model, schedule = _tiny_unet(), NoiseSchedule.linear(T=50)
    model = _tiny_unet().cuda()
    table, _ = sample_batch(model, schedule, 0.6, 4, (3, 1, 28, 28), 0, "trailing", "cuda")
    cli = sample_in_batches(model, schedule, 3, 3, steps=4, eta=0.6, spacing="trailing", seed=0)
    cpu = sample_in_batches(cpu_model, schedule, 3, 3, steps=4, eta=0.6, spacing="trailing", seed=0)
    assert torch.equal(table.cpu(), cli)
    assert (cli - cpu).abs().max() < 0.05, float((cli - cpu).abs().max())
    planted = draw(model, schedule, seeded_latents(0, 3, (1, 28, 28)).cuda(), steps=4, eta=0.6, spacing="trailing",
                   generator=torch.Generator(device="cuda").manual_seed(NOISE_OFFSET)).cpu()
    assert (planted - cpu).abs().max() > 0.2, "a CUDA generator must draw other noise than the CPU rule"


def test_eta_is_a_float_and_sigma_hat_a_flag_of_its_own() -> None:
    """η no longer carries σ̂ as a string: a table row becomes (eta, sigma_hat) in one place (row_sampler), and
    the string given as η is refused by η's own check instead of quietly switching the sampler."""
    from ddim_lesson import ddpm_sample
    from ddim_lesson.evaluate.generate import SIGMA_HAT, draw, row_sampler, seeded_latents
    from ddim_lesson.nets.models import MLPConfig, MLPDenoiser

    assert row_sampler(SIGMA_HAT) == (0.0, True) and row_sampler(0.5) == (0.5, False) and row_sampler(1) == (1.0, False)
    model, schedule = MLPDenoiser(MLPConfig(hidden=16, depth=1)).eval(), NoiseSchedule.linear(T=40)
    x_T = seeded_latents(3, 5, (2,))
    got = draw(model, schedule, x_T, steps=4, sigma_hat=True, spacing="trailing", clip_x0=False,
               generator=torch.Generator().manual_seed(9))
    want = ddpm_sample(model, schedule, x_T, steps=4, variance="beta", spacing="trailing", clip_x0=False,
                       generator=torch.Generator().manual_seed(9))
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match=r"eta must be a finite number in \[0.0, 1.0\], got 'sigma_hat'"):
        draw(model, schedule, x_T, steps=4, eta=SIGMA_HAT, spacing="trailing")  # type: ignore[arg-type]
