"""Safe conditions for ``branch`` steps, e.g. ``distress >= 6 and level < 3``.

Conditions are parsed with Python's own parser and then restricted to a tiny, side-effect
free subset: variable names, numbers, quoted text, ``true``/``false``/``none``, lists of
those, comparisons (``== != < <= > >= in``, ``not in``), ``and``/``or``/``not`` and a leading
minus. Nothing is ever executed: evaluation walks the tree by hand.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], object]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: operator.contains(b, a),
    ast.NotIn: lambda a, b: not operator.contains(b, a),
}
_WORDS = {"true": True, "false": False, "none": None}
MAX_LENGTH = 200


class ExpressionError(ValueError):
    """A condition that is not allowed; ``col`` is 1-based within the condition."""

    def __init__(self, message: str, col: int = 1) -> None:
        super().__init__(message)
        self.col = col


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed, checked condition.

    Attributes:
        source: The condition as written.
        names: The variable names it reads.
    """

    source: str
    names: frozenset[str]
    _tree: ast.expr

    def evaluate(self, variables: Mapping[str, object]) -> bool:
        """Evaluate against variables; unknown names are ``none``, type clashes are false."""
        try:
            return bool(_eval(self._tree, variables))
        except TypeError:
            return False


def parse_condition(source: str) -> Condition:
    """Parse and check a condition.

    Raises:
        ExpressionError: If the text is not a condition in the allowed subset.
    """
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"a condition may have at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot read this condition: {exc.msg}", exc.offset or 1) from None
    names: set[str] = set()
    _check(tree.body, names)
    return Condition(source=source, names=frozenset(names), _tree=tree.body)


def _check(node: ast.expr, names: set[str]) -> None:
    col = getattr(node, "col_offset", 0) + 1
    match node:
        case ast.BoolOp(values=values):
            for value in values:
                _check(value, names)
        case ast.UnaryOp(op=ast.Not() | ast.USub(), operand=operand):
            _check(operand, names)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            if not all(type(op) in _COMPARE for op in ops):
                raise ExpressionError("only == != < <= > >= in and not in compare values", col)
            for part in (left, *comparators):
                _check(part, names)
        case ast.Name(id=name):
            if name.lower() not in _WORDS:
                names.add(name)
        case ast.Constant(value=value) if isinstance(value, str | int | float) or value is None:
            return
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            for elt in elts:
                _check(elt, names)
        case _:
            raise ExpressionError(
                "only variables, numbers, quoted text, comparisons and and/or/not are allowed",
                col,
            )


def _eval(node: ast.expr, variables: Mapping[str, object]) -> object:
    match node:
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_eval(v, variables) for v in values)
        case ast.BoolOp(values=values):
            return any(_eval(v, variables) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, variables)
        case ast.UnaryOp(operand=operand):
            value = _eval(operand, variables)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError("minus needs a number")
            return -value
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, variables)
            for op, comparator in zip(ops, comparators, strict=True):
                right = _eval(comparator, variables)
                if not _COMPARE[type(op)](current, right):
                    return False
                current = right
            return True
        case ast.Name(id=name):
            if name.lower() in _WORDS:
                return _WORDS[name.lower()]
            return variables.get(name)
        case ast.Constant(value=value):
            return value
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(e, variables) for e in elts]
    raise TypeError("unsupported")  # unreachable after _check
