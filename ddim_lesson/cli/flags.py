"""The one dataclass-to-argparse bridge of every command and benchmark script, and its one comma-list parser.

Each command's flags are built from a dataclass: one flag per field, typed from the annotation and
defaulting to the field's default (or ``default_factory``); the dataclass's ``__post_init__`` checks
the values. Annotation -> flag:

- ``int``, ``float``, ``str`` (also ``X | None``, shown as "auto"): one value;
- ``bool``: ``--x`` / ``--no-x``;
- ``tuple[int, ...]``, ``tuple[float, ...]``, ``tuple[str, ...]``: a comma list ``a,b,c`` (:func:`comma_list`;
  empty items are dropped from a list of names, refused in a list of numbers);
- ``dict[K, V]``: a comma list of ``K=V`` pairs, e.g. ``1000=500,100=800``;
- any other tuple (say of pairs): a comma list whose items go through the field's ``parse``.

Field metadata: ``help``; ``choices`` (of the value, or of each item of a tuple); ``positional`` (an
argument, not a flag); ``parse`` (an argparse type for a scalar field, or the converter of one item of a
tuple field); ``example`` (what a good value looks like, for the error message of a bad item);
``skip_empty`` (drop empty items of a tuple field, so that ``''`` is the empty tuple); ``shown`` (the default
as the help shows it, where ``None`` means something other than "auto").
Errors are one line (:class:`OneLineParser` raises :class:`CLIError`), printed with exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_ITEM_NAMES = {int: "integers", float: "numbers", str: "names"}
_SAMPLES = {int: (1, 2, 3), float: (0.5, 1.0), str: ("a", "b")}


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): raised as CLIError."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise CLIError(message)


def script_parser(doc: str) -> OneLineParser:
    """The parser of a benchmark script: the first line of its docstring ``doc`` as description, the rest as epilog."""
    head, _, rest = doc.strip("\n").partition("\n")
    return OneLineParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)


def comma_list(convert: Callable[[str], T], example: str, skip_empty: bool = False,
               choices: Collection[Any] | None = None) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for "a,b,c": each item through ``convert`` (and, with ``choices``, one of them).

    A bad item is refused naming the whole value, the item (when there are several) and ``example``.
    """

    def parse(s: str) -> tuple[T, ...]:
        out, items = [], [v for v in s.split(",") if v or not skip_empty]
        for item in items:
            try:
                out.append(convert(item))
            except (ValueError, TypeError):
                which = f" (bad item {item!r})" if len(items) > 1 else ""
                raise argparse.ArgumentTypeError(f"expected {example}, got {s!r}{which}") from None
            if choices is not None and out[-1] not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {item!r} in {s!r} (choose from "
                                                 + ", ".join(map(str, choices)) + ")")
        return tuple(out)

    return parse


def key_value(key: Callable[[str], Any], value: Callable[[str], Any]) -> Callable[[str], tuple[Any, Any]]:
    """The converter of one "K=V" item: ``"1000=500"`` -> ``(key("1000"), value("500"))``."""

    def convert(item: str) -> tuple[Any, Any]:
        k, v = item.split("=")  # ValueError unless exactly one "="
        return key(k), value(v)

    return convert


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unoptional(typ: Any) -> Any:
    """``int | None`` -> int."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0] if len(args) == 1 else typ
    return typ


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _text(v: Any) -> str:
    """One item as the command line writes it: 0.5, 10, sigma_hat, a pair as 0:10."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return ":".join(map(_text, v))
    return str(v)


def _show(v: Any) -> str:
    """A list default as the command line writes it: 10,20,50 or 1000=500 ("none" when empty)."""
    if isinstance(v, dict):
        return ",".join(f"{_text(k)}={_text(x)}" for k, x in v.items()) or "none"
    return ",".join(map(_text, v)) or "none"


def _list_type(name: str, typ: Any, meta: Any, default: Any) -> tuple[Callable[[str], Any], str]:
    """(argparse type, help head) of a tuple or dict field."""
    args, choices, parse = typing.get_args(typ), meta.get("choices"), meta.get("parse")
    if typing.get_origin(typ) is dict:
        pairs = comma_list(key_value(*args), meta.get("example", "K=V pairs like 1=2,3=4"), skip_empty=True)
        return (lambda s: dict(pairs(s))), "comma-separated K=V pairs"
    item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
    if parse is None and item not in _ITEM_NAMES:
        raise TypeError(f"field {name}: give metadata 'parse' (an item converter) for a {typ} field")
    convert = parse or item
    what = f"comma-separated {_ITEM_NAMES.get(item, 'items')}"
    shown = default or _SAMPLES.get(item, ())
    example = meta.get("example", f"{what} like {_show(shown)}")
    head = {int: "comma-separated ints", float: "comma-separated numbers"}.get(item, "comma-separated")
    return comma_list(convert, example, skip_empty=meta.get("skip_empty", item is str), choices=choices), head


def add_dataclass_args(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> list[argparse.Action]:
    """One flag per dataclass field, typed from the annotation, defaulting to the field default.

    Field metadata may give ``help``, ``choices``, ``positional``, ``parse`` and ``example`` (see the
    module docstring). Returns the argparse actions added, in field order.
    """
    hints, actions = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        default, meta = _default(f), f.metadata
        if f.name in skip or (default is dataclasses.MISSING and not meta.get("positional")):
            continue
        typ, help_ = _unoptional(hints[f.name]), meta.get("help", "")
        if meta.get("positional"):
            kw: dict[str, Any] = {"help": help_}
            if default is not dataclasses.MISSING:
                kw |= {"nargs": "?", "default": default, "help": f"{help_} (default: {default})"}
            actions.append(p.add_argument(f.name, type=meta.get("parse", typ), **kw))
        elif typ is bool:
            actions.append(p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=default,
                                          help=help_))
        elif typing.get_origin(typ) in (tuple, dict):
            convert, head = _list_type(f.name, typ, meta, default)
            allowed = "; allowed: " + ", ".join(map(str, meta["choices"])) if meta.get("choices") else ""
            actions.append(p.add_argument(_flag(f.name), type=convert, default=default,
                                          help=f"{help_ or head}{allowed} (default: {_show(default)})"))
        else:
            shown = meta.get("shown", "auto" if default is None else repr(default))
            actions.append(p.add_argument(_flag(f.name), type=meta.get("parse", typ), default=default,
                                          choices=meta.get("choices"), help=f"{help_} (default: {shown})".strip()))
    return actions


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """``cls`` built from the parsed flags that name its fields (its ``__post_init__`` checks them)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})
