"""Path length and straightness against closed forms; the path figure's legend names every mark."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddim_lesson import NoiseSchedule, ddim_progressive  # noqa: E402
from ddim_lesson.core.samplers import SamplerStep  # noqa: E402
from ddim_lesson.course.trajectories import path_length, plot_sampler_paths, stack_path, straightness  # noqa: E402


def test_straight_segment_and_right_angle() -> None:
    line = torch.linspace(0, 3, 7)[:, None, None] * torch.tensor([[[0.6, 0.8]]])  # (7, 1, 2): 6 steps along a line
    corner = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])  # (3, 1, 2): right 1, then up 1
    assert path_length(line).item() == pytest.approx(3.0)
    assert straightness(line).item() == pytest.approx(1.0)
    assert path_length(corner).item() == pytest.approx(2.0)
    assert straightness(corner).item() == pytest.approx(math.sqrt(2) / 2)


def test_random_walk_straightness_falls_as_one_over_sqrt_k() -> None:
    # Gaussian steps in 2-D: |x_K - x_0| and each step's length are Rayleigh, so E|x_K - x_0| / (K E|step|) = 1/sqrt(K)
    g = torch.Generator().manual_seed(0)
    for k in (25, 400):
        steps = torch.randn(k, 4000, 2, generator=g, dtype=torch.float64)
        xs = torch.cat([torch.zeros(1, 4000, 2, dtype=torch.float64), steps.cumsum(0)])  # (K+1, P, 2)
        ratio_of_means = float((xs[-1] - xs[0]).norm(dim=-1).mean() / path_length(xs).mean())
        assert ratio_of_means == pytest.approx(1 / math.sqrt(k), rel=0.05)
        assert float(straightness(xs).mean()) == pytest.approx(1 / math.sqrt(k), rel=0.05)


def test_still_point_is_nan_and_bad_shapes_raise() -> None:
    xs = torch.zeros(4, 2, 2)
    xs[:, 1, 0] = torch.arange(4.0)  # point 1 moves, point 0 stays
    s = straightness(xs)
    assert math.isnan(s[0]) and s[1] == pytest.approx(1.0)
    for bad in (torch.zeros(1, 3, 2), torch.zeros(5, 2)):
        with pytest.raises(ValueError, match=r"\(K\+1, P, D\)"):
            straightness(bad)


def test_legend_names_data_start_and_end() -> None:
    g = torch.Generator().manual_seed(0)
    panels = {"a": torch.randn(5, 10, 2, generator=g), "b": torch.randn(3, 10, 2, generator=g)}
    fig = plot_sampler_paths(panels, data=torch.randn(50, 2, generator=g), data_label="a fresh draw", n_paths=4)
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["a fresh draw", "samples (end points)", "start x_T (4 paths)", "end x_0 (4 paths)"]
    no_data = plot_sampler_paths(panels, n_paths=4)
    assert [t.get_text() for t in no_data.axes[0].get_legend().get_texts()][0] == "samples (end points)"
    plt.close("all")


def test_stack_path_puts_x_T_first_then_each_step_in_order(gaussian, linear_schedule: NoiseSchedule) -> None:
    x_T = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # (P, D)
    steps = list(ddim_progressive(gaussian, linear_schedule, x_T, steps=5, clip_x0=False))
    path = stack_path(x_T, iter(steps))  # a generator, as the notebooks pass it
    assert path.shape == (6, 7, 3)
    assert torch.equal(path[0], x_T) and all(torch.equal(path[k + 1], st.x) for k, st in enumerate(steps))
    planted = torch.stack([st.x for st in steps])  # the planted bug: the start left out, so one step is lost
    assert path_length(path).sum() > path_length(planted).sum()
    assert float(path_length(path).sum()) == pytest.approx(
        sum(float((b - a).norm(dim=-1).sum()) for a, b in zip([x_T] + [st.x for st in steps], [st.x for st in steps])))


def test_stack_path_refuses_no_steps_and_a_shape_change() -> None:
    x_T = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="at least one step"):
        stack_path(x_T, [])
    odd = SamplerStep(t=9, t_prev=-1, x=torch.zeros(4, 3), x0_pred=torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"x_T's shape \(4, 2\)"):
        stack_path(x_T, [odd])
