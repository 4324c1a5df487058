"""The one dataclass-to-argparse bridge of the ``ddim-lesson`` command, and its one comma-list parser.

Each subcommand's flags are built from a dataclass (one flag per field, typed from the annotation,
defaulting to the field's default); the dataclass's ``__post_init__`` checks the values. Errors
are one line (:class:`OneLineParser` raises :class:`CLIError`), printed by ``cli.main`` with exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): raised as CLIError."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise CLIError(message)


def comma_list(convert: Callable[[str], T], example: str, skip_empty: bool = False) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for "a,b,c": each item through ``convert``; a bad item names ``example``."""

    def parse(s: str) -> tuple[T, ...]:
        try:
            return tuple(convert(v) for v in s.split(",") if v or not skip_empty)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {example}, got {s!r}") from None

    return parse


_int_tuple = comma_list(int, "comma-separated integers like 1,2,2")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unoptional(typ: Any) -> Any:
    """``int | None`` -> int."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0] if len(args) == 1 else typ
    return typ


def add_dataclass_args(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One flag per dataclass field, typed from the annotation, defaulting to the field default.

    Field metadata may give ``help``, ``choices``, and ``positional`` (an argument, not a flag).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or (f.default is dataclasses.MISSING and not f.metadata.get("positional")):
            continue
        typ, help_ = _unoptional(hints[f.name]), f.metadata.get("help", "")
        if f.metadata.get("positional"):
            kw: dict[str, Any] = {"help": help_}
            if f.default is not dataclasses.MISSING:
                kw |= {"nargs": "?", "default": f.default, "help": f"{help_} (default: {f.default})"}
            p.add_argument(f.name, type=typ, **kw)
        elif typ is bool:
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        elif typing.get_origin(typ) is tuple:
            p.add_argument(_flag(f.name), type=_int_tuple, default=f.default,
                           help=f"comma-separated ints (default: {','.join(map(str, f.default))})")
        else:
            default = "auto" if f.default is None else repr(f.default)
            p.add_argument(_flag(f.name), type=typ, default=f.default, choices=f.metadata.get("choices"),
                           help=f"{help_} (default: {default})".strip())


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """``cls`` built from the parsed flags that name its fields (its ``__post_init__`` checks them)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})
