"""What every explorer widget shares: a cache of rendered runs, and the wiring (seeded latents come from
:mod:`ddim_lesson.evaluate.generate`, the one seeding rule).

An explorer is a small dataclass holding its ``ui``, its controls, ``image`` (PNG bytes),
``readout`` (HTML), ``cache`` and ``last`` (the last run). :func:`connect` makes it live: each
change of a control looks the settings up in the cache, computes (and renders) only on a miss,
and shows the result; while it computes, the readout says "computing…" and the image dims
(:func:`show_computing`). A test drives it by setting ``explorer.<control>.value`` without a browser.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

STYLE = {"description_width": "60px"}


def slider_args() -> dict[str, Any]:
    """Keyword arguments shared by the explorers' sliders: update on release, one width."""
    return dict(continuous_update=False, style=STYLE, layout=w.Layout(width="420px"))


@dataclass
class RunCache:
    """Least-recently-used cache of (result, png) keyed by the explorer's settings."""

    maxsize: int = 64
    hits: int = 0
    misses: int = 0
    _data: OrderedDict = field(default_factory=OrderedDict)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def get(self, key: Hashable, compute: Callable[[], tuple[Any, bytes]]) -> tuple[Any, bytes, bool]:
        """Return (result, png, was_cached); ``compute`` runs only on a miss."""
        if key in self._data:
            self.hits += 1
            self._data.move_to_end(key)
            return (*self._data[key], True)
        self.misses += 1
        value = compute()
        self._data[key] = value
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return (*value, False)


COMPUTING = ("<span style='color:#a60'><b>computing…</b> the image below still shows the previous setting"
             "</span>")
DIMMED = "0.35"  # the image's opacity while its successor is computed


def show_computing(ex: Any, on: bool) -> None:
    """Set (``on``) or clear the explorer's "computing" state: the readout says so and the image dims, so a
    slider never reads one setting over the image of another without a sign. Cleared, the image is opaque again
    (the readout is then replaced by the result, or the error)."""
    if on:
        ex.readout.value = COMPUTING
    ex.image.layout.opacity = DIMMED if on else "1"


def connect(
    ex: Any, controls: Sequence[w.ValueWidget], key: Callable[[], Hashable],
    compute: Callable[[Any], tuple[Any, bytes]], readout: Callable[[Any, bool], str], show_errors: bool = False,
) -> None:
    """Re-render ``ex`` whenever a control changes, set ``ex.update`` to that callback, and render once.

    ``key()`` reads the controls into a cache key; ``compute(key)`` returns (run, png) on a miss;
    ``readout(run, cached)`` is the text shown. With ``show_errors`` a ValueError from ``compute``
    is written into the readout instead of raised. While a miss computes, the explorer shows its
    "computing" state (:func:`show_computing`), cleared afterwards whatever happens; a cached setting shows at once.
    """

    def update(*_: Any) -> None:
        k = key()
        show_computing(ex, k not in ex.cache)
        try:
            run, png, cached = ex.cache.get(k, lambda: compute(k))
            ex.last = run
            ex.image.value = png
            ex.readout.value = readout(run, cached)
        except Exception as e:  # the readout says what went wrong, never "computing…" over a stale image
            what = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            ex.readout.value = f"<span style='color:#b00'>error: {html.escape(what)}</span>"  # text, never HTML
            if not (show_errors and isinstance(e, ValueError)):
                raise
        finally:
            show_computing(ex, False)

    for c in controls:
        c.observe(update, names="value")
    ex.update = update
    update()
