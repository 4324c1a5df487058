"""core/checks.py's check_float: one number, finite, in its interval; every kind of bool refused (float() would
read each as 0 or 1, so a flag typo such as `--eta True` or a mask entry would pass as a number)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from ddim_lesson.core.checks import check_float


@pytest.mark.parametrize("value", [0.25, np.float32(0.25), np.float64(0.25), torch.tensor(0.25),
                                   torch.tensor(0.25, dtype=torch.float64), np.array(0.25), 1, np.int64(1)])
def test_check_float_takes_any_real_number_as_a_python_float(value) -> None:
    got = check_float("x", value, 0, 1)
    assert type(got) is float and got == float(value)


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_, torch.tensor(True), np.array(False)],
                         ids=repr)
def test_check_float_refuses_every_kind_of_bool_naming_it(value) -> None:
    assert float(value) in (0.0, 1.0)  # what a check without the bool guard would have accepted
    with pytest.raises(ValueError, match=rf"x must be a finite number in \[0, 1\], got {re.escape(repr(value))}$"):
        check_float("x", value, 0, 1)


@pytest.mark.parametrize("value", ["0.5", b"0.5", math.nan, math.inf, -math.inf, torch.tensor([0.5]),
                                   np.array([0.5, 0.6]), 0.5 + 0j, None], ids=repr)
def test_check_float_refuses_what_is_not_one_finite_real(value) -> None:
    with pytest.raises(ValueError, match=r"x must be a finite number"):
        check_float("x", value)


def test_check_float_bounds_open_and_closed() -> None:
    assert check_float("x", 0.0, 0, 1) == 0.0 and check_float("x", 1.0, 0, 1) == 1.0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        check_float("x", 0.0, 0, 1, lo_open=True)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        check_float("x", 1.0, 0, 1, hi_open=True)
    with pytest.raises(ValueError, match=r"got 1.5"):
        check_float("x", 1.5, 0, 1)
