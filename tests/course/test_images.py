"""The one image pipeline: grids (make_grid) as arrays, PNG bytes and PNG files; the explorers' strips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ddim_lesson.course import images as I


def test_image_grid_places_each_image_and_pads_white():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2)  # three flat 2×2 images
    grid = I.image_grid(x, nrow=2, pad=1)
    assert grid.shape == (2 * 3 - 1, 2 * 3 - 1)
    assert np.all(grid[0:2, 0:2] == 0.0)  # -1 -> black
    assert np.all(grid[0:2, 3:5] == 0.5)  # 0 -> mid grey
    assert np.all(grid[3:5, 0:2] == 1.0)  # 1 -> white
    assert np.all(grid[2, :] == 1.0) and np.all(grid[:, 2] == 1.0)  # the gaps are white
    assert np.all(grid[3:5, 3:5] == 1.0)  # the missing 4th slot is blank (white)


def test_image_grid_rgb_and_clamps():
    x = torch.full((2, 3, 4, 5), 3.0)  # out of range: shown as white, not wrapped
    x[1, 0] = -7.0
    grid = I.image_grid(x, nrow=8, pad=0)
    assert grid.shape == (4, 10, 3)
    assert np.all(grid[:, :5] == 1.0)
    assert np.all(grid[:, 5:, 0] == 0.0) and np.all(grid[:, 5:, 1:] == 1.0)


@pytest.mark.parametrize("shape", [(4, 28, 28), (2, 2, 8, 8), (1, 1, 1, 4, 4)])
def test_image_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        I.image_grid(torch.zeros(shape))


def test_image_png_decodes_to_the_scaled_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 5, 5, generator=g) * 2 - 1
    png = I.image_png(x, nrow=3, scale=2, pad=1)
    img = np.asarray(Image.open(io.BytesIO(png)))
    expect = np.round(I.image_grid(x, 3, 1) * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
    assert img.shape == ((5) * 2, (3 * 6 - 1) * 2)
    assert np.array_equal(img, expect)
    with pytest.raises(ValueError, match="scale"):
        I.image_png(x, scale=0)


def test_image_grid_of_one_image_is_the_image():
    x = torch.linspace(-1, 1, 12).view(1, 1, 3, 4)
    assert np.array_equal(I.image_grid(x, nrow=8, pad=3), ((x[0, 0] + 1) / 2).numpy())


def test_save_grid_pads_black_around_every_cell(tmp_path):
    x = torch.ones(5, 1, 4, 4)  # white images
    w, h = I.save_grid(x, tmp_path / "sub" / "g.png", nrow=3, upscale=1)
    assert (w, h) == (3 * 6 + 2, 2 * 6 + 2)  # make_grid: 2 pixels around every cell
    img = np.asarray(Image.open(tmp_path / "sub" / "g.png").convert("L"))
    assert img.shape == (h, w)
    assert np.all(img[2:6, 2:6] == 255) and np.all(img[:2] == 0) and np.all(img[:, 6:8] == 0)
    assert np.all(img[8:12, 14:18] == 0)  # the missing 6th cell stays black


def test_save_grid_upscales_by_nearest_neighbour(tmp_path):
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    w1, h1 = I.save_grid(x, tmp_path / "one.png", upscale=1)
    assert (w1, h1) == (242, 242)  # 8 columns of 28 + 2·9 pixels of padding: the size the issue found too small
    w, h = I.save_grid(x, tmp_path / "default.png")
    assert (w, h) == (3 * 242, 3 * 242) and w >= I.MIN_GRID_PX > 2 * 242  # the smallest factor reaching 512 px
    small = np.asarray(Image.open(tmp_path / "one.png"))
    big = np.asarray(Image.open(tmp_path / "default.png"))
    assert np.array_equal(big, small.repeat(3, axis=0).repeat(3, axis=1))  # each pixel 3 × 3, nothing smoothed
    assert I.save_grid(x[:1], tmp_path / "single.png") == (16 * 28, 16 * 28)  # one image (no padding): at most 16
    assert I.grid_upscale(5000) == 1 and I.grid_upscale(242, 2) == 2
    for bad in (0, 17, -1, 2.5):
        with pytest.raises(ValueError, match=r"upscale.*\[1, 16\]"):
            I.save_grid(x, tmp_path / "bad.png", upscale=bad)


def test_save_grid_labels_each_row(tmp_path):
    x = torch.ones(6, 1, 4, 4)  # white images, 3 rows of 2
    w0, h0 = I.save_grid(x, tmp_path / "plain.png", nrow=2, upscale=4)
    w, h = I.save_grid(x, tmp_path / "rows.png", nrow=2, upscale=4, row_labels=["input", "latent", "output"])
    assert h == h0 and w > w0  # a label column on the left, the grid unchanged beside it
    img = np.asarray(Image.open(tmp_path / "rows.png").convert("L"))
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("L"))
    assert np.array_equal(img[:, w - w0:], plain)
    column = img[:, : w - w0]
    row_h = h / 3
    for r in range(3):  # white text inside each row's band, none on the black edges between them
        band = column[int(r * row_h) + 8 : int((r + 1) * row_h) - 8]
        assert (band > 128).any(), r
    assert not (column[:4] > 128).any()
    with pytest.raises(ValueError, match="one label per row of the grid"):
        I.save_grid(x, tmp_path / "bad.png", nrow=2, row_labels=["a", "b"])


def test_labelled_row_and_stack_sizes():
    x = torch.zeros(3, 1, 5, 5)
    row = I.labelled_row(x, labels=["a", "b", "c"], title="t", gap=2)
    assert row.size == (3 * (5 * I.SCALE + 2) - 2, 2 * I.LABEL_H + 5 * I.SCALE)
    assert np.all(np.asarray(row)[I.LABEL_H:I.LABEL_H + 15, :15] == 128)  # 0 -> mid grey (127.5 rounds half to even)
    grid = I.labelled_grid(torch.zeros(5, 1, 5, 5), ncol=2, title="g")
    assert grid.size[0] == 2 * 17 - 2
    png = I.png_bytes(I.stack([row, grid]))
    assert Image.open(io.BytesIO(png)).size == (row.width, row.height + 6 + grid.height)
