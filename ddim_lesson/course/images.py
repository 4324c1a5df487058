"""The one pipeline from image tensors to pictures: grids as arrays, PNG bytes, PNG files, labelled strips.

Images are float tensors in [-1, 1] of shape (B, C, H, W) with C in {1, 3}. Every grid here is
``torchvision.utils.make_grid`` over ``data.to_unit(x)`` (clamped to [0, 1]); every PNG is 8-bit.

- :func:`image_grid` (array for ``imshow``) and :func:`image_png` (bytes for ``ipywidgets.Image``):
  white gaps of ``pad`` pixels between cells, none around the edge;
- :func:`save_grid`: a PNG file with black padding around every cell, upscaled to at least MIN_GRID_PX wide,
  optionally with a label per row (the CLI's ``sample`` and ``invert`` output);
- :func:`labelled_row`, :func:`labelled_grid`, :func:`stack`: the explorers' strips, with a title and
  a caption per image, drawn with PIL in a few milliseconds.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from ..core.checks import check_int
from ..store.atomic import atomic_write
from ..store.data import to_uint8, to_unit

SCALE = 3  # the explorers draw each 28×28 pixel grid 3× larger (nearest neighbour)
LABEL_H = 16  # height of a text label row, in output pixels


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C in (1, 3), got {tuple(x.shape)}")


def grid_tensor(x: torch.Tensor, nrow: int = 8, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Tile images (B, C, H, W) in [-1, 1] into one float tensor (C, H', W') in [0, 1] (``make_grid``).

    n = min(nrow, B) columns, R = ceil(B / n) rows, ``pad`` pixels of ``pad_value`` between cells
    and none around the edge: H' = R·(H+pad) - pad, W' = n·(W+pad) - pad.
    """
    _check_images(x)
    if nrow < 1 or pad < 0:
        raise ValueError(f"need nrow >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    u = to_unit(x.detach().float().cpu())  # (B, C, H, W) in [0, 1]
    if u.shape[0] == 1:  # make_grid returns a single image as it is, without padding
        return u[0]
    grid = make_grid(u, nrow=nrow, padding=pad, pad_value=pad_value)  # (C', R(H+pad)+pad, n(W+pad)+pad)
    grid = grid[: x.shape[1]]  # make_grid repeats a single channel 3 times; keep C
    return grid if pad == 0 else grid[:, pad:-pad, pad:-pad]  # drop the outer border


def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile images (B, C, H, W) in [-1, 1] into one array in [0, 1] with white gaps of ``pad`` pixels.

    Returns (R·(H+pad)-pad, n·(W+pad)-pad) for C = 1, or the same with a last axis of 3 for C = 3,
    where n = min(nrow, B) columns and R = ceil(B / n) rows.
    """
    grid = grid_tensor(x, nrow, pad).numpy().astype(np.float32)  # (C, H', W')
    return grid[0] if grid.shape[0] == 1 else grid.transpose(1, 2, 0)


def image_png(x: torch.Tensor, nrow: int = 8, scale: int = 3, pad: int = 1) -> bytes:
    """PNG bytes of :func:`image_grid` (for ``ipywidgets.Image``), each pixel drawn ``scale`` × ``scale``."""
    scale = check_int("scale", scale, 1, 16)
    u8 = np.round(image_grid(x, nrow, pad) * 255).astype(np.uint8)  # (H', W') or (H', W', 3)
    return png_bytes(Image.fromarray(u8.repeat(scale, axis=0).repeat(scale, axis=1)))


MIN_GRID_PX = 512  # save_grid's default: the smallest whole upscale that makes a grid at least this wide
MAX_UPSCALE = 16


def grid_upscale(width: int, upscale: int | None = None) -> int:
    """The nearest-neighbour factor :func:`save_grid` draws a grid ``width`` pixels wide with: ``upscale``, an
    integer in [1, MAX_UPSCALE], or (None) the smallest one that makes it at least MIN_GRID_PX wide (at most
    MAX_UPSCALE): 64 Fashion-MNIST images in 8 columns are 242 px wide, so 3 (726 px)."""
    if upscale is not None:
        return check_int("upscale", upscale, 1, MAX_UPSCALE)
    return max(1, min(MAX_UPSCALE, math.ceil(MIN_GRID_PX / max(1, width))))


def save_grid(images: torch.Tensor, out: str | Path, nrow: int | None = None, upscale: int | None = None,
              row_labels: list[str] | None = None) -> tuple[int, int]:
    """Save images in [-1, 1], (N, C, H, W), as one PNG grid (2 black pixels around every cell).

    ``nrow`` columns (default ceil(√N)); each pixel drawn ``upscale`` × ``upscale`` (:func:`grid_upscale`: default
    the smallest factor that makes the grid at least MIN_GRID_PX wide); ``row_labels``, one per row of the grid,
    written in white in a black column on the left. The file is written atomically. Returns (width, height) in px.
    """
    _check_images(images)
    nrow = check_int("nrow", nrow or math.ceil(math.sqrt(images.shape[0])), 1)
    grid = make_grid(to_unit(images.detach().float().cpu()), nrow=nrow, padding=2)  # (3, H', W')
    k = grid_upscale(grid.shape[2], upscale)
    u8 = (grid * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H', W', 3), as save_image
    img = Image.fromarray(u8.repeat(k, axis=0).repeat(k, axis=1))  # nearest neighbour: each pixel k × k
    if row_labels is not None:
        img = _label_rows(img, list(row_labels), math.ceil(images.shape[0] / nrow), k)
    buf = io.BytesIO()
    img.save(buf, format=image_format(out))
    write_image_file(out, buf.getvalue())
    return img.width, img.height


def _label_rows(img: Image.Image, labels: list[str], rows: int, k: int) -> Image.Image:
    """``img`` with a black column on its left holding one label per row (white text, centred on the row)."""
    if len(labels) != rows:
        raise ValueError(f"row_labels must hold one label per row of the grid ({rows}), got {len(labels)}")
    font = _font(max(12, min(40, 5 * k)))
    draw = ImageDraw.Draw(img)
    width = max(int(draw.textlength(t, font=font)) for t in labels) + 4 * k + 8 if labels else 0
    out = Image.new("RGB", (img.width + width, img.height), "black")
    out.paste(img, (width, 0))
    draw, row_h = ImageDraw.Draw(out), img.height / rows
    for r, text in enumerate(labels):
        draw.text((2 * k + 4, (r + 0.5) * row_h), text, fill="white", font=font, anchor="lm")
    return out


def image_format(out: str | Path) -> str:
    """The image format named by ``out``'s extension (PNG when it has none)."""
    return Path(out).suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG"


def write_image_file(out: str | Path, data: bytes) -> None:
    """Write an encoded image as checkpoints are written: to a temp file beside ``out``, then renamed over it.

    An interrupt or a second writer never leaves a truncated or mixed file, an older file of that name is
    kept until the new one is complete, and a symlink at ``out`` is replaced, not written through.
    """
    atomic_write(Path(out), data)


# --------------------------------------------------------------------------------------
# Labelled strips for the explorers (PIL)
# --------------------------------------------------------------------------------------
def png_bytes(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (for ``ipywidgets.Image``)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def to_pil(x: torch.Tensor, scale: int = SCALE) -> Image.Image:
    """One image in [-1, 1], (C, H, W) with C in {1, 3} -> a PIL image scaled up ``scale`` times."""
    u8 = to_uint8(x.detach().float().cpu())  # (C, H, W)
    arr = u8[0].numpy() if u8.shape[0] == 1 else u8.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` px (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def labelled_row(
    images: torch.Tensor, labels: list[str] | None = None, title: str = "", gap: int = 2,
    heads: list[str] | None = None,
) -> Image.Image:
    """Images (K, C, H, W) side by side: a title, a head above and a label under each. Returns RGB."""
    tiles = [to_pil(x).convert("RGB") for x in images]
    tw, th = tiles[0].size
    top = LABEL_H * (bool(title) + bool(heads))
    bottom = LABEL_H if labels else 0
    row = Image.new("RGB", (len(tiles) * (tw + gap) - gap, top + th + bottom), "white")
    draw, font = ImageDraw.Draw(row), _font()
    if title:
        draw.text((2, 1), title, fill="black", font=font)
    for k, tile in enumerate(tiles):
        x = k * (tw + gap)
        row.paste(tile, (x, top))
        if heads:
            draw.text((x + 2, top - LABEL_H + 1), heads[k], fill="black", font=font)
        if labels:
            draw.text((x + 2, top + th + 1), labels[k], fill="black", font=font)
    return row


def labelled_grid(images: torch.Tensor, ncol: int, title: str = "", gap: int = 2) -> Image.Image:
    """Images (N, C, H, W) as rows of ``ncol``, one title above. Returns RGB."""
    rows = [labelled_row(images[i : i + ncol], gap=gap) for i in range(0, images.shape[0], ncol)]
    if title:
        rows = [Image.new("RGB", (rows[0].width, LABEL_H), "white")] + rows  # room for the title
    return stack(rows, title, gap=gap)


def stack(parts: list[Image.Image], title: str = "", gap: int = 6) -> Image.Image:
    """Stack images vertically on white; a title, if given, is written in the first part's top row."""
    width = max(p.width for p in parts)
    out = Image.new("RGB", (width, sum(p.height for p in parts) + gap * (len(parts) - 1)), "white")
    y = 0
    for p in parts:
        out.paste(p, (0, y))
        y += p.height + gap
    if title:
        ImageDraw.Draw(out).text((2, 1), title, fill="black", font=_font())
    return out
