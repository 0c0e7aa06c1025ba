"""The steps the engine passes straight through (``set``, ``branch``), and ``end``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine.steps._base import Drawing, Edge, StepKind, TextAt
from bot.script import LoadedScript
from bot.script import _model as m
from bot.script._expr import parse_condition

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Set(StepKind):
    """Sets script variables, then goes on."""

    key = "set"
    noun = "set step"
    passes_through = True

    def edges(self, step: m.Step, following: str | None) -> list[Edge]:
        [edge] = super().edges(step, following)
        return [Edge(edge.source, edge.target, edge.path, sets=frozenset(step.set or {}))]

    def onward(self, run: Run, step: m.Step) -> str | None:
        run.ctx.session.vars.update(step.set or {})
        return run.ctx.script.following(step.id)


class Branch(StepKind):
    """Goes to the first arm whose condition holds (the last arm has none)."""

    key = "branch"
    noun = "branch"
    passes_through = True

    def edges(self, step: m.Step, following: str | None) -> list[Edge]:
        return [Edge(step.id, arm.goto, ("branch", i, "goto"), arm.if_ or "otherwise")
                for i, arm in enumerate(_arms(step))]

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        return Drawing("branch", "diamond")

    def onward(self, run: Run, step: m.Step) -> str | None:
        arms = _arms(step)
        variables = run.ctx.variables()
        for arm in arms:
            if arm.if_ is None or parse_condition(arm.if_).evaluate(variables):
                return arm.goto
        return arms[-1].goto


class End(StepKind):
    """Says goodbye and ends the session, completed."""

    key = "end"
    noun = "end step"

    def edges(self, step: m.Step, following: str | None) -> list[Edge]:
        return []

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("end",), step.end, False)]

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        return Drawing("end", "stadium")

    def begin(self, run: Run, step: m.Step) -> None:
        assert step.end is not None
        run.ctx.send(run.ctx.script_text(step.end))
        run.end_session(completed=True, reason="end")


def _arms(step: m.Step) -> list[m.BranchArm]:
    assert step.branch is not None
    return step.branch
