"""``rehearse check``: the safety proofs for a loaded script, and advice for its author.

The proofs are about the engine's actual behaviour (:mod:`bot.engine._steps`):

1. Every step is reachable from the first step and every path ends in an ``end`` step
   (no dead ends, no loops without a way out, no jump to a step that does not exist).
2. No prompt that can be above level 1 and no role-play is reachable from the first step
   without passing a check-in.
3. Every check-in and role-play has one or two calming exercises (its own ``calm`` or the
   script's) that exist, calm the body and ask for no writing. The engine's built-in loop
   (calm, re-rate, at most two rounds, then a gentle close) then always re-rates and exits.
4. Every text compiles in the sandbox, names only known variables and, rendered with long
   sample values, fits Telegram's limits; conditions are valid and name known variables.
5. Strict YAML is the loader's proof (:mod:`bot.script._yaml`); its findings are reported as
   they are.

Every finding is located at the most precise ``file:line:col`` known and carries a stable code.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, meta
from jinja2.exceptions import SecurityError, TemplateSyntaxError

# ``bot.render`` imports from this package, so it is bound as a module (usable once both
# are initialised, whichever is imported first) rather than name by name.
from bot import render
from bot.script import _model as m
from bot.script._expr import ExpressionError, parse_condition
from bot.script._findings import Finding, ScriptError, Severity
from bot.script._graph import StepGraph, own_calm, path_to
from bot.script._load import LoadedScript, load_script, script_files, script_folders
from bot.script._yaml import LoadedYaml, Mark, Path_, read_regular

__all__ = ["BUILTIN_VARIABLES", "check_paths", "check_script"]

#: The variables the engine gives every template and condition (``Context.variables``).
BUILTIN_VARIABLES: tuple[str, ...] = (
    "name", "level", "max_level", "distress", "expected", "actual", "relief",
    "connection_count", "last_connection", "exercises_done", "character",
)  # fmt: skip
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
_DEFINE_IT = ("Define it with `set:`, `save_as:` or a choice's `set:`, or use a built-in: "
              + ", ".join(BUILTIN_VARIABLES))
#: Parses templates only to list the variables they read.
_NAMES_ENV = Environment()


def check_script(script: LoadedScript, renderer: render.Renderer) -> list[Finding]:
    """Check a loaded script: the safety proofs, its texts and advice for its author.

    Args:
        script: A script that loaded without errors.
        renderer: The renderer whose sandbox compiles and renders the texts.

    Returns:
        Errors and warnings sorted by file, line and column.
    """
    return _sorted(_Checker(script, renderer).run())


def check_paths(paths: Sequence[Path], *, prompts_dir: Path | None = None) -> list[Finding]:
    """Load and check script files; never raises.

    Args:
        paths: Script files, and directories whose ``*.yaml`` files are checked.
        prompts_dir: Also check the system texts of every locale in this directory.

    Returns:
        Every finding of every file (loading problems included), sorted by file, line and
        column; an unexpected failure becomes an ``internal`` error at the file's 1:1.
    """
    renderer = render.Renderer({})
    folders = script_folders(paths)
    findings: list[Finding] = []
    for path in paths:
        findings += _guarded(str(path), functools.partial(_check_path, path, folders, renderer))
    if prompts_dir is not None:
        for locale in _locales(prompts_dir):
            findings += _guarded(str(prompts_dir / locale / "texts.yaml"),
                                 functools.partial(render.check_texts, prompts_dir, locale))
            rules = prompts_dir / locale / "crisis_rules.yaml"
            findings += _guarded(str(rules), functools.partial(_check_crisis_rules, rules))
    return _sorted(findings)


def _check_crisis_rules(path: Path) -> list[Finding]:
    """Load a locale's crisis rule book; its mistakes as findings."""
    from bot.crisis import load_rules  # noqa: PLC0415 - bot.crisis builds on this package

    try:
        load_rules(path)
    except ScriptError as exc:
        return list(exc.findings)
    return []


# --- files ------------------------------------------------------------------------------------


def _check_path(
    path: Path, folders: Sequence[Path], renderer: render.Renderer
) -> list[Finding]:
    """Check a script file, or every ``*.yaml`` file of a directory."""
    return [finding for file in script_files([path])
            for finding in _check_file(file, folders, renderer)]


def _locales(prompts_dir: Path) -> list[str]:
    """The locales with a texts file in ``prompts_dir`` (``en`` if there are none)."""
    try:
        found = sorted(p.name for p in prompts_dir.iterdir() if (p / "texts.yaml").is_file())
    except OSError:
        found = []
    return found or ["en"]


def _check_file(file: Path, folders: Sequence[Path], renderer: render.Renderer) -> list[Finding]:
    def load_and_check() -> list[Finding]:
        try:
            script = load_script(file, folders=folders)
        except ScriptError as exc:
            return exc.findings
        return check_script(script, renderer)

    return _guarded(str(file), load_and_check)


def _guarded(file: str, work: Callable[[], list[Finding]]) -> list[Finding]:
    """Run ``work``; an unexpected exception becomes an ``internal`` finding at ``file:1:1``."""
    try:
        return work()
    except Exception as exc:  # the boundary: a checker bug must never traceback the CLI
        message = (f"internal error while checking this file ({type(exc).__name__}: {exc}); "
                   "please report it")
        return [Finding(file, 1, 1, Severity.ERROR, message, "internal")]


def _sorted(findings: list[Finding]) -> list[Finding]:
    unique = dict.fromkeys(findings)
    return sorted(unique, key=lambda f: (f.file, f.line, f.col, f.code, f.message))


# --- texts and where they are written ---------------------------------------------------------


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


def _step_texts(step: m.Step) -> Iterator[tuple[Path_, str | None, bool]]:
    """(path below the step, text, wrapped) of every text a step shows."""
    yield ("say",), step.say, False
    yield ("connection",), step.connection, False
    yield ("end",), step.end, False
    if step.ask is not None:
        yield ("ask", "text"), step.ask.text, False
    if step.checkin is not None:
        yield ("checkin", "question"), step.checkin.question, False
    if step.prompt is not None:
        yield ("prompt", "intro"), step.prompt.intro, False
    if step.roleplay is not None:
        yield ("roleplay", "scene"), step.roleplay.scene, True
        yield ("roleplay", "debrief"), step.roleplay.debrief, False
        for index, turn in enumerate(step.roleplay.turns):
            for field in ("says", "hint", "example", "smaller"):
                yield ("roleplay", "turns", index, field), getattr(turn, field), True


class _SourceLines:
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


def _did_you_mean(word: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _route(parents: dict[str, str | None], step_id: str) -> str:
    """How a search reached a step, for a message: the path, or that it is the first step."""
    path = path_to(parents, step_id)
    return _shown_path(path) if len(path) > 1 else "it is the first step"


def _shown_path(path: list[str]) -> str:
    """A path of step ids for a message, shortened in the middle when long."""
    shown = path if len(path) <= 6 else [*path[:2], "…", *path[-3:]]
    return " → ".join(shown)


# --- the checker ------------------------------------------------------------------------------


class _Checker:
    """Checks one script; :meth:`run` returns its findings."""

    def __init__(self, script: LoadedScript, renderer: render.Renderer) -> None:
        self.script = script
        self.meta = script.meta
        self.steps = script.steps
        self.renderer = renderer
        self.graph = StepGraph(script)
        self.lines = _SourceLines()
        self.findings: list[Finding] = []
        defined = _defined_variables(script)
        self.samples = {**_BUILTIN_SAMPLES, **defined}
        self.known = frozenset(self.samples)
        self.defined = frozenset(defined)
        self.assigned = self._assigned()
        self._problems: dict[str, list[render.TemplateProblem]] = {}
        self._lengths: dict[str, int | render.RenderError] = {}
        self._names: dict[str, frozenset[str]] = {}
        self._min_level = _min_level_by_topic(script.prompts.values())

    def run(self) -> list[Finding]:
        """Run every check and return the findings."""
        self._check_default_calm()
        self._check_prompts()
        self._check_exercises()
        self._check_texts()
        if self.steps:
            for step_id, step in self.steps.items():
                self._check_step(step_id, step)
            self._check_flow()
            self._check_checkin_first()
            self._check_level_jumps()
            self._check_after_checkin()
        if self.meta.kind is m.ScriptKind.EXERCISE:
            self._check_unused()
        return self.findings

    # -- reporting --

    def _error(self, mark: Mark, code: str, message: str) -> None:
        self.findings.append(Finding(mark.file, mark.line, mark.col, Severity.ERROR, message, code))

    def _warn(self, mark: Mark, code: str, message: str) -> None:
        self.findings.append(
            Finding(mark.file, mark.line, mark.col, Severity.WARNING, message, code)
        )

    def _item_mark(self, kind: str, item_id: str, *sub: str | int) -> Mark:
        return self.script.origins[f"{kind}:{item_id}"].mark(*sub)

    def _own(self, kind: str, item_id: str) -> bool:
        return self.script.origins[f"{kind}:{item_id}"].source is self.script.source

    # -- proof 3: de-escalation --

    def _check_default_calm(self) -> None:
        for index, exercise_id in enumerate(self.meta.calm):
            self._check_calm(exercise_id, self.script.source.mark_for(("script", "calm", index)))

    def _check_step_calm(self, step_id: str, kind: str, own: list[str]) -> None:
        for index, exercise_id in enumerate(own):
            self._check_calm(exercise_id, self.graph.mark(step_id, kind, "calm", index))
        if not own and not self.meta.calm:
            what = "check-in" if kind == "checkin" else "role-play"
            self._error(self.graph.mark(step_id, kind, key=True), "no-calm", (
                f"{what} `{step_id}` has nothing to calm with: add `calm: [paced-breathing]` "
                "(a breathing, grounding, relaxation or self-talk exercise) to it, or a default "
                "`calm:` under `script:`. With high distress the bot runs these exercises, asks "
                "for a new rating after each (at most two rounds) and otherwise closes the "
                "session gently."))

    def _check_calm(self, exercise_id: str, mark: Mark) -> None:
        exercise = self.script.exercises.get(exercise_id)
        if exercise is None:
            hint = _did_you_mean(exercise_id, self.script.exercises)
            self._error(mark, "calm-unknown", f"there is no exercise `{exercise_id}`{hint} "
                        "(define it under `exercises:` or include a file that does)")
        elif not exercise.kind.calming:
            self._error(mark, "calm-not-calming", (
                f"`{exercise_id}` is a {exercise.kind.value} exercise, which does not calm the "
                "body; use a breathing, grounding, relaxation or self-talk exercise to "
                "de-escalate"))
        elif any(page.write is not None for page in exercise.pages):
            self._error(mark, "calm-not-calming", (
                f"`{exercise_id}` asks the client to write; an exercise that calms high distress "
                "must not ask for free text (use `say` pages only)"))

    # -- prompts, exercises and their levels --

    def _check_prompts(self) -> None:
        for prompt_id, prompt in self.script.prompts.items():
            lowest = self._min_level.get(prompt.topic, prompt.level)
            if prompt.smaller is None and lowest >= prompt.level:
                self._error(self._item_mark("prompt", prompt_id), "no-smaller-step", (
                    f"prompt `{prompt_id}` has no smaller step: add `smaller:` with a gentler "
                    f"wording, or a lower-level prompt on topic `{prompt.topic}`"))
            if prompt.level > self.meta.level and self._own("prompt", prompt_id):
                self._error(self._item_mark("prompt", prompt_id, "level"), "level-above-script",
                            f"prompt `{prompt_id}` is level {prompt.level}, but this script goes "
                            f"no deeper than level {self.meta.level} (`script.level`)")

    def _check_exercises(self) -> None:
        for exercise_id, exercise in self.script.exercises.items():
            for index, page in enumerate(exercise.pages):
                if page.button is not None:
                    mark = self._item_mark("exercise", exercise_id, "pages", index, "button")
                    self._check_label(page.button, mark)

    def _check_label(self, label: str, mark: Mark) -> None:
        if len(label) > render.MAX_LABEL_LENGTH:
            self._error(mark, "button-too-long", f"this button label has {len(label)} "
                        f"characters; keep it to {render.MAX_LABEL_LENGTH} so it fits on a phone")

    def _fixed_level(self, spec: m.PromptStep) -> int:
        """The level a prompt step asks for (``current`` counts as the script's level)."""
        return self.meta.level if spec.level == "current" else spec.level

    def _prompt_reach(self, spec: m.PromptStep) -> int:
        """The deepest level a prompt step can ever show (the engine never exceeds the script)."""
        return min(self._fixed_level(spec), self.meta.level)

    # -- proof 4: texts --

    def _check_texts(self) -> None:
        for text in self._texts():
            self._check_text(text)

    def _texts(self) -> Iterator[_Text]:
        for step_id, step in self.steps.items():
            base = ("steps", self.graph.position[step_id])
            for sub, source, wrapped in _step_texts(step):
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
                message += f". {_DEFINE_IT}"
            where = self.lines.template_line(mark, problem.line)
            report = self._warn if problem.code == "template-html" else self._error
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
            self._error(self.lines.template_line(mark, _line_naming(text.source, name)),
                        "template-unknown-variable", (
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
            self._error(where, "template-unsafe", f"this text is refused when rendered: {exc}")
        else:
            self._error(where, "template-render",
                        f"this text fails when rendered {_SAMPLES_NOTE}: {exc}")

    def _too_long(self, mark: Mark, problem: str) -> None:
        self._error(mark, "template-too-long",
                    f"rendered {_SAMPLES_NOTE}, this text {problem}. Shorten it or split it "
                    "into two steps")

    # -- steps --

    def _check_step(self, step_id: str, step: m.Step) -> None:
        if step.checkin is not None:
            self._check_step_calm(step_id, "checkin", step.checkin.calm)
        elif step.roleplay is not None:
            self._check_step_calm(step_id, "roleplay", step.roleplay.calm)
            self._check_turns(step_id, step.roleplay)
        elif step.prompt is not None:
            self._check_prompt_step(step_id, step.prompt)
        elif step.ask is not None:
            self._check_ask(step_id, step.ask)
        elif step.branch is not None:
            self._check_branch(step_id, step.branch)
        elif step.exercise is not None and step.exercise not in self.script.exercises:
            hint = _did_you_mean(step.exercise, self.script.exercises)
            self._error(self.graph.mark(step_id, "exercise"), "unknown-exercise",
                        f"there is no exercise `{step.exercise}`{hint} (define it under "
                        "`exercises:` or include a file that does)")

    def _check_turns(self, step_id: str, play: m.RolePlay) -> None:
        for index, turn in enumerate(play.turns):
            mark = self.graph.mark(step_id, "roleplay", "turns", index)
            if turn.smaller is None and turn.example is None:
                self._error(mark, "no-smaller-step", "this turn has no smaller step: add "
                            "`smaller:` (a gentler line) or `example:` (a modelled answer)")
            elif turn.example is None:
                self._warn(mark, "turn-without-example", "this turn has no `example:`; a "
                           "modelled answer at the same level helps the client go deeper")
            if turn.level > self.meta.level:
                self._error(self.graph.mark(step_id, "roleplay", "turns", index, "level"),
                            "level-above-script", f"this turn is level {turn.level}, but this "
                            f"script goes no deeper than level {self.meta.level} "
                            "(`script.level`)")
            if turn.hostile and index == 0:
                self._error(
                    self.graph.mark(step_id, "roleplay", "turns", index, "hostile", key=True),
                    "hostile-first-turn", "a scene may not open with a hostile line; start "
                    "with a gentler turn so the client can settle into the role-play")

    def _check_prompt_step(self, step_id: str, spec: m.PromptStep) -> None:
        if isinstance(spec.level, int) and spec.level > self.meta.level:
            self._error(self.graph.mark(step_id, "prompt", "level"), "level-above-script",
                        f"this step asks for level {spec.level}, but this script goes no "
                        f"deeper than level {self.meta.level} (`script.level`)")
        reach = self._prompt_reach(spec)
        lowest = min(self._min_level.values(), default=reach + 1) if spec.topic is None else (
            self._min_level.get(spec.topic, reach + 1))
        if lowest > reach:
            topic = f" on topic `{spec.topic}`" if spec.topic else ""
            self._error(self.graph.mark(step_id, "prompt"), "prompt-pool-empty",
                        f"this step can never show a prompt: there is no prompt{topic} at "
                        f"level {reach} or below; add one or change `topic`/`level`")

    def _check_ask(self, step_id: str, ask: m.Ask) -> None:
        for index, choice in enumerate(ask.choices):
            self._check_label(choice.label, self.graph.mark(step_id, "ask", "choices", index,
                                                            "label"))

    def _check_branch(self, step_id: str, arms: list[m.BranchArm]) -> None:
        for index, arm in enumerate(arms):
            if arm.if_ is None:
                continue
            mark = self.graph.mark(step_id, "branch", index, "if")
            try:
                condition = parse_condition(arm.if_)
            except ExpressionError as exc:
                self._error(self.lines.in_value(mark, exc.col - 1), "condition-invalid",
                            f"this condition cannot be used: {exc}")
                continue
            for name in sorted(condition.names - self.known):
                hint = _did_you_mean(name, self.known)
                self._error(mark, "condition-unknown-variable",
                            f"unknown variable `{name}`{hint}. {_DEFINE_IT}")

    # -- proof 1: every step reachable, every path ends --

    def _check_flow(self) -> None:
        graph = self.graph
        settled = self._check_targets()
        reached = graph.search(self.script.first_step)
        for step_id in graph.order:
            if step_id not in reached:
                self._error(graph.mark(step_id), "unreachable-step", (
                    f"step `{step_id}` is never reached from the first step "
                    f"(`{self.script.first_step}`): point a `next`, `goto` or branch at it, "
                    "or remove it"))
        ends = {step_id for step_id, step in self.steps.items() if step.end is not None}
        if not ends:
            self._error(self.script.source.mark_for(("steps",), key=True), "missing-end",
                        "this script has no `end` step; add one (e.g. `- id: closing` with "
                        "`end: …`) where the session should close")
            return
        for step_id in reached:
            if any(edge.target is None for edge in graph.edges(step_id)):
                settled.add(step_id)
                self._error(graph.mark(step_id), "dead-end", (
                    f"the script runs out after step `{step_id}`: nothing follows it. Add "
                    "`next:` pointing to a step, or put an `end` step after it"))
        self._check_way_out(reached, ends | settled)

    def _check_targets(self) -> set[str]:
        """Report jumps to steps that do not exist; return the steps that have one."""
        graph, faulty = self.graph, set()
        for step_id in graph.order:
            for edge in graph.edges(step_id):
                if edge.target is not None and edge.target not in self.steps:
                    faulty.add(step_id)
                    hint = _did_you_mean(edge.target, self.steps)
                    self._error(graph.mark(step_id, *edge.path), "unknown-step",
                                f"there is no step `{edge.target}`{hint}")
        return faulty

    def _check_way_out(self, reached: Collection[str], finished: set[str]) -> None:
        """Report where a path enters steps from which no `end` can be reached."""
        before = self.graph.predecessors()
        can_finish = set(finished)
        queue = deque(finished)
        while queue:
            for source in before[queue.popleft()]:
                if source not in can_finish:
                    can_finish.add(source)
                    queue.append(source)
        trapped = {step_id for step_id in reached if step_id not in can_finish}
        for step_id in (s for s in reached if s in trapped):  # in the order they are reached
            entered = step_id == self.script.first_step or any(
                source in reached and source in can_finish for source in before[step_id])
            if entered:
                loop = _shown_path(self._loop_from(step_id, trapped))
                self._error(self.graph.mark(step_id), "dead-end", (
                    f"no path from step `{step_id}` reaches an `end`: it only goes {loop}. "
                    "Add a choice, branch or `next` that leads to an `end` step"))

    def _loop_from(self, start: str, trapped: set[str]) -> list[str]:
        path, here = [start], start
        while len(path) < 8:
            here = next(s for s in self.graph.successors(here) if s in trapped)
            path.append(here)
            if path.count(here) > 1:
                break
        return path

    # -- proof 2: a check-in before anything deeper than level 1 --

    def _check_checkin_first(self) -> None:
        parents = self.graph.search(self.script.first_step,
                                    lambda step_id: self.steps[step_id].checkin is not None)
        for step_id in parents:
            step = self.steps[step_id]
            route = _route(parents, step_id)
            if step.roleplay is not None:
                self._error(self.graph.mark(step_id), "no-checkin-before-roleplay", (
                    f"role-play `{step_id}` can be reached without a check-in ({route}); put a "
                    "`checkin` step before it on every path"))
            elif step.prompt is not None and self._prompt_reach(step.prompt) >= 2:
                self._error(self.graph.mark(step_id), "no-checkin-before-prompt", (
                    f"step `{step_id}` can show a level-{self._prompt_reach(step.prompt)} prompt "
                    f"and can be reached without a check-in ({route}); put a `checkin` step "
                    "before it on every path (only level-1 prompts may come first)"))

    # -- advice --

    def _check_level_jumps(self) -> None:
        for step_id, step in self.steps.items():
            if step.prompt is None:
                continue
            here = self._fixed_level(step.prompt)
            for target in self._next_prompt_steps(step_id):
                spec = self.steps[target].prompt
                assert spec is not None
                there = self._fixed_level(spec)
                if there > here + 1:
                    self._warn(self.graph.mark(target), "level-jump", (
                        f"the level jumps from {here} (step `{step_id}`) to {there} here; "
                        "consider a prompt at the level in between"))

    def _next_prompt_steps(self, step_id: str) -> list[str]:
        """The prompt steps that can come next after ``step_id`` with no prompt in between."""
        seen: set[str] = set()
        found: list[str] = []
        queue = deque(self.graph.successors(step_id))
        while queue:
            target = queue.popleft()
            if target in seen:
                continue
            seen.add(target)
            if self.steps[target].prompt is not None:
                found.append(target)
            else:
                queue.extend(self.graph.successors(target))
        return found

    def _check_after_checkin(self) -> None:
        def after(step_id: str) -> bool:
            checkin = self.steps[step_id].checkin
            return checkin is not None and checkin.moment is m.Moment.AFTER

        parents = self.graph.search(self.script.first_step, after)
        for step_id in parents:
            if self.steps[step_id].end is not None:
                route = _route(parents, step_id)
                self._warn(self.graph.mark(step_id), "no-after-checkin", (
                    f"the session can end here without an `after` check-in ({route}); add a "
                    "`checkin` with `moment: after` before it, so the client can notice how "
                    "it went"))

    def _check_unused(self) -> None:
        drawable = self._drawable_levels()
        for prompt_id, prompt in self.script.prompts.items():
            reach = max(drawable.get(None, 0), drawable.get(prompt.topic, 0))
            if (self._own("prompt", prompt_id) and prompt.level <= self.meta.level
                    and prompt.level > reach):
                self._warn(self._item_mark("prompt", prompt_id), "unused-prompt", (
                    f"no prompt step can ever show prompt `{prompt_id}` (topic "
                    f"`{prompt.topic}`, level {prompt.level}); add a `prompt` step for it or "
                    "remove it"))
        used = set(self.meta.calm)
        for step in self.steps.values():
            used.update([step.exercise] if step.exercise else [])
            used.update(own_calm(step) or [])
        for exercise_id in self.script.exercises:
            if self._own("exercise", exercise_id) and exercise_id not in used:
                self._warn(self._item_mark("exercise", exercise_id), "unused-exercise",
                           f"exercise `{exercise_id}` is never used; run it with an `exercise` "
                           "step, name it in a `calm:` list, or remove it")

    def _drawable_levels(self) -> dict[str | None, int]:
        """The deepest level prompt steps can draw, by topic (None: steps of any topic)."""
        deepest: dict[str | None, int] = {}
        for step in self.steps.values():
            if step.prompt is not None:
                topic = step.prompt.topic
                deepest[topic] = max(deepest.get(topic, 0), self._prompt_reach(step.prompt))
        return deepest


def _min_level_by_topic(prompts: Collection[m.Prompt]) -> dict[str, int]:
    lowest: dict[str, int] = {}
    for prompt in prompts:
        lowest[prompt.topic] = min(lowest.get(prompt.topic, prompt.level), prompt.level)
    return lowest


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
