"""The renderer: system texts and script texts, compiled once, rendered as Telegram HTML.

Every text renders in the sandbox (:mod:`bot.render._sandbox`); constructs the sandbox does not
offer (``include``/``import``/``extends``, ``|safe``, private attributes, an autoescape
switch, macros, recursive loops) are refused before a template compiles, the rendered length
is bounded, and the result is tidied into Telegram HTML (:mod:`bot.render._html`). Jinja
escapes ``'`` and ``"`` as the numeric entities ``&#39;`` and ``&#34;``, which Telegram accepts
("all numerical HTML entities are supported"). :meth:`Renderer.check` reports problems to the
author without rendering.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from jinja2 import Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from markupsafe import Markup

from bot.render._files import load_texts
from bot.render._html import HtmlTidy, plain_text, visible_length
from bot.render._sandbox import BUDGET, MAX_LOOP_ITERATIONS, Budget, Environment, guard_loops
from bot.script._findings import ScriptError

#: Telegram's limit for one message, counted after the HTML is parsed.
MAX_MESSAGE_LENGTH = 4096
#: The longest button label we allow (Telegram shows about this much on a phone).
MAX_LABEL_LENGTH = 40
#: An escaped character takes at most this many characters of HTML (``&quot;``).
_ENTITY_WIDTH = 6
_CACHE_SIZE = 512


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
        self._env = Environment()
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
        try:
            if locale != "en" and (prompts_dir / "en" / "texts.yaml").is_file():
                texts.update(load_texts(prompts_dir, "en")[0])
            texts.update(load_texts(prompts_dir, locale)[0])
        except ScriptError as exc:
            raise RenderError(str(exc)) from exc
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
                self._env.compile(guard_loops(self._env.parse(source)))
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
            return self._env.from_string(guard_loops(ast))
        except TemplateSyntaxError as exc:
            raise RenderError(_syntax_message(exc), exc.lineno) from exc

    def _render(self, template: Template, context: Mapping[str, object]) -> Markup:
        raw_limit = self._max_length * _ENTITY_WIDTH
        parts: list[str] = []
        size = 0
        token = BUDGET.set(Budget(MAX_LOOP_ITERATIONS))
        try:
            for chunk in template.generate(dict(context)):
                size += len(chunk)
                if size > raw_limit:
                    break
                parts.append(chunk)
        except Exception as exc:  # the boundary: any failure inside a template is a RenderError
            raise RenderError(_runtime_message(exc), _template_line(exc.__traceback__)) from exc
        finally:
            BUDGET.reset(token)
        tidy = HtmlTidy()
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
    tidy = HtmlTidy()
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
