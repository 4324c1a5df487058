"""Argument checks, written once: every public function that takes a count, a choice or a real number uses these.

Each raises ValueError naming the argument, the value it got, and the allowed range, so that a bad
input never reaches torch's internals and is never clamped silently.

    steps = check_int("steps", steps, 1, T)           # any integer (int, numpy, 0-d tensor); not bool or float
    eta = check_float("eta", eta, 0.0, 1.0)             # a finite real in [0, 1]
    spacing = check_choice("spacing", spacing, SPACINGS)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int in [lo, hi] (either bound may be None), else ValueError.

    Accepts anything integer-like through ``operator.index`` (int, numpy integers, 0-d integer
    tensors); refuses bools and floats, even integral ones such as 10.0.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got the bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got {value!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got {v!r}")
    return v


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite Python float in the interval given by lo and hi, else ValueError.

    Accepts Python and numpy reals and 0-d real tensors; refuses bools, strings, NaN and inf.
    ``lo_open`` / ``hi_open`` exclude the bound itself.
    """
    if isinstance(value, (bool, str, bytes)) or not _is_real(value):
        raise ValueError(f"{name} must be a finite number{_interval(lo, hi, lo_open, hi_open)}, got {value!r}")
    v = float(value)
    bad = (not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        raise ValueError(f"{name} must be a finite number{_interval(lo, hi, lo_open, hi_open)}, got {v!r}")
    return v


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(repr(a) for a in allowed)}")
    return value


def _is_real(value: Any) -> bool:
    if hasattr(value, "shape") and tuple(getattr(value, "shape", ())) != ():
        return False  # an array with elements: not one number
    if getattr(value, "is_complex", None) is not None and callable(value.is_complex) and value.is_complex():
        return False
    if isinstance(value, complex):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi}"
    return ""
