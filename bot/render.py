"""Rendering: the one module that turns templates into text for the client.

Two kinds of template pass through here:

* **system texts** — every sentence the bot says on its own (consent, help, crisis, buttons …),
  loaded from ``prompts/<locale>/texts.yaml`` so that a practice can reword or translate them;
* **script texts** — the texts of therapist-authored scripts.

Both are Jinja2 templates rendered in an immutable sandbox with strict undefined variables and
HTML autoescaping. The result is Telegram HTML: tags written in a template (``<b>``, ``<i>`` …)
are kept, values are escaped. Jinja escapes ``'`` and ``"`` as the numeric entities ``&#39;``
and ``&#34;``, which Telegram accepts ("all numerical HTML entities are supported").

The sandbox is tightened beyond Jinja's defaults so that a template can neither reach outside
(no ``include``/``import``/``extends``, no ``|safe``, no private attributes, no autoescape
switch, no macros or recursive loops) nor run away: loops, numbers passed to functions and
every value a template builds are bounded, and so is the rendered length. Stray ``<``, ``>``
and ``&`` in a template and tags Telegram does not know are escaped, and unclosed tags are
closed, so a rendered text always parses as Telegram HTML; :meth:`Renderer.check` reports such
slips to the author.
"""

from __future__ import annotations

import difflib
import functools
import html
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_context,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from bot.engine import BUTTON_KEYS, COMMANDS, RISK_KINDS
from bot.script._findings import Finding, ScriptError, Severity
from bot.script._yaml import LoadedYaml, Mark, load_yaml

__all__ = [
    "MAX_COMMAND_DESCRIPTION",
    "MAX_LABEL_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "SYSTEM_TEXTS",
    "RenderError",
    "Renderer",
    "TemplateProblem",
    "check_texts",
    "load_texts",
    "plain_text",
    "visible_length",
]

#: Telegram's limit for one message, counted after the HTML is parsed.
MAX_MESSAGE_LENGTH = 4096
#: The longest button label we allow (Telegram shows about this much on a phone).
MAX_LABEL_LENGTH = 40
#: Loop iterations one render may run in total.
MAX_LOOP_ITERATIONS = 10_000
#: Numbers ``range()`` may produce in one call.
MAX_RANGE = 1_000
#: The largest number a template may pass to a function or filter.
MAX_NUMBER_ARGUMENT = 10_000
#: The longest text, list or mapping a template may build while rendering.
MAX_VALUE_LENGTH = 20_000
#: The largest whole number a template may build, in bits.
MAX_INT_BITS = 1_024
#: An escaped character takes at most this many characters of HTML (``&quot;``).
_ENTITY_WIDTH = 6
_CACHE_SIZE = 512

#: The Jinja filters texts may use; the rest can bypass escaping, are random, or can
#: allocate without bound (``center``, ``format``, ``indent``, ``batch`` …).
_FILTERS = frozenset(
    {
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "groupby", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round",
        "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
        "truncate", "unique", "upper", "wordcount",
    }
)  # fmt: skip
#: ``str`` methods refused: their format specs can allocate without bound.
_REFUSED_METHODS = frozenset({"format", "format_map"})
_LOOP_FILTER = "_rehearse_loop"
#: Tags Telegram's HTML parse mode understands.
_TELEGRAM_TAGS = frozenset(
    {
        "a", "b", "blockquote", "code", "del", "em", "i", "ins", "pre", "s", "span",
        "strike", "strong", "tg-emoji", "tg-spoiler", "u",
    }
)  # fmt: skip
_TAG_LIST = '<b>, <i>, <u>, <s>, <a href="…">, <code>, <pre>, <blockquote>, <tg-spoiler>'
_HTML_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>\s[^<>]*)?>"
    r"|(?P<entity>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);)"
    r"|(?P<stray>[<>&])"
)
_TAG = re.compile(r"<[^<>]*>")


class RenderError(Exception):
    """A template could not be compiled or rendered.

    Attributes:
        line: The 1-based line within the template where it went wrong, if known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


class TemplateProblem(NamedTuple):
    """One problem in a template's source.

    Attributes:
        line: The 1-based line within the template source.
        message: A plain-language explanation.
        code: ``template-syntax``, ``template-unsafe``, ``template-unknown-variable``
            or ``template-html``.
    """

    line: int
    message: str
    code: str


# --- the system texts and their variables ----------------------------------------------------

_SAFETY_PLAN = {
    "warning_signs": ["Pulling away from everyone", "Not sleeping", "Feeling like a burden"],
    "coping_steps": ["Paced breathing for five minutes", "A walk round the block", "A shower"],
    "people_places": ["Sam (my sister), 0123 456 789", "The library café"],
    "professionals": ["Dr Rivera, weekdays 9–17, 0123 000 000", "Out-of-hours line: 111"],
    "safe_surroundings": ["Give my spare medication to Sam to keep"],
}
_LINE_GROUPS = [
    {"kind": kind, "resources": [
        {"name": "988 Suicide & Crisis Lifeline", "contact": "Call or text 988", "note": "24/7"},
        {"name": "National Domestic Violence Hotline", "contact": "Call 1-800-799-7233",
         "note": ""},
    ]}
    for kind in RISK_KINDS
]
#: Longest description of a command in Telegram's menu.
MAX_COMMAND_DESCRIPTION = 256

#: Every system text: its key and the sample context it is checked with. The sample's keys
#: are exactly the variables the text may use; ``buttons.*`` keys are button labels.
SYSTEM_TEXTS: Mapping[str, Mapping[str, object]] = {
    "consent.intro": {"retention_days": 730, "answers_days": 90,
                      "therapist_delay": "before your next session"},
    "consent.adult": {},
    "consent.minor_refused": {},
    "consent.guardian_needed": {},
    "consent.free_text": {},
    "consent.share": {},
    "consent.reminders": {},
    "consent.changed": {},
    "consent.declined": {},
    "consent.done": {"opt_ins": ["store_free_text", "share_with_therapist", "reminders"]},
    "help": {},
    "privacy": {"retention_days": 730, "answers_days": 90},
    "stop.confirm": {},
    "stop.only_this": {},
    "stop.withdraw": {},
    "crisis.safety_plan": {"plan": _SAFETY_PLAN},
    "crisis.resources": {"groups": _LINE_GROUPS, "emergency": "911", "noticed": True,
                         "paused": True, "imminent": True},
    "crisis.are_you_safe": {},
    "crisis.not_safe": {"emergency": "911"},
    "crisis.safe": {},
    "crisis.hold": {},
    "crisis.welcome_back": {},
    "checkin.question": {},
    "checkin.expected": {},
    "checkin.actual": {},
    "checkin.relief": {},
    "checkin.body_cues": {},
    "checkin.body_info": {"cues": ["Tight chest", "Numb", "Far away"], "under": True},
    "checkin.high": {"distress": 8},
    "checkin.still_high": {},
    "checkin.thanks": {},
    "roleplay.frame": {
        "character": "Sam",
        "scene": "Sam, your partner, has just asked how your week really was.",
    },
    "roleplay.line": {"character": "Sam", "line": "You seem quiet tonight. What's on your mind?"},
    "roleplay.hint": {"hint": "Start with one true sentence about how you feel right now."},
    "roleplay.example": {"example": "I've been a bit low this week, and I'd like to tell you."},
    "roleplay.step_out": {"character": "Sam"},
    "prompt.ack": {},
    "prompt.smaller": {"text": "Name one small thing that made you smile this week."},
    "prompt.skip_reason": {},
    "prompt.skip_ack": {"reason": "private"},
    "prompt.none_left": {},
    "pause.done": {},
    "pause.resumed": {},
    "pause.nothing": {},
    "progress": {
        "exercises_done": 12,
        "smaller_steps": 4,
        "connections": 3,
        "level": 2,
        "max_level": 3,
        "prompts_shared": 9,
    },
    "settings.menu": {
        "pace": "gentle",
        "store_free_text": False,
        "share_with_therapist": True,
        "reminders": ["Mon 19:00", "Thu 19:00"],
        "timezone": "Europe/London",
        "region": "United Kingdom",
    },
    "settings.ask_timezone": {},
    "settings.ask_region": {"suggested": "Deutschland"},
    "settings.ask_reminder_time": {},
    "settings.saved": {},
    "settings.kept_answers": {},
    "settings.answers_deleted": {},
    "settings.answers_kept": {"answers_days": 90},
    "level.offer": {"level": 1, "next_level": 2},
    "level.up": {"level": 2},
    "level.stay": {},
    "unexpected.text_at_buttons": {},
    "unexpected.out_of_range": {"low": 0, "high": 10},
    "unexpected.too_long": {"limit": 1000},
    "unexpected.empty": {},
    "unexpected.stale_button": {},
    "unexpected.non_text": {},
    "unexpected.unknown_command": {},
    "delete.confirm": {},
    "delete.done": {"deleted_messages": 14},
    "delete.cancelled": {},
    "mydata.intro": {},
    "access.invite_needed": {},
    "access.bad_code": {},
    "access.too_many_codes": {},
    "access.welcome": {"name": "Alex"},
    "group.refusal": {},
    "reminder": {},
    "silence.followup": {},
    "session.cap": {},
    "session.day_cap": {},
    "session.closed": {},
    "welcome_back": {},
    "exercise.done": {"title": "Sharing a small preference"},
    "exercise.none": {},
    "error.generic": {},
    "menu.choose": {},
    "menu.needs_consent": {"missing": ["core", "store_free_text", "share_with_therapist"]},
    "pacing.smallest": {},
    "pacing.enough": {"shared": 2},
    "pacing.enough_ack": {},
    "pacing.cannot_skip": {},
    "settings.bad_time": {},
    "settings.quiet_hours": {"start": "21:00", "end": "08:00"},
    "settings.bad_timezone": {},
    "stop.halted": {},
    **{f"commands.{name}": {} for name in COMMANDS},
    **{f"buttons.{name}": {} for name in BUTTON_KEYS},
}


# --- the sandbox ---------------------------------------------------------------------------


class _Budget:
    """The loop iterations left to the render in progress."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS:,} times in one text")


_BUDGET: ContextVar[_Budget] = ContextVar("rehearse_render_budget")


@pass_context  # a context filter is never folded at compile time, when no budget exists
def _loop_guard(context: Context, iterable: Iterable[object]) -> Iterator[object]:
    """Count every loop iteration against the budget of the render in progress."""
    budget = _BUDGET.get()
    for item in iterable:
        budget.spend()
        yield item


def _range(*args: int) -> range:
    """``range`` for templates, limited to :data:`MAX_RANGE` numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() may produce at most {MAX_RANGE:,} numbers")
    return numbers


def _bounded(value: Any) -> Any:
    """Return ``value``, refusing over-long texts and collections and huge numbers."""
    if isinstance(value, str | list | tuple | dict | set) and len(value) > MAX_VALUE_LENGTH:
        raise SecurityError(f"a value grew longer than {MAX_VALUE_LENGTH:,} items or characters")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError("a number grew too large")
    return value


def _check_numbers(name: str, args: Iterable[object]) -> None:
    """Refuse whole numbers too large to pass to ``name`` (they can size an allocation)."""
    for arg in args:
        if isinstance(arg, int) and abs(arg) > MAX_NUMBER_ARGUMENT:
            raise SecurityError(
                f"{name} was given {arg}; numbers passed to functions and filters must be "
                f"between -{MAX_NUMBER_ARGUMENT:,} and {MAX_NUMBER_ARGUMENT:,}"
            )


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Jinja filter so that its numbers and its result are bounded.

    The wrapper takes the context, so Jinja never calls it at compile time (constant
    folding would run it outside the sandbox's bounds).
    """
    passes = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

    @pass_context
    @functools.wraps(func)
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_numbers(f"the filter `{name}`", [*args, *kwargs.values()])
        if passes == "context":
            result = func(context, value, *args, **kwargs)
        elif passes == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passes == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _bounded(result)

    return guarded


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator with every ``~`` join bounded."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


def _guard_loops(ast: nodes.Template) -> nodes.Template:
    """Route every ``for`` loop's iterable through the loop budget (in place)."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    return ast


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, closed to files and bounded in loops, numbers and sizes."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.filters = {name: _guard_filter(name, FILTERS[name]) for name in _FILTERS}
        self.filters[_LOOP_FILTER] = _loop_guard
        self.globals = {"range": _range}

    @staticmethod
    def bounded(value: Any) -> Any:
        """Refuse a value that grew too long (called by the compiled templates)."""
        return _bounded(value)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Refuse private attributes (the sandbox's rule) and ``str.format``."""
        if isinstance(obj, str) and attr in _REFUSED_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        """Never wrap ``str.format``: :meth:`is_safe_attribute` refuses it instead."""
        return None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply ``*``, ``**``, ``+`` and ``%`` with their results bounded."""
        if operator == "%" and isinstance(left, str):
            raise SecurityError("% formatting is not available in texts; join text with ~")
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise SecurityError("a number grew too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_VALUE_LENGTH
                ):
                    raise SecurityError(f"* would build more than {MAX_VALUE_LENGTH:,} items")
        return _bounded(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj`` from a template with its numbers and its result bounded."""
        _check_numbers(f"{getattr(obj, '__name__', 'a function')}()", [*args, *kwargs.values()])
        return _bounded(super().call(context, obj, *args, **kwargs))


# --- Telegram HTML -------------------------------------------------------------------------


class _HtmlTidy:
    """Keeps text valid Telegram HTML: escapes stray characters and unknown tags, closes tags.

    Text is fed in pieces (each with the line it starts on) so that :meth:`Renderer.check`
    can locate problems in the literal parts of a template.
    """

    def __init__(self) -> None:
        self.open: list[tuple[str, int]] = []
        self.problems: list[tuple[int, str]] = []

    def feed(self, text: str, line: int = 1) -> str:
        out: list[str] = []
        last = 0
        for match in _HTML_TOKEN.finditer(text):
            out.append(text[last : match.start()])
            last = match.end()
            out.append(self._token(match, line + text.count("\n", 0, match.start())))
        out.append(text[last:])
        return "".join(out)

    def close(self) -> str:
        for name, line in self.open:
            self.problems.append((line, f"<{name}> is never closed; add </{name}>"))
        closing = "".join(f"</{name}>" for name, _ in reversed(self.open))
        self.open.clear()
        return closing

    def _token(self, match: re.Match[str], line: int) -> str:
        token = match.group()
        if match.group("entity"):
            return token
        if match.group("stray"):
            return html.escape(token, quote=False)
        name = match.group("name").lower()
        if name not in _TELEGRAM_TAGS:
            self.problems.append(
                (line, f"{token} is not a tag Telegram knows, so it shows as text; "
                       f"tags you can use: {_TAG_LIST} (write &lt; for a plain <)")
            )  # fmt: skip
            return html.escape(token)
        if not match.group("close"):
            self.open.append((name, line))
            return token
        if self.open and self.open[-1][0] == name and not match.group("attrs"):
            self.open.pop()
            return token
        expected = f"</{self.open[-1][0]}>" if self.open else "no closing tag"
        self.problems.append((line, f"{token} does not match the open tags; expected {expected}"))
        return html.escape(token)


def plain_text(html_text: str) -> str:
    """Return the text a client sees for Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", html_text))


def visible_length(html_text: str) -> int:
    """Return the length Telegram counts for an HTML text (UTF-16 code units of its text)."""
    return len(plain_text(html_text).encode("utf-16-le")) // 2


# --- the renderer --------------------------------------------------------------------------


class Renderer:
    """Renders system texts and script texts as Telegram HTML.

    Rendered texts are :class:`markupsafe.Markup` (a ``str``), so a rendered script text
    passed into a system text (e.g. a role-play line) is not escaped twice.
    """

    def __init__(self, texts: Mapping[str, str], *, max_length: int = MAX_MESSAGE_LENGTH) -> None:
        """Compile every system text.

        Args:
            texts: System texts (Jinja2 templates) by key, e.g. ``consent.intro``.
            max_length: The longest rendered text accepted, as Telegram counts it.

        Raises:
            RenderError: If a system text has a syntax error or an unsafe construct; the
                message lists every such text.
        """
        self._env = _Environment()
        self._max_length = max_length
        self._compile = functools.lru_cache(maxsize=_CACHE_SIZE)(self._compile_source)
        self._system: dict[str, Template] = {}
        failures: list[str] = []
        for key, source in texts.items():
            try:
                self._system[key] = self._compile_source(source)
            except RenderError as exc:
                failures.append(f"{key}: {exc}")
        if failures:
            raise RenderError("system texts that cannot be used:\n" + "\n".join(failures))

    @classmethod
    def from_dir(cls, prompts_dir: Path, locale: str = "en") -> Renderer:
        """Load ``prompts_dir/<locale>/texts.yaml``; English fills any key it lacks.

        Args:
            prompts_dir: The prompts directory, e.g. ``prompts``.
            locale: The locale directory to use, e.g. ``en`` or ``de``.

        Raises:
            RenderError: If a texts file cannot be loaded or a text cannot be compiled.
        """
        texts: dict[str, str] = {}
        if locale != "en" and (prompts_dir / "en" / "texts.yaml").is_file():
            texts.update(_texts_or_raise(prompts_dir, "en"))
        texts.update(_texts_or_raise(prompts_dir, locale))
        return cls(texts)

    def system(self, key: str, **context: object) -> Markup:
        """Render the system text ``key`` as Telegram HTML (for a button use :meth:`label`).

        Raises:
            RenderError: For an unknown key, a missing variable, or a text that is too long.
        """
        return self._render(self._template(key), context)

    def label(self, key: str, **context: object) -> str:
        """Render the button label ``key`` as plain text (buttons show no HTML).

        Raises:
            RenderError: For an unknown key, a missing variable, or a label that is too long.
        """
        text = plain_text(self._render(self._template(key), context))
        if len(text) > MAX_LABEL_LENGTH:
            raise RenderError(f"the label is {len(text)} characters; at most {MAX_LABEL_LENGTH}")
        return text

    def text(self, source: str, context: Mapping[str, object]) -> Markup:
        """Render a script text; compiled templates are cached by their source.

        Raises:
            RenderError: If the template is unsafe or invalid, a variable is missing, a
                bound is exceeded, or the text is too long.
        """
        return self._render(self._compile(source), context)

    def check(self, source: str, known: Collection[str]) -> list[TemplateProblem]:
        """Check a template without rendering it.

        Args:
            source: The template source.
            known: The variables the template may use.

        Returns:
            Syntax errors, unsafe constructs, unknown variables and HTML slips, by line.
        """
        try:
            ast = self._env.parse(source)
        except TemplateSyntaxError as exc:
            return [TemplateProblem(exc.lineno, _syntax_message(exc), "template-syntax")]
        except RecursionError:
            return [TemplateProblem(1, "the template is nested too deeply", "template-syntax")]
        problems = self._policy_problems(ast)
        if not problems:
            try:
                self._env.compile(_guard_loops(self._env.parse(source)))
            except TemplateSyntaxError as exc:
                problems.append(
                    TemplateProblem(exc.lineno, _syntax_message(exc), "template-syntax")
                )
        problems += self._unknown_variables(ast, known)
        problems += _html_problems(ast)
        return sorted(problems)

    # -- internals --

    def _template(self, key: str) -> Template:
        template = self._system.get(key)
        if template is None:
            close = difflib.get_close_matches(key, self._system, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise RenderError(f"there is no system text `{key}`{hint}")
        return template

    def _compile_source(self, source: str) -> Template:
        try:
            ast = self._env.parse(source)
        except TemplateSyntaxError as exc:
            raise RenderError(_syntax_message(exc), exc.lineno) from exc
        except RecursionError as exc:
            raise RenderError("the template is nested too deeply") from exc
        problems = self._policy_problems(ast)
        if problems:
            raise RenderError(problems[0].message, problems[0].line)
        try:
            return self._env.from_string(_guard_loops(ast))
        except TemplateSyntaxError as exc:
            raise RenderError(_syntax_message(exc), exc.lineno) from exc

    def _render(self, template: Template, context: Mapping[str, object]) -> Markup:
        raw_limit = self._max_length * _ENTITY_WIDTH
        parts: list[str] = []
        size = 0
        token = _BUDGET.set(_Budget(MAX_LOOP_ITERATIONS))
        try:
            for chunk in template.generate(dict(context)):
                size += len(chunk)
                if size > raw_limit:
                    break
                parts.append(chunk)
        except Exception as exc:  # the boundary: any failure inside a template is a RenderError
            raise RenderError(_runtime_message(exc), _template_line(exc.__traceback__)) from exc
        finally:
            _BUDGET.reset(token)
        tidy = _HtmlTidy()
        text = tidy.feed("".join(parts).strip())
        text += tidy.close()
        length = visible_length(text)
        if size > raw_limit or length > self._max_length:
            shown = f"{length:,} characters" if size <= raw_limit else "far too long"
            raise RenderError(f"the rendered text is {shown}; Telegram allows {self._max_length:,}")
        return Markup(text)

    def _policy_problems(self, ast: nodes.Template) -> list[TemplateProblem]:
        """Constructs texts may not use, and filters that do not exist."""
        problems: list[TemplateProblem] = []
        for node in ast.find_all(nodes.Node):
            found = self._why_refused(node)
            if found is not None:
                problems.append(TemplateProblem(node.lineno, *found))
        return problems

    def _why_refused(self, node: nodes.Node) -> tuple[str, str] | None:
        """Return (message, code) if ``node`` may not appear in a text."""
        unsafe = "template-unsafe"
        if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            return "texts cannot load other templates (include/import/extends)", unsafe
        if isinstance(node, nodes.Macro | nodes.CallBlock):
            return "macros are not available in texts; write the text out", unsafe
        if isinstance(node, nodes.For) and node.recursive:
            return "recursive loops are not available in texts", unsafe
        if isinstance(node, nodes.EvalContextModifier):
            return "autoescape cannot be switched in texts; values are always escaped", unsafe
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            return f"`{node.attr}` is private; names starting with _ are not allowed", unsafe
        if isinstance(node, nodes.Getitem) and _private_const(node.arg):
            return "names starting with _ are private and not allowed", unsafe
        if isinstance(node, nodes.Filter):
            if node.name == "safe":
                return "`|safe` would let a value change the formatting; it is not allowed", unsafe
            if node.name == "attr" and node.args and _private_const(node.args[0]):
                return "names starting with _ are private and not allowed", unsafe
            if node.name.startswith("_") or (
                node.name in FILTERS and node.name not in self._env.filters
            ):
                return f"the filter `{node.name}` is not available in texts", unsafe
            if node.name not in self._env.filters:
                return f"there is no filter named `{node.name}`", "template-syntax"
        return None

    def _unknown_variables(
        self, ast: nodes.Template, known: Collection[str]
    ) -> list[TemplateProblem]:
        try:
            used = meta.find_undeclared_variables(ast)
        except TemplateSyntaxError:  # an unknown filter or test, reported already
            return []
        unknown = used - set(known) - set(self._env.globals)
        problems: list[TemplateProblem] = []
        for name in sorted(unknown):
            line = next(
                (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
                1,
            )
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            message = f"unknown variable `{name}`{hint}"
            problems.append(TemplateProblem(line, message, "template-unknown-variable"))
        return problems


def _private_const(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and str(node.value).startswith("_")


def _html_problems(ast: nodes.Template) -> list[TemplateProblem]:
    """HTML slips in the literal parts of a template (tags Telegram lacks, unbalanced tags)."""
    tidy = _HtmlTidy()
    for data in ast.find_all(nodes.TemplateData):
        tidy.feed(data.data, data.lineno)
    tidy.close()
    return [TemplateProblem(line, message, "template-html") for line, message in tidy.problems]


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"template syntax: {exc.message or exc}"


def _runtime_message(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    if isinstance(exc, RecursionError):
        return "the template recursed too deeply"
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, UndefinedError):
        return f"missing variable: {message}"
    return f"{type(exc).__name__}: {message}"


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame in a (Jinja-rewritten) traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# --- texts files ---------------------------------------------------------------------------


def load_texts(prompts_dir: Path, locale: str) -> tuple[dict[str, str], LoadedYaml]:
    """Load ``prompts_dir/<locale>/texts.yaml``: a mapping of keys to template texts.

    Returns:
        The texts by key, and the loaded YAML (for locating problems).

    Raises:
        ScriptError: If the file cannot be read or is not a mapping of keys to texts; the
            findings are located at ``file:line:col``.
    """
    source = load_yaml(prompts_dir / locale / "texts.yaml")
    if not isinstance(source.data, dict):
        mark = source.mark_for(())
        message = "the texts file must be a mapping of keys to texts (`key: |` blocks)"
        raise ScriptError([_finding(mark.file, mark.line, mark.col, message, "texts-structure")])
    texts: dict[str, str] = {}
    findings: list[Finding] = []
    for key, value in source.data.items():
        if isinstance(value, str):
            texts[key] = value
            continue
        mark = source.mark_for((key,))
        message = f"`{key}` must be text; put it in quotes or use a `|` block"
        findings.append(_finding(mark.file, mark.line, mark.col, message, "texts-type"))
    if findings:
        raise ScriptError(findings)
    return texts, source


def check_texts(
    prompts_dir: Path, locale: str = "en", *, max_length: int = MAX_MESSAGE_LENGTH
) -> list[Finding]:
    """Check a locale's system texts as ``rehearse check`` reports them.

    Every known key must be present (for a locale other than ``en`` a missing key is only a
    warning: the English text is used), use only its own variables, be safe and valid
    Telegram HTML, render with sample values within Telegram's limits, and button labels
    must be short.

    Returns:
        Findings located at ``file:line:col``, errors before warnings.
    """
    try:
        texts, source = load_texts(prompts_dir, locale)
    except ScriptError as exc:
        return exc.findings
    english: Collection[str] = ()
    if locale != "en":
        try:
            english = load_texts(prompts_dir, "en")[0]
        except ScriptError:
            english = ()
    lines = (prompts_dir / locale / "texts.yaml").read_text(encoding="utf-8-sig").splitlines()
    root = source.mark_for(())
    findings = [
        _finding(root.file, root.line, root.col, f"`{key}` is not translated; the English "
                 "text is used", "texts-missing", error=False)
        if key in english
        else _finding(root.file, root.line, root.col, f"`{key}` is missing; the bot needs it",
                      "texts-missing")
        for key in SYSTEM_TEXTS
        if key not in texts
    ]  # fmt: skip
    checker = Renderer({}, max_length=max_length)
    usable: dict[str, str] = {}
    for key, text in texts.items():
        mark = source.mark_for((key,), key=True)
        if key not in SYSTEM_TEXTS:
            close = difflib.get_close_matches(key, SYSTEM_TEXTS, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            message = f"unknown key `{key}` (the bot never uses it){hint}"
            findings.append(
                _finding(mark.file, mark.line, mark.col, message, "texts-unknown-key", False)
            )
            continue
        problems = checker.check(text, SYSTEM_TEXTS[key])
        first = _first_text_line(source.mark_for((key,)), lines)
        for problem in problems:
            message = f"`{key}`: {problem.message}"
            findings.append(_finding(mark.file, first + problem.line - 1, 1, message, problem.code))
        if not problems:
            usable[key] = text
    renderer = Renderer(usable, max_length=max_length)
    for key in usable:
        mark = source.mark_for((key,), key=True)
        try:
            if key.startswith("buttons."):
                renderer.label(key, **SYSTEM_TEXTS[key])
                continue
            text = renderer.system(key, **SYSTEM_TEXTS[key])
            if not text:
                raise RenderError("the text renders empty; Telegram cannot send an empty message")
            if key.startswith("commands.") and (
                text != plain_text(text) or len(text) > MAX_COMMAND_DESCRIPTION
            ):
                raise RenderError(
                    "a command description is plain text (no tags, no &) of at most "
                    f"{MAX_COMMAND_DESCRIPTION} characters"
                )
        except RenderError as exc:
            message = f"`{key}` with sample values: {exc}"
            findings.append(_finding(mark.file, mark.line, mark.col, message, "texts-render"))
    return sorted(findings, key=lambda f: (f.severity != Severity.ERROR, f.line, f.col))


def _first_text_line(value: Mark, lines: list[str]) -> int:
    """The file line of a text's first template line: the next one after a ``|`` or ``>``."""
    rest = lines[value.line - 1][value.col - 1 :] if value.line <= len(lines) else ""
    return value.line + 1 if rest[:1] in ("|", ">") else value.line


def _texts_or_raise(prompts_dir: Path, locale: str) -> dict[str, str]:
    try:
        return load_texts(prompts_dir, locale)[0]
    except ScriptError as exc:
        raise RenderError(str(exc)) from exc


def _finding(
    file: str, line: int, col: int, message: str, code: str, error: bool = True
) -> Finding:
    severity = Severity.ERROR if error else Severity.WARNING
    return Finding(file, line, col, severity, message, code)
