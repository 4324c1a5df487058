"""Argument checks, written once: every public function that takes a count, a choice or a real number uses these.

Each raises ValueError naming the argument, the value it got, and the allowed range, so that a bad
input never reaches torch's internals and is never clamped silently.

    steps = check_int("steps", steps, 1, T)           # any integer (int, numpy, 0-d tensor); not bool or float
    eta = check_eta(eta)                                # a finite real in [0, 1]
    spacing = check_choice("spacing", spacing, SPACINGS)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int in [lo, hi] (either bound may be None), else ValueError.

    Accepts anything integer-like through ``operator.index`` (int, numpy integers, 0-d integer
    tensors); refuses bools and floats, even integral ones such as 10.0.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got the bool {value!r}")
    if getattr(value, "ndim", 0) != 0:  # operator.index takes a one-element tensor; one number is meant
        raise ValueError(f"{name} must be an integer{_range(lo, hi)}, got {value!r}")
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

    Accepts Python and numpy reals and 0-d real tensors; refuses bools (Python's, numpy's and bool tensors), strings,
    NaN and inf. ``lo_open`` / ``hi_open`` exclude the bound itself.
    """
    if _is_bool(value) or isinstance(value, (str, bytes)) or not _is_real(value):
        raise ValueError(f"{name} must be a finite number{_interval(lo, hi, lo_open, hi_open)}, got {value!r}")
    v = float(value)
    bad = (not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        raise ValueError(f"{name} must be a finite number{_interval(lo, hi, lo_open, hi_open)}, got {v!r}")
    return v


SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes less than 2**64; room is left for seed offsets


def check_seed(seed: Any, name: str = "seed") -> int:
    """A random seed as an int in [0, 2**63 - 1] (any integer type), else ValueError naming the range."""
    return check_int(name, seed, 0, SEED_MAX)


def check_seeds(seeds: Any, name: str = "each of --seeds") -> tuple[int, ...]:
    """A list of seeds as a tuple of ints, each by :func:`check_seed` (the message names ``name`` and the range)."""
    return tuple(check_seed(s, name) for s in seeds)


def check_lr(lr: Any, name: str = "lr") -> float:
    """A learning rate: a finite real in (0, 1), else ValueError naming the value and (0, 1)."""
    return check_float(name, lr, 0, 1, lo_open=True, hi_open=True)


def check_label(label: Any, num_classes: int, name: str = "label") -> int:
    """A class label in [0, num_classes], where num_classes itself is "no label", else ValueError naming both."""
    try:
        return check_int(name, label, 0, num_classes)
    except ValueError:
        raise ValueError(f"{name} must be an integer in [0, {num_classes}] ({num_classes}: no label), "
                         f"got {label!r}") from None


def check_eta(eta: Any, name: str = "eta") -> float:
    """``eta`` as a float in [0, 1], else ValueError naming the value and [0, 1].

    Above 1, σ² would exceed 1 - ᾱ_prev and the update would leave DDIM's family (eq. 12 needs
    √(1 - ᾱ_prev - σ²)); it is refused, never clamped. Python/numpy reals and 0-d tensors are accepted.
    Checked once where a value enters (a sampler call, a config, a command), not at every step.
    """
    return check_float(name, eta, 0.0, 1.0)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(repr(a) for a in allowed)}")
    return value


def _is_bool(value: Any) -> bool:
    """A Python bool, a numpy bool or a bool tensor/array (float() would take each as 0 or 1)."""
    dtype = getattr(value, "dtype", None)
    is_numpy_bool = isinstance(dtype, np.dtype) and dtype.kind == "b"
    return isinstance(value, (bool, np.bool_)) or dtype is torch.bool or is_numpy_bool


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


# --------------------------------------------------------------------------------------
# Tensors handed to a model: x_T (or x0) against the model, and the model's ε at each step
# --------------------------------------------------------------------------------------
class NonFiniteError(ValueError, FloatingPointError):
    """A tensor that must be finite holds NaN or inf: a ValueError, and a FloatingPointError."""


def expected_input_shape(model: Any) -> tuple[int, ...] | None:
    """The per-sample shape a package model takes: (C, H, W) for a UNet, (dim,) for an MLP; else None.

    Looks through wrappers that keep the model as ``.module`` (DDP) or ``._orig_mod`` (torch.compile).
    """
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if inner is not None and inner is not model:
            return expected_input_shape(inner)
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    if all(hasattr(cfg, k) for k in ("in_channels", "image_size")):
        return (int(cfg.in_channels), int(cfg.image_size), int(cfg.image_size))
    if hasattr(cfg, "dim") and hasattr(cfg, "hidden"):
        return (int(cfg.dim),)
    return None


def check_model_input(model: Any, x: Any, name: str = "x_T") -> torch.Tensor:
    """``x`` as a tensor the model can take, else ValueError naming the expected and the received value.

    Checks, for any model: ``x`` is a floating tensor with a batch dimension, batch size >= 1, and
    finite everywhere (else :class:`NonFiniteError`). For a package model (``UNet``,
    ``MLPDenoiser``, which carry a ``config``) also: shape (B, C, H, W) or (B, dim) from that
    config, and the device of the model's weights.

    Accepted on purpose, because it is obviously meant: a numpy array (converted with
    ``torch.as_tensor``), and a floating dtype other than the model's weights' (e.g. float64 into a
    float32 model), which is cast to the weights' dtype, so the sample comes back in that dtype.
    Refused: Python lists, integer/bool/complex tensors, a wrong shape, another device.
    """
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (or numpy array) of {_shape_text(model)}, "
                         f"got {type(x).__name__}; build it with torch.randn(...)")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (e.g. float32), got dtype {x.dtype}")
    want = expected_input_shape(model)
    if want is not None and tuple(x.shape[1:]) != want:
        hint = f"; add a batch dimension with {name}[None]" if tuple(x.shape) == want else ""
        raise ValueError(f"{name} must have {_shape_text(model)} for this model, got {tuple(x.shape)}{hint}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} needs a batch dimension with batch size >= 1, got shape {tuple(x.shape)}")
    weight = _first_weight(model)
    if weight is not None:
        if x.device != weight.device:
            raise ValueError(f"{name} is on {x.device} but the model is on {weight.device}; "
                             f"move it with {name}.to('{weight.device}')")
        if x.dtype != weight.dtype and weight.is_floating_point():
            x = x.to(weight.dtype)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{name} must be finite everywhere; it has {bad} NaN/inf entries "
                             "(allowed: finite values)")
    return x


def check_image_shape(model: Any, shape: Any = None, who: str = "this explorer") -> tuple[int, int, int]:
    """The (C, H, W) sample shape an image widget draws, checked against the model, else ValueError.

    ``shape`` None: the package model's own shape. A 2-D toy model (samples of shape (dim,)), a shape
    that is not (C, H, W) with C = 1 or 3, or a shape the model does not take, is refused by name.
    """
    want = expected_input_shape(model)
    if shape is None:
        if want is None:
            raise ValueError(f"cannot infer the sample shape of {type(model).__name__}; pass shape=(C, H, W)")
        shape = want
    try:
        shape = tuple(check_int("shape entry", d, 1) for d in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple (C, H, W), got {shape!r}") from None
    if len(shape) != 3 or shape[0] not in (1, 3):
        of_model = f"; this model's samples have shape {want}" if want is not None else ""
        raise ValueError(f"{who} needs an image model, samples of shape (C, H, W) with C = 1 or 3; "
                         f"got shape {shape}{of_model}")
    if want is not None and shape != want:
        raise ValueError(f"{who} needs an image model of shape {shape}, but this model takes {want}; "
                         f"pass shape={want} or leave shape out")
    return shape  # type: ignore[return-value]


def check_eps_finite(eps: torch.Tensor, t: int, what: str = "the model's eps") -> None:
    """Raise :class:`NonFiniteError` naming timestep ``t`` unless ``eps`` is finite everywhere.

    Called on every step of the sampling loops, so it is one sum and one read: a NaN or inf entry
    makes the sum non-finite (1.3-1.9 µs on a CPU, where isfinite().all() takes 5-28 µs). Only when
    the sum is not finite are the entries themselves checked (a sum of finite values can overflow).
    ``what`` names the tensor in the message (default: the model's ε prediction).
    """
    if math.isfinite(float(eps.sum())):
        return
    if not bool(torch.isfinite(eps).all()):
        bad = int((~torch.isfinite(eps)).sum())
        raise NonFiniteError(
            f"{what} stopped being finite at timestep t={t} ({bad} of {eps.numel()} entries NaN/inf); "
            "the model or its input x_t overflowed (is x_T a standard normal sample, are the weights finite?)")


def check_sample_finite(x: torch.Tensor, t_last: int) -> None:
    """After the last update: raise :class:`NonFiniteError` unless the sample is finite (one sum, as above).

    ε was finite at every step (:func:`check_eps_finite`), so a non-finite sample means an update
    overflowed; with ``clip_x0`` True, x0_pred is bounded and this cannot happen.
    """
    if math.isfinite(float(x.sum())) or bool(torch.isfinite(x).all()):
        return
    raise NonFiniteError(
        f"the sample is not finite after the last step (t={t_last}), although the model's eps was finite at "
        "every step: an update overflowed (x_T or eps too large?); clip_x0=True bounds the predicted x0")


def _first_weight(model: Any) -> torch.Tensor | None:
    if not isinstance(model, torch.nn.Module):
        return None
    return next(iter(model.parameters()), None)


def _shape_text(model: Any) -> str:
    want = expected_input_shape(model)
    return "shape (B, ...)" if want is None else f"shape (B, {', '.join(str(d) for d in want)})"
