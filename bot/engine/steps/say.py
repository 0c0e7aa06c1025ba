"""``say``: a text, then "go on" (or pause)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._buttons import GoOn, Pause, Press
from bot.engine._state import Part
from bot.engine.steps._base import StepKind, TextAt
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Say(StepKind):
    """Shows a text and waits for "go on"."""

    key = "say"
    noun = "say step"
    parts = (Part.SAY,)

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("say",), step.say, False)]

    def begin(self, run: Run, step: m.Step) -> None:
        run.ctx.session.frame.part = Part.SAY
        run.show()

    def show(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        assert step.say is not None
        ctx.send(ctx.script_text(step.say), [[ctx.button("go_on", GoOn()),
                                              ctx.button("pause", Pause())]])

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        if isinstance(press, GoOn):
            run.enter_after(step.id)
        else:
            run.show()
