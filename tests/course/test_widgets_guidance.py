"""The guidance and SDEdit explorers (without a browser), the fixed-point exercise's checker, and the
measurement helpers of notebooks 07-08."""

from __future__ import annotations

import pytest
import torch

from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.course.exercises import reference_invert_step
from ddim_lesson.course.exercises.fixed_point import check_fixed_point_step, reference_fixed_point_step
from ddim_lesson.course.widgets.guidance import guidance_explorer, guided_run, sdedit_explorer
from ddim_lesson.evaluate.guidance_eval import blocky, class_samples, diversity, rmse
from ddim_lesson.nets.models import UNet, UNetConfig


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_classes=10)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net, NoiseSchedule.linear(1000)


def test_guidance_explorer_resamples_on_a_new_scale_or_class_and_caches(tiny):
    ex = guidance_explorer(*tiny, label=3, scale=1.0, steps=3, n=4)
    first, text = ex.image.value, ex.readout.value
    assert "class = Dress, scale = 1.0 (w = 0.0)" in text and "3 guided calls" in text
    ex.scale.value = 3.0
    assert ex.image.value != first and "scale = 3.0 (w = 2.0)" in ex.readout.value
    ex.label.value = 7
    assert "class = Sneaker" in ex.readout.value and ex.last.label == 7
    ex.label.value, ex.scale.value = 3, 1.0
    assert ex.image.value == first and "cached" in ex.readout.value and ex.cache.misses == 3


def test_guided_run_counts_the_model_calls(tiny):
    net, sched = tiny
    batches = []  # the batch size of every forward pass of the conditional UNet
    hook = net.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        run = guided_run(net, sched, label=3, scale=2.0, steps=4, n=2)
    finally:
        hook.remove()
    assert run.model_calls == len(batches) == 4 and batches == [4] * 4  # one pass on 2n per guided call


def test_guidance_explorer_refuses_an_unconditional_model_and_bad_settings(tiny):
    with pytest.raises(ValueError, match="this model is not class-conditional"):
        guidance_explorer(UNet(UNetConfig(base_channels=8, channel_mults=(1, 2))), tiny[1])
    with pytest.raises(ValueError, match=r"label must be an integer in \[0, 9\]"):
        guidance_explorer(*tiny, label=10)
    with pytest.raises(ValueError, match=r"scale must be a finite number in \[0.0, 7.0\]"):
        guidance_explorer(*tiny, scale=8.0)


def test_sdedit_explorer_moves_with_the_strength(tiny):
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    ex = sdedit_explorer(*tiny, x, torch.tensor([0, 1, 2]), strength=0.1, steps_full=10)
    first = ex.image.value
    assert ex.last.steps == 1 and "strength = 0.10 (t0 = 100, 1 model calls)" in ex.readout.value
    ex.strength.value = 0.5
    assert ex.image.value != first and ex.last.steps == 5 and "t0 = 500" in ex.readout.value


def test_fixed_point_checker_accepts_the_reference_and_catches_mistakes(capsys):
    assert check_fixed_point_step(reference_fixed_point_step)

    def stale(model, x, t, abar_from, abar_to, k):  # re-predicts at the start point: no better than plain
        x_to = reference_invert_step(x, model(x, t), abar_from, abar_to)
        for _ in range(k):
            x_to = reference_invert_step(x, model(x, t), abar_from, abar_to)
        return x_to

    def drifting(model, x, t, abar_from, abar_to, k):  # steps from the estimate instead of from x
        x_to = reference_invert_step(x, model(x, t), abar_from, abar_to)
        for _ in range(k):
            x_to = reference_invert_step(x_to, model(x_to, t), abar_from, abar_to)
        return x_to

    def one_call_short(model, x, t, abar_from, abar_to, k):
        x_to = x
        for _ in range(max(k, 1)):
            x_to = reference_invert_step(x, model(x_to, t), abar_from, abar_to)
        return x_to

    with pytest.raises(AssertionError, match="re-predict eps at your latest estimate"):
        check_fixed_point_step(stale)
    with pytest.raises(AssertionError, match="each iteration steps from the same x"):
        check_fixed_point_step(drifting)
    with pytest.raises(AssertionError, match="call the model 1 \\+ k"):
        check_fixed_point_step(one_call_short)

    def todo(*_):
        raise NotImplementedError

    assert check_fixed_point_step(todo) is False and "not attempted yet" in capsys.readouterr().out


def test_diversity_and_distance_closed_forms():
    f = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0], [10.0, 1.0], [10.0, 3.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    # class 0: one pair at distance 5; class 1: distances 1, 3, 2 -> mean 2; average over classes 3.5
    assert diversity(f, y) == pytest.approx(3.5)
    a, b = torch.zeros(2, 1, 2, 2), torch.tensor([0.5, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    torch.testing.assert_close(rmse(a, b), torch.tensor([0.5, 1.0]))


def test_blocky_keeps_block_means_and_class_samples_pair_latents_across_scales(tiny):
    x = torch.rand(2, 1, 28, 28)
    bx = blocky(x)
    torch.testing.assert_close(bx[..., :4, :4].mean((-1, -2)), x[..., :4, :4].mean((-1, -2)))
    assert bx[..., :4, :4].flatten(1).std(1).max() < 1e-6  # constant within a block
    a, ya = class_samples(*tiny, 0.0, 2, 2, seed=0, classes=(1, 4))
    b, _ = class_samples(*tiny, 0.0, 2, 2, seed=0, classes=(1, 4))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert ya.tolist() == [1, 1, 4, 4]
