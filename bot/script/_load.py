"""Load a script file: strict YAML, schema validation, includes, one resolved script.

Every problem becomes a :class:`~bot.script._findings.Finding` at ``file:line:col``; nothing
here raises anything but :class:`~bot.script._findings.ScriptError`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from bot.script import _model as m
from bot.script._findings import Finding, ScriptError, quoted
from bot.script._validation import findings
from bot.script._yaml import LoadedYaml, Mark, file_kind, load_yaml

#: The deepest includes may be nested: a script, a file it includes, … five levels down.
MAX_INCLUDE_DEPTH = 5
#: The most files one script reads: itself and every file it includes, directly or not.
MAX_LOAD_FILES = 50
#: The most bytes one script reads, itself and every file it includes together.
MAX_LOAD_BYTES = 2_000_000
#: The top-level keys of a script file; a file with none of them is not a script.
_TOP_KEYS = tuple(m.ScriptFile.model_fields)
_Item = TypeVar("_Item", m.Prompt, m.Exercise)


#: How a value each pattern of the script language accepts is described.
_PATTERNS = {
    m.SLUG: "a name of lower-case letters, digits and dashes (e.g. `breathe-first`)",
    m.VAR_NAME: "a variable name of lower-case letters, digits and underscores (e.g. "
                "`safe_person`)",
    m.LOCALE: "a locale like en, de or pt-BR",
}


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

    @functools.cached_property
    def _order(self) -> tuple[list[str], dict[str, int]]:
        """The step ids in file order, and each one's position."""
        order = list(self.steps)
        return order, {step_id: index for index, step_id in enumerate(order)}

    def step_index(self, step_id: str) -> int:
        """The position of a step in the file."""
        return self._order[1][step_id]

    def step_mark(self, step_id: str, *sub: str | int, key: bool = False) -> Mark:
        """The mark of a step, or of a path below it."""
        return self.source.mark_for(("steps", self.step_index(step_id), *sub), key=key)

    def following(self, step_id: str) -> str | None:
        """The step after ``step_id`` when it has no jump: its ``next``, else the one below."""
        step = self.steps[step_id]
        if step.next is not None:
            return step.next
        order, position = self._order
        index = position[step_id] + 1
        return order[index] if index < len(order) else None

    def calm_for(self, own: list[str]) -> list[str]:
        """The de-escalation exercises that apply: the step's own, else the script's."""
        return own or list(self.meta.calm)


def script_files(paths: Iterable[Path]) -> list[Path]:
    """The script files named by ``paths``: files as given, folders' ``*.yaml`` files sorted."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return files


def script_folders(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The folders scripts and their includes may be read from, fully resolved.

    Each folder named, and for each file named its folder and, if it is a link, the folder
    of the file it links to (naming a file is trusting it). A link inside a folder that
    leads out of all of them is refused when it is read.
    """
    folders: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [_real(path)]
        else:
            target = _real(path)
            found = [_real(path.parent), target.parent if target is not None else None]
        for folder in found:
            if folder is not None and folder not in folders:
                folders.append(folder)
    return tuple(folders)


def load_script(
    path: Path, *, display_name: str | None = None, folders: Sequence[Path] | None = None
) -> LoadedScript:
    """Load, validate and resolve one script file, reading only inside the script folders.

    Only regular files in ``folders`` (or below them) are read, the script's own file and
    every include, after resolving links; one load reads each file once and at most
    ``MAX_LOAD_FILES`` files and ``MAX_LOAD_BYTES`` bytes, includes nested at most
    ``MAX_INCLUDE_DEPTH`` deep.

    Args:
        path: The script file.
        display_name: How to name the file in findings (defaults to ``str(path)``).
        folders: The script folders, as :func:`script_folders` gives them (defaults to those
            of ``path`` alone).

    Raises:
        ScriptError: With every error found, each at ``file:line:col``.
    """
    name = display_name or str(path)
    loader = _Loader(script_folders([path]) if folders is None else tuple(folders))
    real = _real(path)
    if real is None or not loader.inside(real):
        message = (f"this file leads outside the script folders ({loader.shown_folders()}); "
                   "only files in them are read")
        raise ScriptError([Finding.error(Mark(name, 1, 1), "script-outside", message)])
    loaded = loader.load(path, real, name, ())
    if isinstance(loaded, list):
        raise ScriptError(loaded)
    return loaded.script


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A file loaded with its includes, and the longest chain of includes below it."""

    script: LoadedScript
    height: int


class _Loader:
    """One load: the folders it may read, every file it has read and what they cost."""

    def __init__(self, folders: tuple[Path, ...]) -> None:
        self.folders = folders
        self.done: dict[Path, _Resolved | list[Finding]] = {}
        self.bytes = 0

    def inside(self, real: Path) -> bool:
        """Whether a resolved path lies in one of the script folders."""
        return any(real.is_relative_to(folder) for folder in self.folders)

    def shown_folders(self) -> str:
        return ", ".join(str(folder) for folder in self.folders) or "none"

    def load(
        self, path: Path, real: Path, name: str, stack: tuple[Path, ...]
    ) -> _Resolved | list[Finding]:
        """Load a file once per load: ``path`` as named, ``real`` resolved inside the folders.

        Args:
            path: The file as named; its includes are relative to its folder.
            real: The file, resolved.
            name: How findings name it.
            stack: The files being loaded that include it, resolved.
        """
        if real not in self.done:
            try:
                self.done[real] = self._resolve(path, real, name, stack)
            except ScriptError as exc:
                self.done[real] = list(dict.fromkeys(exc.findings))
        return self.done[real]

    def _resolve(self, path: Path, real: Path, name: str, stack: tuple[Path, ...]) -> _Resolved:
        source = load_yaml(real, display_name=name)
        self.bytes += source.size
        model = _model(source, name)
        prompts: dict[str, m.Prompt] = {}
        exercises: dict[str, m.Exercise] = {}
        origins: dict[str, Origin] = {}
        errors: list[Finding] = []
        height = 0
        seen: dict[Path, int] = {}
        for index, include in enumerate(model.includes):
            mark = source.mark_for(("includes", index))
            lent = self._include(path.parent, include, mark, (*stack, real), seen)
            if isinstance(lent, list):
                errors.extend(lent)
                continue
            height = max(height, lent.height + 1)
            for item_id, prompt in lent.script.prompts.items():
                prompts[item_id] = prompt
                origins[f"prompt:{item_id}"] = lent.script.origins[f"prompt:{item_id}"]
            for item_id, exercise in lent.script.exercises.items():
                exercises[item_id] = exercise
                origins[f"exercise:{item_id}"] = lent.script.origins[f"exercise:{item_id}"]

        _own_items(source, "prompt", model.prompts, prompts, origins, errors)
        _own_items(source, "exercise", model.exercises, exercises, origins, errors)
        steps = _steps(source, model, errors)
        if errors:
            raise ScriptError(errors)
        return _Resolved(LoadedScript(Path(name), model, source, prompts, exercises, steps,
                                      origins), height)

    def _include(
        self, folder: Path, entry: str, mark: Mark, stack: tuple[Path, ...],
        seen: dict[Path, int],
    ) -> _Resolved | list[Finding]:
        """Load the file an entry of ``includes`` names, or say at the entry why not.

        Args:
            folder: The including file's folder (as named), which ``entry`` is relative to.
            entry: The entry as written.
            mark: Where it is written.
            stack: The files being loaded, resolved, the including file last.
            seen: The files this file's earlier entries named, with their lines.
        """
        path = folder / entry
        shown = f"`{quoted(entry)}`"

        def refuse(message: str, code: str) -> list[Finding]:
            return [Finding.error(mark, code, message)]

        target = _real(path)
        if target is None:
            return refuse(f"cannot read the included file {shown}", "include-missing")
        if not self.inside(target):
            return refuse(f"{shown} is outside the script folders ({self.shown_folders()}); "
                          "include only files kept with the scripts", "include-outside")
        if target in stack:
            return refuse(f"include cycle: {shown} includes this file again", "include-cycle")
        if target in seen:
            return refuse(f"{shown} is already included on line {seen[target]}; include each "
                          "file once", "include-duplicate")
        seen[target] = mark.line
        try:
            kind = file_kind(target)
        except OSError as exc:
            found = "find" if isinstance(exc, FileNotFoundError) else "read"
            return refuse(f"cannot {found} the included file {shown}", "include-missing")
        if kind is not None:
            return refuse(f"{shown} is {kind}, not a regular file; only regular files are read",
                          "include-not-a-file")
        fresh = target not in self.done
        if fresh and len(self.done) + len(stack) >= MAX_LOAD_FILES:
            return refuse(f"with {shown} this script would read more than {MAX_LOAD_FILES} "
                          "files (itself and everything it includes); use fewer files",
                          "include-budget")
        if fresh and self.bytes > MAX_LOAD_BYTES:
            return refuse(self._too_many_bytes(shown), "include-budget")
        lent = self.load(path, target, str(path), stack)
        if isinstance(lent, list):
            return lent
        if fresh and self.bytes > MAX_LOAD_BYTES:
            return refuse(self._too_many_bytes(shown), "include-budget")
        if lent.height + 1 > MAX_INCLUDE_DEPTH:
            return refuse(f"{shown} and the files it includes are nested {lent.height + 1} "
                          f"levels deep; includes may be nested at most {MAX_INCLUDE_DEPTH}",
                          "include-depth")
        return lent

    @staticmethod
    def _too_many_bytes(shown: str) -> str:
        return (f"with {shown} this script would read more than {MAX_LOAD_BYTES:,} bytes "
                "(itself and everything it includes together); use smaller files")


def _real(path: Path) -> Path | None:
    """``path`` with every link resolved, or None if that is impossible (a loop, a NUL)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _model(source: LoadedYaml, name: str) -> m.ScriptFile:
    """The validated content of a loaded file; a file that is no script is named, not quoted."""
    if source.data is None:
        raise ScriptError([Finding.error(Mark(name, 1, 1), "schema-empty", "the file is empty")])
    if not isinstance(source.data, dict):
        raise ScriptError(
            [Finding.error(source.mark_for(()), "schema-type", "a script is a mapping of keys")]
        )
    if not any(key in source.data for key in _TOP_KEYS):
        message = ("this is not a script: it has none of the keys "
                   + ", ".join(f"`{key}`" for key in _TOP_KEYS))
        raise ScriptError([Finding.error(Mark(name, 1, 1), "schema-not-a-script", message)])
    try:
        return m.ScriptFile.model_validate(source.data)
    except ValidationError as exc:
        raise ScriptError(findings(exc, source, m.ScriptFile, patterns=_PATTERNS,
                                  name="script")) from None


def _steps(source: LoadedYaml, model: m.ScriptFile, errors: list[Finding]) -> dict[str, m.Step]:
    """The steps by id, reporting ids used twice and an exercise script without steps."""
    steps: dict[str, m.Step] = {}
    for index, step in enumerate(model.steps):
        if step.id in steps:
            first = source.mark_for(("steps", list(steps).index(step.id), "id"))
            errors.append(Finding.error(
                source.mark_for(("steps", index, "id")),
                "duplicate-step",
                f"step id `{step.id}` is already used on line {first.line}",
            ))
            continue
        steps[step.id] = step
    if model.script.kind is m.ScriptKind.EXERCISE and not model.steps:
        errors.append(Finding.error(source.mark_for(("script",), key=True),
                                    "schema-no-steps", "an exercise script needs `steps`"))
    return steps


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
            errors.append(Finding.error(
                origin.mark("id"),
                f"duplicate-{kind}",
                f"{kind} id `{item.id}` is already used at {first.file}:{first.line}",
            ))
            continue
        into[item.id] = item
        origins[key] = origin
