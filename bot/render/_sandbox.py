"""The sandbox every text is rendered in: Jinja2's immutable sandbox, tightened.

A template can neither reach outside (no ``include``/``import``/``extends``, no ``|safe``, no
private attributes, no autoescape switch, no macros or recursive loops — the renderer refuses
those before compiling) nor run away: loops, numbers passed to functions and every value a
template builds are bounded here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

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


class Budget:
    """The loop iterations left to the render in progress."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS:,} times in one text")


BUDGET: ContextVar[Budget] = ContextVar("rehearse_render_budget")


@pass_context  # a context filter is never folded at compile time, when no budget exists
def _loop_guard(context: Context, iterable: Iterable[object]) -> Iterator[object]:
    """Count every loop iteration against the budget of the render in progress."""
    budget = BUDGET.get()
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


def guard_loops(ast: nodes.Template) -> nodes.Template:
    """Route every ``for`` loop's iterable through the loop budget (in place)."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    return ast


class Environment(ImmutableSandboxedEnvironment):
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
