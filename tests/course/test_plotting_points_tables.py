"""course/plotting/points.py and course/plotting/tables.py: each draws or prints exactly the data it is given.
The points in a figure are read back from matplotlib and compared with the tensors; a table is parsed back
and compared with the rows, formatted independently."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddim_lesson.course.plotting.points import plot_paths_2d, plot_points  # noqa: E402
from ddim_lesson.course.plotting.tables import format_table  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_points_draws_each_cloud_on_shared_equal_axes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 2, generator=g), 3 * torch.randn(20, 2, generator=g)
    fig = plot_points({"a": a, "b": b})
    lim = 1.1 * max(a.abs().max().item(), b.abs().max().item())  # fitted to both clouds
    for ax, pts in zip(fig.axes, (a, b)):
        np.testing.assert_allclose(ax.collections[0].get_offsets(), pts.numpy(), rtol=1e-6)
        assert ax.get_xlim() == pytest.approx((-lim, lim)) and ax.get_ylim() == pytest.approx((-lim, lim))
        assert ax.get_aspect() == 1.0
    assert [ax.get_title() for ax in fig.axes] == ["a (n = 50)", "b (n = 20)"]
    assert plot_points({"a": a}, lim=7.0).axes[0].get_xlim() == (-7.0, 7.0)


def test_plot_paths_2d_draws_the_first_n_paths_step_by_step_and_every_end_point():
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(6, 9, 2, generator=g).cumsum(0)  # (K+1, P, 2): 5 steps of 9 points
    data = torch.randn(30, 2, generator=g)
    ax = plot_paths_2d({"walk": xs}, data=data, n_paths=4).axes[0]
    grey, ends = ax.collections
    np.testing.assert_allclose(grey.get_offsets(), data.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ends.get_offsets(), xs[-1].numpy(), rtol=1e-6)  # every point's end, not only 4
    paths = [ln for ln in ax.lines if len(ln.get_xdata()) > 1]
    assert len(paths) == 4
    for p, ln in enumerate(paths):
        np.testing.assert_allclose(np.c_[ln.get_xdata(), ln.get_ydata()], xs[:, p].double().numpy())
    markers = [ln for ln in ax.lines if len(ln.get_xdata()) == 1]
    starts = [(m.get_xdata()[0], m.get_ydata()[0]) for m in markers if m.get_marker() == "x"]
    np.testing.assert_allclose(starts, xs[0, :4].double().numpy())
    assert ax.get_title() == "walk: 5 steps"


def _parse(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_format_table_prints_the_given_columns_in_order_with_digits_significant():
    rows = [{"name": "ddim", "fid": 12.3456789, "steps": 10, "extra": 1}, {"name": "ddpm", "fid": 0.000123456}]
    for digits in (2, 3, 6):
        table = _parse(format_table(rows, columns=["steps", "name", "fid"], digits=digits))
        assert table[0] == ["steps", "name", "fid"]
        assert set("".join(table[1])) == {"-"}
        assert table[2] == ["10", "ddim", format(12.3456789, f".{digits}g")]
        assert table[3] == ["-", "ddpm", format(0.000123456, f".{digits}g")]  # a missing key prints as '-'
    assert "extra" not in format_table(rows, columns=["name"])
    assert _parse(format_table(rows))[0] == ["name", "fid", "steps", "extra"]  # default: the first row's keys


def test_format_table_right_aligns_every_column_to_its_widest_cell():
    text = format_table([{"a": "x", "long header": 1.5}, {"a": "wide cell", "long header": 2.0}])
    lines = text.splitlines()
    assert len({len(ln) for ln in lines}) == 1
    for line in lines:
        assert line[: len("wide cell")].strip() in {"a", "-" * 9, "x", "wide cell"}
        assert line.endswith(("long header", "-" * 11, "1.5", "2"))
    assert lines[2].startswith(" " * 8 + "x")  # right-aligned under the 9-wide column
    assert format_table([]) == "(no rows)"
