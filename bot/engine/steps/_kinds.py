"""The table of step kinds: one entry per kind of step of the script language.

A new kind of step is its schema in :mod:`bot.script._model` (what an author writes), one
module here (a :class:`~bot.engine.steps._base.StepKind`: how the engine runs it and what the
checker and the drawings need to know), and one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.engine.steps._base import StepKind
from bot.engine.steps.ask import Ask
from bot.engine.steps.checkin import CheckIn
from bot.engine.steps.connection import Connection
from bot.engine.steps.exercise import Exercise
from bot.engine.steps.flow import Branch, End, Set
from bot.engine.steps.prompt import Prompt
from bot.engine.steps.roleplay import RolePlay
from bot.engine.steps.say import Say
from bot.script import _model as m

#: Every kind of step, by its key in the script language.
KINDS: Mapping[str, StepKind] = {
    kind.key: kind
    for kind in (Say(), Ask(), CheckIn(), Prompt(), RolePlay(), Exercise(), Connection(),
                 Branch(), Set(), End())
}

if tuple(sorted(KINDS)) != tuple(sorted(m.STEP_KINDS)):  # pragma: no cover - a wiring fault
    raise ImportError(f"step kinds {sorted(KINDS)} do not match the language's "
                      f"{sorted(m.STEP_KINDS)}")


def kind_of(step: m.Step) -> StepKind:
    """The kind of a step."""
    return KINDS[step.kind]
