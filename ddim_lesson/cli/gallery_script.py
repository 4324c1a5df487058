"""The command of benchmarks/gallery.py: run the notebooks and write each one's gallery figure.

Flags come from :class:`GalleryArgs` through the one bridge; a bad value is one line and exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..course.gallery import run_gallery
from ..store.device import announce_threads, pick_threads
from .errors import run_one_line
from .flags import add_dataclass_args, dataclass_from_args, script_parser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class GalleryArgs:
    """Which notebooks, and where their figures go."""

    only: str = field(default="", metadata={"help": "comma list of notebook numbers, e.g. 03,06 (default: all)"})
    out: str = field(default=str(NOTEBOOKS / "img" / "gallery"), metadata={"help": "folder for NN.png"})
    max_width: int = field(default=640, metadata={"help": "width in px of each figure, at most"})

    def __post_init__(self) -> None:
        if self.max_width < 16:
            raise ValueError(f"max_width must be >= 16 px, got {self.max_width}")
        known = sorted(p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        for n in (x.strip() for x in self.only.split(",") if x.strip()):
            if n not in known:
                raise ValueError(f"only: no notebook {n!r}; allowed: {', '.join(known)}")

    def notebooks(self) -> list[Path]:
        wanted = {x.strip() for x in self.only.split(",") if x.strip()}
        return [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if not wanted or p.name[:2] in wanted]


def gallery_main(doc: str, argv: Sequence[str] | None = None) -> None:
    """Run the chosen notebooks from the top and write ``OUT/NN.png`` from each one's ``gallery`` cell."""
    p = script_parser(doc)
    add_dataclass_args(p, GalleryArgs)

    def command() -> None:
        a = dataclass_from_args(GalleryArgs, p.parse_args(argv))
        announce_threads(pick_threads())  # here; each notebook's kernel picks its own (check_environment)
        run_gallery(a.notebooks(), Path(a.out), a.max_width)

    run_one_line(p.prog, command)
