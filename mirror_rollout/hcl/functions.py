"""The Terraform functions the project's .tf files use, with Terraform's semantics.

Each takes already-evaluated arguments; an Unknown argument makes the result
Unknown (as in Terraform), which ``call`` handles once for all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mirror_rollout.hcl.values import Unknown, first_unknown, map_leaves


class FunctionError(ValueError):
    """A function was called with arguments it cannot take."""


def to_string(value: Any) -> str:
    """Terraform's string conversion (used by templates and tostring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if value is None:
        raise FunctionError("cannot use a null value in a string")
    raise FunctionError(f"cannot convert {type_name(value)} to string")


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "tuple"
    return "null" if value is None else type(value).__name__


def _merge(*maps: Any) -> dict:
    out: dict = {}
    for m in maps:
        if m is None:
            continue
        if not isinstance(m, dict):
            raise FunctionError(f"merge takes maps or objects, got {type_name(m)}")
        out.update(m)
    return out


def _normalise_numbers(value: Any) -> Any:
    return map_leaves(value, lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)


def jsonencode(value: Any) -> str:
    # Terraform sorts object keys, writes compact JSON and escapes <, > and &.
    text = json.dumps(_normalise_numbers(value), sort_keys=True, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_FORMAT_VERB = re.compile(r"%(?:(%)|([-+# 0]*)(\d*)(?:\.(\d+))?([vdsqftbxXeEgGo]))")


def _format(spec: str, *args: Any) -> str:
    values = iter(args)

    def verb(match: re.Match) -> str:
        if match.group(1):
            return "%"
        try:
            arg = next(values)
        except StopIteration:
            raise FunctionError(f"format {spec!r}: not enough arguments") from None
        flags, width, precision, kind = match.group(2, 3, 4, 5)
        if kind in "sv":
            text = to_string(arg) if not isinstance(arg, dict | list) else jsonencode(arg)
        elif kind == "q":
            text = json.dumps(to_string(arg))
        elif kind == "d":
            if not isinstance(arg, int | float) or isinstance(arg, bool):
                raise FunctionError(f"format {spec!r}: %d needs a number, got {type_name(arg)}")
            text = str(int(arg))
        elif kind == "t":
            text = to_string(bool(arg))
        else:
            text = ("%" + flags + width + ("." + precision if precision else "") + kind) % arg
            return text
        return f"{text:{'<' if '-' in flags else '>'}{width}}" if width else text

    out = _FORMAT_VERB.sub(verb, spec)
    if next(values, _END) is not _END:
        raise FunctionError(f"format {spec!r}: too many arguments")
    return out


_END = object()


def _concat(*lists: Any) -> list:
    out: list = []
    for item in lists:
        if not isinstance(item, list):
            raise FunctionError(f"concat takes lists, got {type_name(item)}")
        out.extend(item)
    return out


_MISSING = object()


def _lookup(mapping: Any, key: Any, default: Any = _MISSING) -> Any:
    if not isinstance(mapping, dict):
        raise FunctionError(f"lookup takes a map, got {type_name(mapping)}")
    if key in mapping:
        return mapping[key]
    if default is _MISSING:
        raise FunctionError(f"lookup: the map has no key {key!r} and no default was given")
    return default


def tonumber(value: Any) -> int | float | None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise FunctionError(f"cannot convert {value!r} to a number")


def _length(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise FunctionError(f"length takes a string, list or map, got {type_name(value)}")


def _toset(value: Any) -> list:
    if not isinstance(value, list):
        raise FunctionError(f"toset takes a list, got {type_name(value)}")
    unique = list(dict.fromkeys(value))
    return sorted(unique) if all(isinstance(v, str) for v in unique) else unique


def _contains(collection: Any, value: Any) -> bool:
    if not isinstance(collection, list):
        raise FunctionError(f"contains takes a list, got {type_name(collection)}")
    return value in collection


def _join(separator: str, *lists: Any) -> str:
    return separator.join(to_string(v) for item in lists for v in item)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "merge": _merge,
    "jsonencode": jsonencode,
    "format": _format,
    "lower": lambda s: to_string(s).lower(),
    "upper": lambda s: to_string(s).upper(),
    "concat": _concat,
    "lookup": _lookup,
    "tostring": lambda v: v if v is None else to_string(v),
    "tonumber": tonumber,
    "length": _length,
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "toset": _toset,
    "tolist": lambda v: list(v),
    "contains": _contains,
    "join": _join,
}


#: Functions that only rearrange their arguments: an unknown *inside* a list or
#: map argument stays an unknown element of the result, as in Terraform.
STRUCTURAL = frozenset({"merge", "concat", "lookup", "length", "keys", "tolist"})


def call(name: str, args: list[Any]) -> Any:
    """Call function ``name``; raises KeyError for a function we do not support."""
    function = FUNCTIONS[name]
    if name in STRUCTURAL:
        unknown = next((a for a in args if isinstance(a, Unknown)), None)
    else:
        unknown = first_unknown(args)
    if unknown is not None:
        return Unknown(unknown.ref, detail=args[0] if name == "jsonencode" else None)
    try:
        return function(*args)
    except TypeError as exc:  # wrong arity
        raise FunctionError(f"{name}(): {exc}") from None
