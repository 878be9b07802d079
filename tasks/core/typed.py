"""Typed values <-> JSON: stage results are dataclasses, stored in stage markers and read back typed.

`dump(obj)` turns a dataclass tree (tuples, dicts, optionals, nested dataclasses) into plain JSON values;
`load(cls, data)` rebuilds it from the type hints, refusing values of the wrong shape, so a stage never receives
a half-understood dict from another. Field names map to JSON keys one to one.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, get_args, get_origin

T = typing.TypeVar("T")


class ShapeError(ValueError):
    """Stored data does not have the shape its type declares."""


def dump(obj: Any) -> Any:
    """A JSON-ready copy of a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [dump(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): dump(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a typed result")


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load(cls: type[T], data: Any, where: str = "") -> T:
    """Rebuild a value of type `cls` from JSON data; raises ShapeError naming the path of a bad value."""
    where = where or getattr(cls, "__name__", str(cls))
    return _load(cls, data, where)


def _load(typ: Any, data: Any, where: str) -> Any:
    if typ is Any:
        return data
    origin = get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = get_args(typ)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _load(arg, data, where)
            except ShapeError as exc:
                errors.append(str(exc))
        raise ShapeError(f"{where}: {data!r:.80} matches none of {args} ({'; '.join(errors)})")
    if dataclasses.is_dataclass(typ):
        if not isinstance(data, dict):
            raise ShapeError(f"{where}: expected an object for {typ.__name__}, got {type(data).__name__}")
        hints = _hints(typ)
        known = {f.name: f for f in dataclasses.fields(typ) if f.init}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ShapeError(f"{where}: unknown field(s) {unknown} for {typ.__name__}")
        kwargs = {}
        for name, f in known.items():
            if name in data:
                kwargs[name] = _load(hints[name], data[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ShapeError(f"{where}: missing field {name!r} of {typ.__name__}")
        return typ(**kwargs)
    if origin in (list, tuple):
        if not isinstance(data, (list, tuple)):
            raise ShapeError(f"{where}: expected a list, got {type(data).__name__}")
        args = get_args(typ)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(data):
                raise ShapeError(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(_load(a, x, f"{where}[{i}]") for i, (a, x) in enumerate(zip(args, data)))
        inner = args[0] if args else Any
        items = [_load(inner, x, f"{where}[{i}]") for i, x in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, dict):
            raise ShapeError(f"{where}: expected an object, got {type(data).__name__}")
        _, inner = get_args(typ) or (str, Any)
        return {str(k): _load(inner, v, f"{where}.{k}") for k, v in data.items()}
    if origin is typing.Literal:
        if data not in get_args(typ):
            raise ShapeError(f"{where}: {data!r} is not one of {get_args(typ)}")
        return data
    if typ is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ShapeError(f"{where}: expected a number, got {data!r:.80}")
        return float(data)
    if typ is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ShapeError(f"{where}: expected an integer, got {data!r:.80}")
        return data
    if typ in (str, bool):
        if not isinstance(data, typ):
            raise ShapeError(f"{where}: expected {typ.__name__}, got {data!r:.80}")
        return data
    if typ is type(None):
        if data is not None:
            raise ShapeError(f"{where}: expected null, got {data!r:.80}")
        return None
    raise TypeError(f"{where}: unsupported type {typ!r}")
