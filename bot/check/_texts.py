"""Proof 4 of ``rehearse check``: every text compiles, names known variables, and fits.

Every text of a script (its steps', as their kinds list them, its prompts' and exercises')
compiles in the renderer's sandbox, names only variables that are set wherever it is shown,
and, rendered with the longest values the engine can give, fits Telegram's limits.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, meta
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from bot import render
from bot.check._graph import StepGraph, own_calm
from bot.check._report import Report
from bot.engine.steps import kind_of
from bot.script import _model as m
from bot.script._findings import ScriptError
from bot.script._load import LoadedScript
from bot.script._model import BUILTIN_VARIABLES
from bot.script._yaml import LoadedYaml, Mark, Path_, read_regular

#: The longest value each built-in can have when the engine renders a text.
_BUILTIN_SAMPLES: dict[str, object] = {
    "name": "N" * 64,  # Telegram's longest first name
    "level": 5,
    "max_level": 5,
    "distress": 10,
    "expected": 10,
    "actual": 10,
    "relief": "a-little",  # the longest of yes, a-little, no
    "connection_count": 10,
    "last_connection": "C" * 500,  # the engine keeps at most 500 characters
    "exercises_done": 10,
    "character": "R" * 30,  # the schema's longest character name
}
_SAMPLES_NOTE = (f"with long sample values (a {len(str(_BUILTIN_SAMPLES['name']))}-character "
                 "name, numbers like 10, saved answers at their longest)")
#: Room left for the system text the engine wraps around a role-play line, hint or example.
WRAP_MARGIN = 200
_PLAIN_BREAKERS = frozenset("{<&")
DEFINE_IT = ("Define it with `set:`, `save_as:` or a choice's `set:`, or use a built-in: "
              + ", ".join(BUILTIN_VARIABLES))
#: Parses templates only to list the variables they read.
_NAMES_ENV = Environment()


@dataclass(frozen=True, slots=True)
class _Text:
    """One template text of a script, with where it is written.

    Attributes:
        source: The template.
        yaml: The file it is written in.
        path: Its path in that file.
        assigned: The script's variables that are set whenever the text is shown.
        wrapped: Whether the engine shows it inside a system text (a role-play frame or
            line, a hint, an example, a smaller prompt), which needs room of its own.
    """

    source: str
    yaml: LoadedYaml
    path: Path_
    assigned: frozenset[str]
    wrapped: bool = False


class SourceLines:
    """The lines of script files, read on demand, to place marks inside multi-line texts."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def lines(self, file: str) -> list[str]:
        """The lines of ``file`` (empty if it cannot be read again)."""
        if file not in self._files:
            try:
                raw = read_regular(Path(file), file=file)
                self._files[file] = raw.decode("utf-8-sig").splitlines()
            except (ScriptError, UnicodeError):
                self._files[file] = []
        return self._files[file]

    def indicator(self, mark: Mark) -> str:
        """The character a value starts with: a quote, ``|``, ``>`` or its first letter."""
        lines = self.lines(mark.file)
        return lines[mark.line - 1][mark.col - 1 : mark.col] if mark.line <= len(lines) else ""

    def in_value(self, mark: Mark, offset: int) -> Mark:
        """The mark ``offset`` characters into a one-line value (after any opening quote)."""
        quote = 1 if self.indicator(mark) in ("'", '"') else 0
        return Mark(mark.file, mark.line, mark.col + quote + offset)

    def template_line(self, mark: Mark, line: int) -> Mark:
        """The file position of line ``line`` of the text whose value starts at ``mark``.

        Block texts (``|``, ``>``) start on the line after the indicator; ``|`` keeps every
        line break, while folded and flow texts turn a blank line into a line break.
        """
        indicator = self.indicator(mark)
        block = indicator in ("|", ">")
        if line <= 1 and not block:
            return mark
        lines = self.lines(mark.file)
        if not lines:
            return Mark(mark.file, mark.line + line - 1, 1)
        start = mark.line + 1 if block else mark.line
        found = start + line - 1 if indicator == "|" else _folded_line(lines, start, line)
        found = min(found, len(lines))
        text = lines[found - 1]
        return Mark(mark.file, found, len(text) - len(text.lstrip()) + 1)


def _folded_line(lines: list[str], start: int, line: int) -> int:
    """The file line where line ``line`` of a folded text starting at ``start`` begins."""
    here, breaks = start, 0
    while breaks < line - 1 and here < len(lines):
        here += 1
        breaks += not lines[here - 1].strip()
    while here < len(lines) and not lines[here - 1].strip():
        here += 1
    return here


def _is_plain(source: str) -> bool:
    """Whether a text has no template syntax and no HTML, so that it renders as itself."""
    return _PLAIN_BREAKERS.isdisjoint(source)


def _line_naming(source: str, name: str) -> int:
    """The first line of a template that mentions ``name`` (1 if none does)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    return next((n for n, line in enumerate(source.splitlines(), 1) if word.search(line)), 1)


class TextCheck:
    """Checks every text of one script (proof 4) into a :class:`Report`."""

    def __init__(self, script: LoadedScript, renderer: render.Renderer, graph: StepGraph,
                 lines: SourceLines, report: Report) -> None:
        self.script = script
        self.steps = script.steps
        self.renderer = renderer
        self.graph = graph
        self.lines = lines
        self.report = report
        defined = _defined_variables(script)
        self.samples = {**_BUILTIN_SAMPLES, **defined}
        self.known = frozenset(self.samples)
        self.defined = frozenset(defined)
        self.assigned = self._assigned()
        self._problems: dict[str, list[render.TemplateProblem]] = {}
        self._lengths: dict[str, int | render.RenderError] = {}
        self._names: dict[str, frozenset[str]] = {}

    def run(self) -> None:
        """Check every text."""
        for text in self._texts():
            self._check_text(text)

    def _texts(self) -> Iterator[_Text]:
        for step_id, step in self.steps.items():
            base = ("steps", self.graph.position[step_id])
            for sub, source, wrapped in kind_of(step).texts(step):
                if source is not None:
                    yield _Text(source, self.script.source, (*base, *sub),
                                self.assigned[step_id], wrapped)
        at_prompts = self._assigned_where(lambda step: step.prompt is not None)
        for prompt_id, prompt in self.script.prompts.items():
            origin = self.script.origins[f"prompt:{prompt_id}"]
            yield _Text(prompt.text, origin.source, (*origin.path, "text"), at_prompts)
            if prompt.smaller is not None:
                yield _Text(prompt.smaller, origin.source, (*origin.path, "smaller"), at_prompts,
                            True)
        at_exercises = self._assigned_where(
            lambda step: step.exercise is not None or own_calm(step) is not None)
        for exercise_id, exercise in self.script.exercises.items():
            origin = self.script.origins[f"exercise:{exercise_id}"]
            for index, page in enumerate(exercise.pages):
                field = "say" if page.say is not None else "write"
                source = page.say if page.say is not None else page.write
                assert source is not None  # a page has exactly one of them
                yield _Text(source, origin.source, (*origin.path, "pages", index, field),
                            at_exercises)

    def _assigned(self) -> dict[str, frozenset[str]]:
        """For every step, the script's variables set on every path from the first step to it.

        A forward data-flow analysis: the sets only shrink, so it ends; an unreachable step
        keeps every variable (it is reported as unreachable instead).
        """
        assigned = dict.fromkeys(self.graph.order, self.defined)
        first = self.script.first_step
        if first is None:
            return assigned
        assigned[first] = frozenset()
        seen, queue = {first}, deque([first])
        while queue:
            here = queue.popleft()
            for edge in self.graph.edges(here):
                target = edge.target
                if target not in assigned:
                    continue
                narrowed = assigned[target] & (assigned[here] | edge.sets)
                if target not in seen or narrowed != assigned[target]:
                    seen.add(target)
                    assigned[target] = narrowed
                    queue.append(target)
        return assigned

    def _assigned_where(self, shows: Callable[[m.Step], bool]) -> frozenset[str]:
        """The variables set at every step that ``shows`` a shared text (prompt, exercise)."""
        sets = [self.assigned[step_id] for step_id, step in self.steps.items() if shows(step)]
        return frozenset.intersection(*sets) if sets else self.defined

    def _check_text(self, text: _Text) -> None:
        mark = text.yaml.mark_for(text.path)
        problems = self._template_problems(text.source)
        for problem in problems:
            message = problem.message
            if problem.code == "template-unknown-variable":
                message += f". {DEFINE_IT}"
            where = self.lines.template_line(mark, problem.line)
            report = self.report.warn if problem.code == "template-html" else self.report.error
            report(where, problem.code, message)
        if any(p.code != "template-html" for p in problems):
            return
        self._check_unset(text, mark)
        length = self._rendered_length(text.source)
        if isinstance(length, render.RenderError):
            self._render_failed(mark, length)
            return
        limit = render.MAX_MESSAGE_LENGTH - (WRAP_MARGIN if text.wrapped else 0)
        if length > limit:
            room = " (it is shown inside a frame, which needs room of its own)"
            self._too_long(mark, f"renders to {length:,} characters; keep it under "
                           f"{limit:,}{room if text.wrapped else ''}")

    def _check_unset(self, text: _Text, mark: Mark) -> None:
        """Report script variables a text reads that some path leaves unset (it would fail)."""
        unset = [name for name in self.defined - text.assigned if name in text.source]
        if not unset:  # a cheap test first: parsing is the slow part
            return
        for name in sorted(self._variables(text.source).intersection(unset)):
            where = self.lines.template_line(mark, _line_naming(text.source, name))
            self.report.error(where, "template-unknown-variable", (
                f"`{name}` may not be set yet when this text is shown: on some path to it no "
                "`set:` or `save_as:` has given it a value, and the text would fail. Give it "
                f"a value on every path, e.g. `set: {{{name}: ''}}` on a choice that skips, or "
                "a `set` step near the start"))

    def _template_problems(self, source: str) -> list[render.TemplateProblem]:
        if _is_plain(source):
            return []
        if source not in self._problems:
            self._problems[source] = self.renderer.check(source, self.known)
        return self._problems[source]

    def _variables(self, source: str) -> frozenset[str]:
        """The variables a template reads (none for plain text)."""
        if _is_plain(source):
            return frozenset()
        if source not in self._names:
            try:
                names = meta.find_undeclared_variables(_NAMES_ENV.parse(source))
            except TemplateSyntaxError:
                names = set()
            self._names[source] = frozenset(names)
        return self._names[source]

    def _rendered_length(self, source: str) -> int | render.RenderError:
        """The text's length as Telegram counts it, rendered with the longest sample values."""
        if _is_plain(source):
            return render.visible_length(source.strip())
        if source not in self._lengths:
            try:
                rendered = self.renderer.text(source, self.samples)
                self._lengths[source] = render.visible_length(rendered)
            except render.RenderError as exc:
                self._lengths[source] = exc
        return self._lengths[source]

    def _render_failed(self, mark: Mark, exc: render.RenderError) -> None:
        if exc.line is None and exc.__cause__ is None:  # the renderer's length limit
            self._too_long(mark, f"is too long: {exc}")
            return
        where = self.lines.template_line(mark, exc.line or 1)
        if isinstance(exc.__cause__, SecurityError):
            self.report.error(where, "template-unsafe",
                              f"this text is refused when rendered: {exc}")
        else:
            self.report.error(where, "template-render",
                              f"this text fails when rendered {_SAMPLES_NOTE}: {exc}")

    def _too_long(self, mark: Mark, problem: str) -> None:
        self.report.error(mark, "template-too-long",
                          f"rendered {_SAMPLES_NOTE}, this text {problem}. Shorten it or split "
                          "it into two steps")


def _defined_variables(script: LoadedScript) -> dict[str, object]:
    """Variables the script defines (``set``, ``save_as``), each with its longest sample."""
    samples: dict[str, object] = {}

    def offer(name: str, value: object) -> None:
        if len(str(value)) >= len(str(samples.get(name, ""))):
            samples[name] = value

    for step in script.steps.values():
        for name, value in (step.set or {}).items():
            offer(name, value)
        if step.ask is None:
            continue
        for choice in step.ask.choices:
            if step.ask.save_as is not None:
                offer(step.ask.save_as, choice.value or choice.label)
            for name, value in (choice.set or {}).items():
                offer(name, value)
        if step.ask.save_as is not None:
            offer(step.ask.save_as, "")
        free = step.ask.free_text
        if free is not None and free.save_as is not None:
            offer(free.save_as, 10 if free.number else "W" * free.max_length)
    return samples
