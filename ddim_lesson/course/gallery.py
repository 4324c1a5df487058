"""The course's gallery: one representative figure per notebook, taken from the notebook's own code.

A notebook marks the cell whose figure represents it with the cell tag ``gallery`` (exactly one per
notebook). :func:`run_gallery` executes each notebook from the top (as a learner's Run All does, in
``notebooks/`` as the working folder), takes the last PNG that the tagged cell displayed, shrinks it to
at most ``max_width`` pixels wide, and writes it as ``OUT/NN.png``, atomically. The README shows them,
so a newcomer sees the course before installing it.

    python benchmarks/gallery.py                 # all notebooks -> notebooks/img/gallery/NN.png
    python benchmarks/gallery.py --only 03,06    # some of them
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..store.atomic import atomic_write

TAG = "gallery"
MAX_BYTES = 150_000  # above this a figure is re-encoded with a 256-colour palette


def gallery_cell(nb: dict[str, Any], where: str = "notebook") -> int:
    """Index of the one code cell tagged ``gallery`` in a notebook (as nbformat JSON); ValueError otherwise."""
    tagged = [i for i, c in enumerate(nb.get("cells", []))
              if c.get("cell_type") == "code" and TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{where} must tag exactly one code cell {TAG!r} for the gallery; found {len(tagged)}")
    return tagged[0]


def last_png(cell: dict[str, Any], where: str = "cell") -> bytes:
    """The bytes of the last image/png output of an executed cell; ValueError if it showed none."""
    pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    if not pngs:
        raise ValueError(f"{where} displayed no PNG figure; the gallery needs one")
    data = pngs[-1]
    return base64.b64decode("".join(data) if isinstance(data, list) else data)


def shrink_png(png: bytes, max_width: int = 640) -> bytes:
    """Re-encode ``png`` at most ``max_width`` px wide (aspect kept; never enlarged), optimised, as RGB; a file still
    over :data:`MAX_BYTES` is re-encoded with a 256-colour palette."""
    if max_width < 16:
        raise ValueError(f"max_width must be >= 16 px, got {max_width}")
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    if buf.tell() > MAX_BYTES:  # a figure full of noise images: 256 colours keep it readable and small
        buf = io.BytesIO()
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def execute(path: Path, timeout: int = 900) -> dict[str, Any]:
    """Run a notebook from the top in its own folder with the current Python's kernel; return it, executed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def run_gallery(notebooks: Sequence[Path], out: Path, max_width: int = 640,
                run: Callable[[Path], dict[str, Any]] = execute, log: Callable[[str], None] = print) -> list[Path]:
    """Write ``out/NN.png`` for each notebook (NN: the first two characters of its name). Returns the files."""
    import nbformat

    written = []
    for path in notebooks:
        gallery_cell(nbformat.read(path, as_version=4), path.name)  # fail before running, not after
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        log(f"running {path.name} ...")
        nb = run(path)
        i = gallery_cell(nb, path.name)
        png = shrink_png(last_png(nb["cells"][i], f"{path.name}, cell {i}"), max_width)
        target = out / f"{path.name[:2]}.png"
        atomic_write(target, png)
        log(f"  {target} ({len(png) // 1024} KiB)")
        written.append(target)
    return written
