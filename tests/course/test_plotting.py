"""The notebooks' figures: each helper draws exactly the data it is given, in the layout it promises."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddim_lesson import NoiseSchedule, SamplerStep  # noqa: E402
from ddim_lesson.course import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sched() -> NoiseSchedule:
    return NoiseSchedule.linear(100, 1e-3, 0.05)


def test_show_images_titles():
    x = torch.zeros(5, 1, 4, 4)
    fig = P.show_images(x, nrow=3, titles=list("abcde"), title="T")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == list("abcde")
    assert fig._suptitle.get_text() == "T"
    with pytest.raises(ValueError, match="one title per image"):
        P.show_images(x, titles=["a"])
    assert len(P.show_images(x, nrow=3).axes) == 1


def test_show_rows_labels_rows():
    fig = P.show_rows({"first": torch.zeros(3, 1, 4, 4), "second": torch.ones(2, 1, 4, 4)}, title="T")
    assert [ax.get_ylabel() for ax in fig.axes] == ["first", "", "", "second", "", ""]  # plot_image_rows' layout
    assert not fig.axes[5].axison and fig._suptitle.get_text() == "T"  # row "second" has only 2 images
    with pytest.raises(ValueError):
        P.show_rows({})


def test_plot_schedules_draws_the_schedule_curves(sched):
    cos = NoiseSchedule.cosine(100)
    fig = P.plot_schedules({"lin": sched, "cos": cos})
    a_ax, snr_ax, log_ax = fig.axes
    assert np.allclose(a_ax.lines[0].get_ydata(), sched.alphas_cumprod.numpy())
    assert np.allclose(snr_ax.lines[1].get_ydata(), (cos.alphas_cumprod / (1 - cos.alphas_cumprod)).numpy())
    a = sched.alphas_cumprod.numpy()
    assert np.allclose(log_ax.lines[0].get_ydata(), np.log(a) - np.log1p(-a))
    assert snr_ax.get_yscale() == "log"


def test_plot_noising_titles_and_validation(sched):
    x0 = torch.zeros(2, 1, 4, 4)
    ts = [0, 50, 99]
    x_ts = torch.zeros(3, 2, 1, 4, 4)
    fig = P.plot_noising(x0, x_ts, ts, sched)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4
    a50 = float(np.prod(1 - sched.betas.numpy()[:51]))
    assert "t = 50" in titles[2] and f"ᾱ = {a50:.3g}" in titles[2]
    with pytest.raises(ValueError, match="x_ts must have shape"):
        P.plot_noising(x0, x_ts[:2], ts, sched)


def test_plot_trajectory_pairs_inputs_with_predictions():
    x_T = torch.full((2, 1, 2, 2), -1.0)
    steps = [SamplerStep(t, t - 1, torch.full((2, 1, 2, 2), -1.0 + (10 - t) / 5), torch.full((2, 1, 2, 2), 0.0))
             for t in range(9, -1, -1)]  # 10 steps, t = 9..0
    fig = P.plot_trajectory(x_T, steps, k=4, index=1)
    axes = np.array(fig.axes).reshape(2, -1)
    assert axes.shape == (2, 5)  # 4 picked steps + the output column
    assert [ax.get_title() for ax in axes[0]] == ["t = 9", "t = 6", "t = 3", "t = 0", "output"]
    first_input = axes[0, 0].images[0].get_array()
    assert np.allclose(first_input, 0.0)  # x_T = -1 is black: the model input at the first step
    assert np.allclose(axes[0, -1].images[0].get_array(), 1.0)  # output: steps[-1].x = 1 (white)
    with pytest.raises(ValueError, match="index"):
        P.plot_trajectory(x_T, steps, index=2)
    with pytest.raises(ValueError, match="empty"):
        P.plot_trajectory(x_T, [])


def test_plot_loss_moving_average():
    losses = [4.0, 2.0, 3.0, 1.0, 5.0]
    fig = P.plot_loss(losses, window=2, every=10)
    raw, smooth = fig.axes[0].lines
    assert np.allclose(raw.get_xdata(), [10, 20, 30, 40, 50])
    assert np.allclose(smooth.get_ydata(), [3.0, 2.5, 2.0, 3.0])
    assert np.allclose(smooth.get_xdata(), [20, 30, 40, 50])
    with pytest.raises(ValueError, match="empty"):
        P.plot_loss([])
    assert len(P.plot_loss(losses, window=1).axes[0].lines) == 1


def test_plot_points_and_histograms():
    pts = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    fig = P.plot_points({"a": pts, "b": -pts})
    assert [ax.get_title() for ax in fig.axes] == ["a (n = 2)", "b (n = 2)"]
    assert fig.axes[0].get_xlim() == pytest.approx((-2.2, 2.2))
    fig = P.plot_histograms({"s": torch.randn(1000, generator=torch.Generator().manual_seed(0))}, 0.0, 1.0)
    pdf = fig.axes[0].lines[0]
    x, y = pdf.get_xdata(), pdf.get_ydata()
    assert np.allclose(y, np.exp(-x**2 / 2) / math.sqrt(2 * math.pi))


def test_plot_timesteps_labels_calls_and_first_timestep(sched):
    seqs = {"a": torch.tensor([90, 60, 30, 0]), "b": torch.tensor([99, 66, 33, 0, 5])}
    fig = P.plot_timesteps(seqs, sched)
    top, bot = fig.axes
    assert [t.get_text() for t in bot.get_yticklabels()] == ["a (4 calls)", "b (5 calls)"]
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend[0].startswith("a: first t = 90") and legend[1].startswith("b: first t = 99")
    assert f"{float(sched.log_snr[99]):.2f}" in legend[1]


def test_plot_ode_paths(sched):
    sigma = torch.tensor([5.0, 2.0, 0.5, 0.0])
    xbar = torch.tensor([[10.0, -3.0], [4.0, -1.0], [1.0, 0.0], [0.5, 0.2]])
    fig = P.plot_ode_paths({"S = 3": (sigma, xbar), "fine": (sigma, xbar * 1.1)}, sigma_max=2.0)
    ax = fig.axes[0]
    assert len(ax.lines) == 4  # 2 pixels × 2 paths
    assert ax.get_xlim() == (2.0, 0.0)  # noise on the left, data on the right
    lo, hi = ax.get_ylim()
    assert lo < -1.1 and hi > 4.4 and hi < 10  # fitted to the points with σ <= 2, not the start
    with pytest.raises(ValueError, match="entries"):
        P.plot_ode_paths({"bad": (sigma[:2], xbar)})


def test_format_table():
    text = P.format_table([{"S": 10, "fid": 12.3456789, "note": None}, {"S": 100, "fid": 3.0, "note": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["S", "fid", "note"]
    assert lines[2].split() == ["10", "12.35", "-"]
    assert lines[3].split() == ["100", "3", "x"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    assert P.format_table([]) == "(no rows)"


def test_plot_image_rows():
    rows = {"a": torch.zeros(3, 1, 28, 28), "b": torch.ones(2, 1, 28, 28)}
    fig = P.plot_image_rows(rows, col_titles=["x", "y", "z"], title="t")
    axes = fig.axes
    assert len(axes) == 6
    assert axes[0].get_ylabel() == "a" and axes[3].get_ylabel() == "b" and axes[2].get_title() == "z"
    assert not axes[5].axison  # row b has only 2 images
    plt.close(fig)
    with pytest.raises(ValueError, match="column title"):
        P.plot_image_rows(rows, col_titles=["x"])
    with pytest.raises(ValueError, match="empty"):
        P.plot_image_rows({})


def test_plot_curves_and_paths():
    fig = P.plot_curves({"c": ([1, 2, 3], [3.0, 2.0, 1.0])}, "x", "y", logx=True, hlines={"ref": 0.5})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "x"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["c", "ref"]
    plt.close(fig)
    xs = torch.randn(11, 20, 2)
    fig = P.plot_paths_2d({"DDPM": xs, "DDIM": xs[::5]}, data=torch.randn(50, 2), n_paths=3)
    assert [a.get_title() for a in fig.axes] == ["DDPM: 10 steps", "DDIM: 2 steps"]
    plt.close(fig)


EDITS = ["T-shirt/top → Dress", "Pullover → Coat", "Sneaker → Ankle boot", "Shirt → Dress"]  # notebook 08's


def _titles_fit(fig) -> bool:
    """Every top-row title, as drawn, lies within its panel's width and overlaps no neighbour's."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(ax.title.get_window_extent(r), ax.get_window_extent(r)) for ax in fig.axes if ax.get_title()]
    inside = all(t.x0 >= a.x0 - 2 and t.x1 <= a.x1 + 2 for t, a in boxes)
    apart = all(b[0].x1 <= c[0].x0 for b, c in zip(boxes, boxes[1:]))
    return inside and apart


def test_column_titles_are_whole_and_fit():
    """Notebook 08 cut its titles to "Pullove>Coat" to fit; the helper wraps them instead, every letter kept."""
    fig = P.plot_image_rows({"source": torch.zeros(4, 1, 28, 28)}, col_titles=EDITS, title="edits")
    shown = [ax.get_title() for ax in fig.axes]
    assert [" ".join(t.split()) for t in shown] == EDITS  # whole: only spaces became line breaks
    assert any("\n" in t for t in shown) and _titles_fit(fig)
    plt.close(fig)
    fig = P.show_images(torch.zeros(4, 1, 28, 28), nrow=4, titles=EDITS)
    assert [" ".join(ax.get_title().split()) for ax in fig.axes] == EDITS and _titles_fit(fig)
    plt.close(fig)


def test_unwrapped_titles_fail_the_fit_check():
    """Planted bug: the same titles set on one line, as before, run into each other."""
    fig = P.plot_image_rows({"source": torch.zeros(4, 1, 28, 28)}, col_titles=EDITS)
    for ax, t in zip(fig.axes, EDITS):
        ax.set_title(t, fontsize=8)
    assert not _titles_fit(fig)
    plt.close(fig)


def test_fit_title_wraps_at_spaces_and_shrinks_a_long_word():
    from ddim_lesson.course.plotting.image_figures import fit_title, text_width_in

    text, size = fit_title("Pullover → Coat", 0.6)
    assert text.split() == ["Pullover", "→", "Coat"] and size == 8
    assert all(text_width_in(line, size) <= 0.6 for line in text.split("\n"))
    text, size = fit_title("Supercalifragilistic", 0.6)  # one word: the font shrinks, no letter is cut
    assert text == "Supercalifragilistic" and 6 <= size < 8
    assert fit_title("x", 1.0) == ("x", 8)
