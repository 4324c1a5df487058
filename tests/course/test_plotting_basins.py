"""course.plotting.basins: each x_T is drawn in the colour of the training point it reaches."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddim_lesson.course.plotting.basins import plot_basins  # noqa: E402


def test_each_start_has_its_destination_colour() -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.randn((5, 2), generator=g)
    x_T = torch.randn((40, 2), generator=g)
    dest = torch.randint(0, 5, (40,), generator=g)
    fig = plot_basins(x_T, dest, pts, samples=pts[dest])
    starts, stars = fig.axes[0].collections[:2]
    assert np.allclose(starts.get_offsets(), x_T.numpy()) and np.allclose(stars.get_offsets(), pts.numpy())
    # the colour of start k is the colour of the star of its destination
    assert np.allclose(starts.get_facecolors()[:, :3], stars.get_facecolors()[dest.numpy(), :3])
    assert len(fig.axes) == 2 and np.allclose(fig.axes[1].collections[1].get_offsets(), pts[dest].numpy())
    assert len(plot_basins(x_T, dest, pts).axes) == 1
