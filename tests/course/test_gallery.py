"""The gallery: one figure per notebook, taken from a tagged cell of the notebook itself."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ddim_lesson.course.gallery import gallery_cell, last_png, run_gallery, shrink_png

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "notebooks" / "img" / "gallery"


def _png(w: int, h: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def _cell(tags=(), outputs=()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "outputs": list(outputs), "source": []}


def _fig_output(png: bytes) -> dict:
    return {"output_type": "display_data", "data": {"image/png": base64.b64encode(png).decode()}, "metadata": {}}


def test_gallery_cell_is_the_one_tagged_code_cell():
    nb = {"cells": [_cell(), _cell(["gallery"]), {"cell_type": "markdown", "metadata": {"tags": ["gallery"]}}]}
    assert gallery_cell(nb) == 1
    with pytest.raises(ValueError, match="exactly one code cell 'gallery'.*found 0"):
        gallery_cell({"cells": [_cell()]}, "x.ipynb")
    with pytest.raises(ValueError, match="found 2"):
        gallery_cell({"cells": [_cell(["gallery"]), _cell(["gallery"])]})


def test_last_png_takes_the_last_figure_and_shrink_keeps_the_aspect():
    first, last = _png(40, 20, (0, 0, 255)), _png(1200, 600)
    cell = _cell(["gallery"], [_fig_output(first), {"output_type": "stream", "text": "hi"}, _fig_output(last)])
    assert last_png(cell) == last
    small = Image.open(io.BytesIO(shrink_png(last, 300)))
    assert small.size == (300, 150)
    assert small.getpixel((150, 75)) == (200, 30, 30)
    assert Image.open(io.BytesIO(shrink_png(first, 300))).size == (40, 20)  # never enlarged
    with pytest.raises(ValueError, match="displayed no PNG"):
        last_png(_cell(["gallery"], [{"output_type": "stream", "text": "no figure"}]))
    with pytest.raises(ValueError, match="max_width"):
        shrink_png(last, 8)


def test_run_gallery_writes_one_file_per_notebook_named_by_its_number(tmp_path):
    nbs = []
    for name, colour in (("03_a.ipynb", (1, 2, 3)), ("10_b.ipynb", (4, 5, 6))):
        p = tmp_path / name
        p.write_text(json.dumps({"cells": [_cell(["gallery"])], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        nbs.append((p, colour))

    def fake_run(path: Path) -> dict:  # an executed notebook, without a kernel
        colour = dict(nbs)[path]
        return {"cells": [_cell(["gallery"], [_fig_output(_png(800, 400, colour))])]}

    written = run_gallery([p for p, _ in nbs], tmp_path / "out", max_width=200, run=fake_run, log=lambda s: None)
    assert [w.name for w in written] == ["03.png", "10.png"]
    assert Image.open(written[1]).getpixel((5, 5)) == (4, 5, 6) and Image.open(written[1]).size == (200, 100)


def test_run_gallery_refuses_an_untagged_notebook_before_running_any(tmp_path):
    good, bad = tmp_path / "01_a.ipynb", tmp_path / "02_b.ipynb"
    good.write_text(json.dumps({"cells": [_cell(["gallery"])], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    bad.write_text(json.dumps({"cells": [_cell()], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    ran = []
    with pytest.raises(ValueError, match="02_b.ipynb"):
        run_gallery([good, bad], tmp_path / "out", run=lambda p: ran.append(p) or {}, log=lambda s: None)
    assert ran == [] and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_run_gallery_executes_a_real_notebook(tmp_path):
    pytest.importorskip("nbclient")
    src = ["import matplotlib\n", "matplotlib.use('module://matplotlib_inline.backend_inline')\n",
           "import matplotlib.pyplot as plt\n", "fig, ax = plt.subplots(figsize=(4, 2))\n", "ax.plot([0, 1], [1, 0])"]
    cell = {**_cell(["gallery"]), "source": src, "execution_count": None}
    p = tmp_path / "07_real.ipynb"
    p.write_text(json.dumps({"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "py",
                                                                          "language": "python"}},
                             "nbformat": 4, "nbformat_minor": 5}))
    (out,) = run_gallery([p], tmp_path / "g", max_width=100, log=lambda s: None)
    assert Image.open(out).size[0] == 100


def test_every_notebook_tags_one_gallery_cell_and_its_figure_is_committed_and_shown():
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        gallery_cell(json.loads(path.read_text()), path.name)
        png = GALLERY / f"{path.name[:2]}.png"
        assert png.is_file(), f"{png.relative_to(ROOT)} is missing: run python benchmarks/gallery.py --only {png.stem}"
        assert png.stat().st_size < 200_000, f"{png.name} is {png.stat().st_size} bytes: keep the gallery small"
        assert f"notebooks/img/gallery/{png.name}" in readme, f"the README's gallery does not show {png.name}"


def test_a_figure_full_of_noise_is_re_encoded_with_a_palette_and_shrinks():
    from ddim_lesson.course.gallery import MAX_BYTES

    rng = torch.Generator().manual_seed(0)
    noise = (torch.rand(400, 640, 3, generator=rng) * 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    assert buf.tell() > MAX_BYTES  # the case the palette is for
    out = Image.open(io.BytesIO(shrink_png(buf.getvalue())))
    assert out.mode == "P" and out.size == (640, 400)
    smooth = Image.new("RGB", (640, 400), (200, 30, 30))  # small already: kept in RGB
    buf2 = io.BytesIO()
    smooth.save(buf2, format="PNG")
    assert Image.open(io.BytesIO(shrink_png(buf2.getvalue()))).mode == "RGB"
