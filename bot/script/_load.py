"""Load a script file: strict YAML, schema validation, includes, one resolved script.

Every problem becomes a :class:`~bot.script._findings.Finding` at ``file:line:col``; nothing
here raises anything but :class:`~bot.script._findings.ScriptError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.script import _model as m
from bot.script._findings import Finding, ScriptError, Severity
from bot.script._yaml import LoadedYaml, Mark, load_yaml

MAX_INCLUDE_DEPTH = 5
_Item = TypeVar("_Item", m.Prompt, m.Exercise)


def _model_keys() -> frozenset[str]:
    """Every key any script model accepts: the vocabulary for "did you mean"."""
    keys: set[str] = set()
    for obj in vars(m).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel:
            for name, info in obj.model_fields.items():
                keys.add(info.alias or name)
    return frozenset(keys)


_KEYS = _model_keys()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a prompt or exercise was defined: its file and its path in that file."""

    source: LoadedYaml
    path: tuple[str | int, ...]

    def mark(self, *sub: str | int, key: bool = False) -> Mark:
        """The mark of this item, or of a path below it."""
        return self.source.mark_for((*self.path, *sub), key=key)


@dataclass(frozen=True)
class LoadedScript:
    """A validated script with its includes resolved.

    Attributes:
        file: The path the script was loaded from.
        model: The validated file content.
        source: The YAML with marks, for locating findings.
        prompts: Prompts by id, this file's and included ones.
        exercises: Exercises by id, this file's and included ones.
        steps: Steps by id, in file order.
        origins: Where each prompt (``prompt:ID``) and exercise (``exercise:ID``) is written.
    """

    file: Path
    model: m.ScriptFile
    source: LoadedYaml
    prompts: dict[str, m.Prompt]
    exercises: dict[str, m.Exercise]
    steps: dict[str, m.Step]
    origins: dict[str, Origin] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The script's id."""
        return self.model.script.id

    @property
    def meta(self) -> m.Meta:
        """The script's metadata block."""
        return self.model.script

    @property
    def first_step(self) -> str | None:
        """The id of the step a client starts at, if the script has steps."""
        return self.model.steps[0].id if self.model.steps else None

    def step_index(self, step_id: str) -> int:
        """The position of a step in the file."""
        return list(self.steps).index(step_id)

    def step_mark(self, step_id: str, *sub: str | int, key: bool = False) -> Mark:
        """The mark of a step, or of a path below it."""
        return self.source.mark_for(("steps", self.step_index(step_id), *sub), key=key)

    def following(self, step_id: str) -> str | None:
        """The step that comes after ``step_id`` when it has no explicit jump."""
        step = self.steps[step_id]
        if step.next is not None:
            return step.next
        ids = list(self.steps)
        position = ids.index(step_id)
        return ids[position + 1] if position + 1 < len(ids) else None

    def calm_for(self, own: list[str]) -> list[str]:
        """The de-escalation exercises that apply: the step's own, else the script's."""
        return own or list(self.meta.calm)


def load_script(path: Path, *, display_name: str | None = None) -> LoadedScript:
    """Load, validate and resolve one script file.

    Args:
        path: The script file.
        display_name: How to name the file in findings (defaults to ``str(path)``).

    Raises:
        ScriptError: With every error found, each at ``file:line:col``.
    """
    return _load(path, display_name or str(path), ())


def _load(path: Path, name: str, stack: tuple[Path, ...]) -> LoadedScript:
    source = load_yaml(path, display_name=name)
    if source.data is None:
        raise ScriptError([_finding(Mark(name, 1, 1), "the file is empty", "schema-empty")])
    if not isinstance(source.data, dict):
        raise ScriptError(
            [_finding(source.mark_for(()), "a script is a mapping of keys", "schema-type")]
        )
    try:
        model = m.ScriptFile.model_validate(source.data)
    except ValidationError as exc:
        raise ScriptError(list(_schema_findings(exc, source))) from None

    prompts: dict[str, m.Prompt] = {}
    exercises: dict[str, m.Exercise] = {}
    origins: dict[str, Origin] = {}
    errors: list[Finding] = []
    here = path.resolve()
    for index, include in enumerate(model.includes):
        mark = source.mark_for(("includes", index))
        target = (path.parent / include).resolve()
        if target == here or target in stack:
            errors.append(_finding(mark, f"include cycle: `{include}` includes this file again",
                                   "include-cycle"))
            continue
        if len(stack) >= MAX_INCLUDE_DEPTH:
            errors.append(_finding(mark, "includes are nested too deeply", "include-depth"))
            continue
        if not target.is_file():
            errors.append(_finding(mark, f"cannot find the included file `{include}`",
                                   "include-missing"))
            continue
        try:
            lent = _load(target, str(path.parent / include), (*stack, here))
        except ScriptError as exc:
            errors.extend(exc.findings)
            continue
        for item_id, prompt in lent.prompts.items():
            prompts[item_id] = prompt
            origins[f"prompt:{item_id}"] = lent.origins[f"prompt:{item_id}"]
        for item_id, exercise in lent.exercises.items():
            exercises[item_id] = exercise
            origins[f"exercise:{item_id}"] = lent.origins[f"exercise:{item_id}"]

    _own_items(source, "prompt", model.prompts, prompts, origins, errors)
    _own_items(source, "exercise", model.exercises, exercises, origins, errors)

    steps: dict[str, m.Step] = {}
    for index, step in enumerate(model.steps):
        if step.id in steps:
            first = source.mark_for(("steps", list(steps).index(step.id), "id"))
            errors.append(_finding(
                source.mark_for(("steps", index, "id")),
                f"step id `{step.id}` is already used on line {first.line}",
                "duplicate-step",
            ))
            continue
        steps[step.id] = step
    if model.script.kind is m.ScriptKind.EXERCISE and not model.steps:
        errors.append(_finding(source.mark_for(("script",), key=True),
                               "an exercise script needs `steps`", "schema-no-steps"))
    if errors:
        raise ScriptError(errors)
    return LoadedScript(path, model, source, prompts, exercises, steps, origins)


def _own_items(
    source: LoadedYaml,
    kind: str,
    items: list[_Item],
    into: dict[str, _Item],
    origins: dict[str, Origin],
    errors: list[Finding],
) -> None:
    """Add this file's prompts or exercises, reporting ids already taken."""
    for index, item in enumerate(items):
        key = f"{kind}:{item.id}"
        origin = Origin(source, (f"{kind}s", index))
        if key in origins:
            first = origins[key].mark()
            errors.append(_finding(
                origin.mark("id"),
                f"{kind} id `{item.id}` is already used at {first.file}:{first.line}",
                f"duplicate-{kind}",
            ))
            continue
        into[item.id] = item
        origins[key] = origin


def _finding(mark: Mark, message: str, code: str) -> Finding:
    return Finding(mark.file, mark.line, mark.col, Severity.ERROR, message, code)


def _schema_findings(exc: ValidationError, source: LoadedYaml) -> Iterator[Finding]:
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
        message, code, is_key = _explain(error, loc)
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        yield _finding(source.mark_for(loc, key=is_key), message, code)


def _explain(error: Any, loc: tuple[str | int, ...]) -> tuple[str, str, bool]:
    """A therapist-readable message, a code and whether the key (not the value) is at fault."""
    kind: str = error["type"]
    where = _dotted(loc)
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        close = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        return f"unknown key `{key}`{hint}", "schema-unknown-key", True
    if kind == "missing":
        return f"`{where}` is missing", "schema-missing", False
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"`{where}` must be a whole number", "schema-type", False
    if kind in ("string_type",):
        return f"`{where}` must be text", "schema-type", False
    if kind in ("bool_type", "bool_parsing"):
        return f"`{where}` must be true or false", "schema-type", False
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        wanted = "a list" if kind == "list_type" else "a mapping of keys"
        return f"`{where}` must be {wanted}", "schema-type", False
    if kind == "string_pattern_mismatch":
        return (f"`{where}` is not a valid name here: use lower-case letters, digits and "
                "dashes (or underscores for variables)", "schema-pattern", False)
    if kind == "string_too_long":
        return (f"`{where}` is too long (at most {ctx.get('max_length')} characters)",
                "schema-too-long", False)
    if kind == "string_too_short":
        return f"`{where}` must not be empty", "schema-empty", False
    if kind in ("too_long", "too_short"):
        return f"`{where}`: {error['msg'].lower()}", "schema-length", False
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"`{where}`: {error['msg'].lower()}", "schema-range", False
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        return f"`{where}`: {text}", "schema-invalid", False
    return f"`{where}`: {error['msg']}", "schema-invalid", False


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "script"
