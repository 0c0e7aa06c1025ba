"""``connection``: the client notes a small moment of connection (the connection log)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._buttons import Pause, Skip
from bot.engine._state import Part
from bot.engine._terms import MAX_TEXT, Opt
from bot.engine.steps._base import StepKind, TextAt
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Connection(StepKind):
    """Asks for a few words about a moment of connection; kept only with the opt-in."""

    key = "connection"
    noun = "connection step"
    parts = (Part.CONNECTION,)

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("connection",), step.connection, False)]

    def begin(self, run: Run, step: m.Step) -> None:
        run.ctx.session.frame.part = Part.CONNECTION
        run.show()

    def show(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        assert step.connection is not None
        ctx.send(ctx.script_text(step.connection), [[ctx.button("skip", Skip())],
                                                    [ctx.button("pause", Pause())]])

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        return MAX_TEXT

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        ctx = run.ctx
        progress = ctx.state.progress
        progress.connections += 1
        if ctx.opted(Opt.STORE_FREE_TEXT):
            progress.last_connection = text
            run.keep(text, kind="connection")
        ctx.log("connection_noted", step=step.id)
        run.enter_after(step.id)

    def skip(self, run: Run, step: m.Step) -> bool:
        run.ctx.log("pacing", choice="skip", step=step.id)
        run.enter_after(step.id)
        return True
