"""Recipe machinery: TOML tables -> frozen config dataclasses, field by field, with errors that name the key.

Every recipe section is a frozen dataclass defined next to the stage that owns it, with a docstring under each
field. `build(cls, table, "[curate]")` checks every key against the fields (nested tables become nested
sections), coerces values to the declared types (lists become tuples, `Literal[...]` fields accept only their
choices) and reports an unknown key with the closest known name. `stable_hash` gives the content hashes that
stage paths and cache keys are made of. Pure Python: no torch, no mlflow.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from typing import Any, get_args, get_origin

from tasks.core.typed import dump


class RecipeError(ValueError):
    """The recipe is wrong; the message names each key and its fix."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         "the recipe has problems:\n  - " + "\n  - ".join(self.problems))


def suggest(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def field_doc(cls: type, name: str) -> str:
    """The docstring written under a field (first line), for messages and generated docs."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return ""
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            return str(nxt.value.value).strip().splitlines()[0]
    return ""


def build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """A `cls` section from a TOML table; RecipeError lists every bad key of the table."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems, kwargs = [], {}
    raw = _move_keys(cls, raw, where, problems)
    for key in sorted(set(raw) - set(fields)):
        problems.append(f"{where}: unknown key {key!r}{suggest(key, fields)}; known keys: {sorted(fields)}")
    for key, value in raw.items():
        if key not in fields:
            continue
        try:
            kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
        except RecipeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RecipeError(problems)
    return cls(**kwargs)


def _move_keys(cls: type, raw: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """Keys a section has moved into sub-tables (`cls.MOVED`: old -> 'sub.key') are still read, with a warning."""
    import logging

    moved = getattr(cls, "MOVED", {})
    if not set(raw) & set(moved):
        return raw
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for old in sorted(set(raw) & set(moved)):
        sub, leaf = moved[old].split(".", 1)
        table = raw.setdefault(sub, {})
        if not isinstance(table, dict) or leaf in table:
            problems.append(f"{where}: {old!r} and {where[:-1]}.{sub}].{leaf} are both set; keep the second")
            raw.pop(old)
            continue
        table[leaf] = raw.pop(old)
        logging.getLogger("keel").warning(f"recipe {where}.{old} is now {where[:-1]}.{sub}].{leaf}; "
                                          "please update the recipe")
    return raw


def coerce(value: Any, typ: Any, where: str) -> Any:
    origin = get_origin(typ)
    if dataclasses.is_dataclass(typ):
        return build(typ, value, where)
    if origin is typing.Literal:
        choices = get_args(typ)
        if value not in choices:
            raise RecipeError(f"{where} = {value!r} is not allowed; choose one of {list(choices)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        args = [a for a in get_args(typ) if a is not Ellipsis] or [Any]
        items = [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a table, got {value!r}")
        _, inner = get_args(typ)
        return {str(k): coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {value!r}")
        return value
    if typ in (int, float):
        if isinstance(value, bool):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{where}: expected {'an integer' if typ is int else 'a number'}, got {value!r}") from None
        if typ is int and isinstance(value, float) and value != out:
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        return out
    if typ is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def as_dict(section: Any) -> dict[str, Any]:
    """Plain JSON values of a section (tuples as lists): what is logged and hashed."""
    return dump(section)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hash of JSON-serialisable parts (dataclasses included), independent of dict order."""
    blob = json.dumps(dump_any(parts), sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def dump_any(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dump(obj)
    if isinstance(obj, (list, tuple)):
        return [dump_any(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): dump_any(v) for k, v in obj.items()}
    return obj
