"""``checkin``: a 0–10 distress rating, with the de-escalation loop built in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._state import Part
from bot.engine.steps._base import CheckInSpec, Drawing, StepKind, TextAt
from bot.engine.steps._checkins import CHECKIN_PARTS
from bot.script import LoadedScript
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class CheckIn(StepKind):
    """Asks for a rating (and what its moment asks); the check-in parts run it."""

    key = "checkin"
    noun = "check-in"
    parts = CHECKIN_PARTS
    checks_in = True

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("checkin", "question"), _checkin(step).question, False)]

    def calm(self, step: m.Step) -> list[str] | None:
        return _checkin(step).calm

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        return Drawing(f"check-in ({_checkin(step).moment.value})", "hexagon", "checkin")

    def begin(self, run: Run, step: m.Step) -> None:
        run.ctx.session.frame.part = Part.RATING
        run.show()

    def checkin_of(self, run: Run, step: m.Step) -> CheckInSpec:
        c = _checkin(step)
        calm = run.ctx.script.calm_for(c.calm)
        if run.ctx.session.frame.closing:  # the last rating before a cap closes: no extras
            return CheckInSpec(high=c.high, calm=calm, question=c.question)
        return CheckInSpec(c.moment, c.body_cues, c.high, calm, c.question)


def _checkin(step: m.Step) -> m.CheckIn:
    assert step.checkin is not None
    return step.checkin
