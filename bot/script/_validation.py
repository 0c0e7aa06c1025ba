"""Pydantic's validation errors, told in plain words at ``file:line:col``.

Scripts (:mod:`bot.script._load`) and the configuration (:mod:`bot.config`) are validated by
strict pydantic models; :func:`findings` turns what pydantic reports into one
:class:`~bot.script._findings.Finding` per problem, located at the value (or, for an unknown
key, at the key) in the YAML file, each with a ``schema-*`` code.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bot.script._findings import Finding, quoted
from bot.script._yaml import LoadedYaml, Path_


def findings(exc: ValidationError, source: LoadedYaml, root: type[BaseModel], *,
             patterns: Mapping[str, str] = {}, name: str = "") -> list[Finding]:
    """Every problem pydantic found in ``source``, once each.

    Args:
        exc: What validating ``source.data`` against ``root`` raised.
        source: The loaded YAML, for locating each problem.
        root: The model validated, whose keys "did you mean" suggests from.
        patterns: How to describe a value each regular expression accepts
            (``"a time like "21:00""``).
        name: What an empty location is called (``config``, ``script``).
    """
    found: list[Finding] = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
        of_key = loc[-1:] == ("[key]",)  # pydantic's mark of a mapping's key at fault
        loc = loc[:-1] if of_key else loc
        message, code, is_key = _explain(error, loc, root, patterns, name)
        finding = Finding.error(source.mark_for(loc, key=is_key or of_key), code, message)
        if finding not in found:
            found.append(finding)
    return found


def dotted(loc: Path_, name: str = "") -> str:
    """A location as an author writes it: ``steps[3].say`` (``name`` for none)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or name


def _explain(error: Any, loc: Path_, root: type[BaseModel], patterns: Mapping[str, str],
             name: str) -> tuple[str, str, bool]:
    """A plain-language message, a code, and whether the key (not the value) is at fault."""
    kind: str = error["type"]
    where = f"`{dotted(loc, name)}`"
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _keys_at(root, loc[:-1]), n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        section = f" in `{dotted(loc[:-1])}`" if len(loc) > 1 else ""
        return f"unknown key `{quoted(key)}`{section}{hint}", "schema-unknown-key", True
    if kind in _TYPES:
        return f"{where} {_TYPES[kind]}", "schema-type", False
    if kind == "missing":
        return f"{where} is missing", "schema-missing", False
    if kind in ("literal_error", "enum"):
        return f"{where} must be one of: {ctx.get('expected')}", "schema-invalid", False
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return (f"{where} must be {patterns.get(pattern, f'text matching {pattern}')}",
                "schema-pattern", False)
    if kind in _BOUNDS:
        words, bound = _BOUNDS[kind]
        return f"{where} must be {words} {ctx.get(bound)}", "schema-range", False
    if kind == "string_too_long":
        return (f"{where} is too long (at most {ctx.get('max_length')} characters)",
                "schema-too-long", False)
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return (f"{where} must not be empty" if least == 1
                else f"{where} must have at least {least} characters", "schema-empty", False)
    if kind in ("too_long", "too_short"):
        return f"{where}: {str(error['msg']).lower()}", "schema-length", False
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        joined = " " if text.startswith(("must ", "is ", "cannot ")) else ": "
        return f"{where}{joined}{text}", "schema-invalid", False
    return f"{where}: {error['msg']}", "schema-invalid", False


_TYPES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be text (put it in quotes)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "path_type": "must be a path (text)",
}
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _keys_at(root: type[BaseModel], loc: Path_) -> Collection[str]:
    """The keys the model at ``loc`` accepts (for "did you mean")."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part)) or next(
                (f for f in current.model_fields.values() if f.alias == part), None)
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(_names(current))
    return []


def _names(model: type[BaseModel]) -> Iterator[str]:
    for field_name, info in model.model_fields.items():
        yield info.alias or field_name


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from a type annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation
