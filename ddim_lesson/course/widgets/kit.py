"""What every explorer widget shares: a cache of rendered runs, and the wiring (seeded latents come from
:mod:`ddim_lesson.evaluate.generate`, the one seeding rule).

An explorer is a small dataclass holding its ``ui``, its controls, ``image`` (PNG bytes),
``readout`` (HTML), ``cache`` and ``last`` (the last run). :func:`connect` makes it live: each
change of a control looks the settings up in the cache, computes (and renders) only on a miss,
and shows the result. A test drives it by setting ``explorer.<control>.value`` without a browser.
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


def connect(
    ex: Any, controls: Sequence[w.ValueWidget], key: Callable[[], Hashable],
    compute: Callable[[Any], tuple[Any, bytes]], readout: Callable[[Any, bool], str], show_errors: bool = False,
) -> None:
    """Re-render ``ex`` whenever a control changes, set ``ex.update`` to that callback, and render once.

    ``key()`` reads the controls into a cache key; ``compute(key)`` returns (run, png) on a miss;
    ``readout(run, cached)`` is the text shown. With ``show_errors`` a ValueError from ``compute``
    is written into the readout instead of raised.
    """

    def update(*_: Any) -> None:
        k = key()
        try:
            run, png, cached = ex.cache.get(k, lambda: compute(k))
        except ValueError as e:
            if not show_errors:
                raise
            ex.readout.value = f"<span style='color:#b00'>error: {html.escape(str(e))}</span>"  # text, never HTML
            return
        ex.last = run
        ex.image.value = png
        ex.readout.value = readout(run, cached)

    for c in controls:
        c.observe(update, names="value")
    ex.update = update
    update()
