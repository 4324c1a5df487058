"""The one harness every exercise checker calls the learner's function through.

``call_learner`` runs the learner's function on copies of the inputs and turns everything that can go
wrong inside it into a message the learner can act on, never a traceback from the checker:

- ``raise NotImplementedError`` (the stub) becomes :class:`NotAttempted` ("not attempted yet");
- any other exception becomes :class:`LearnerError`, an AssertionError that names the exception,
  the line of the learner's code that raised it, and the inputs it was called with;
- an input changed in place (``x0 *= ...``, ``x0.mul_(...)``) becomes an AssertionError that
  names the argument, since the caller's tensor would be lost.

Every ``check_*`` is wrapped by :func:`checker`, so a wrong answer reaches the learner as
:class:`CheckFailed`: an AssertionError that Jupyter renders as its message alone (the hint), without
the checker's own frames above it.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import torch

TOL = 1e-5  # inputs are float64, so only a real mistake is this large


class NotAttempted(Exception):
    pass


class CheckFailed(AssertionError):
    """A checker's verdict on a wrong answer. IPython shows ``_render_traceback_``'s lines instead of a
    traceback, so the learner reads the hint alone; outside IPython it is an ordinary AssertionError."""

    def _render_traceback_(self) -> list[str]:
        red, bold, reset = "\x1b[31m", "\x1b[1m", "\x1b[0m"
        return [f"{red}{bold}Not yet:{reset} {red}{line}{reset}" if i == 0 else f"{red}{line}{reset}"
                for i, line in enumerate(str(self).splitlines() or [""])]


F = TypeVar("F", bound=Callable[..., bool])


def checker(check: F) -> F:
    """Wrap a ``check_*`` function: any AssertionError it raises reaches the learner as :class:`CheckFailed`."""

    @functools.wraps(check)
    def wrapped(*args: Any, **kwargs: Any) -> bool:
        try:
            return check(*args, **kwargs)
        except CheckFailed:
            raise
        except AssertionError as err:
            raise CheckFailed(str(err)) from None

    return wrapped  # type: ignore[return-value]


class LearnerError(CheckFailed):
    """The learner's function raised an exception; the message says which, where, and on what inputs.

    ``error`` is the exception the learner's code raised, so a checker can add a hint for a known one.
    """

    def __init__(self, message: str, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


def _arg_names(fn: Callable[..., Any], n: int) -> list[str]:
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return (names + [f"argument {i + 1}" for i in range(len(names), n)])[:n]


def _describe(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}" if value.ndim else f"{value.item():g}"
    if isinstance(value, float):
        return f"{value:g}"
    return type(value).__name__ if not isinstance(value, (int, str)) else repr(value)


def _where(fn: Callable[..., Any], err: BaseException) -> str:
    """' at line N of fn: `code`' for the deepest frame of the traceback inside the learner's file."""
    code = getattr(fn, "__code__", None)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if code is not None and f.filename == code.co_filename]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f" at line {f.lineno - code.co_firstlineno + 1} of {f.name}: `{line}`"


def call_learner(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the learner's function on copies of the inputs.

    NotImplementedError means "not attempted yet"; any other exception comes back as a
    :class:`LearnerError`; an input changed in place as an AssertionError naming it.
    """
    copies = [a.clone() if torch.is_tensor(a) else a for a in args]
    try:
        out = fn(*copies)
    except NotImplementedError:
        raise NotAttempted() from None
    except Exception as err:  # noqa: BLE001 - anything the learner's code raises becomes a hint
        names = _arg_names(fn, len(args))
        inputs = ", ".join(f"{n} = {_describe(a)}" for n, a in zip(names, args))
        raise LearnerError(f"your function raised {type(err).__name__}: {err}{_where(fn, err)}\n"
                           f"It was called with {inputs}.", err) from None
    for name, a, c in zip(_arg_names(fn, len(args)), args, copies):
        if torch.is_tensor(a) and not torch.equal(a, c):
            raise AssertionError(
                f"your function changed its input `{name}` in place (with `{name} *= ...`, `{name}.mul_(...)`, "
                f"`{name}[...] = ...` or similar), so the caller's `{name}` is lost after the call.\n"
                f"Hint: compute into a new tensor instead, e.g. `out = c * {name} + ...`, and leave the inputs as "
                "they were.")
    return out


def not_attempted(name: str, what: str) -> bool:
    print(f"{name}: not attempted yet. {what}\nReplace `raise NotImplementedError` with your code and run the "
          "checker again.")
    return False


def as_tensor(out: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_tensor(out):
        raise AssertionError(f"{what} should be a torch.Tensor, got {type(out).__name__}")
    if out.shape != like.shape:
        raise AssertionError(f"{what} should have shape {tuple(like.shape)}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise AssertionError(f"{what} has NaN or inf entries")
    return out.double()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(b))


def case_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def case_randn(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)
