"""``exercise``: a reusable exercise (breathing, grounding, journaling, …), page by page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine._buttons import GoOn, Press
from bot.engine._state import Frame, Part
from bot.engine._terms import MAX_TEXT
from bot.engine.steps._base import Drawing, StepKind
from bot.engine.steps._pages import show_page, turn_page, writes
from bot.script import LoadedScript
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Exercise(StepKind):
    """Runs an exercise's pages: "go on" after a text, words (or skip) at a journaling page."""

    key = "exercise"
    noun = "exercise step"
    parts = (Part.PAGE,)

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        return Drawing(f"exercise · {step.exercise}")

    def begin(self, run: Run, step: m.Step) -> None:
        run.ctx.session.frame.part = Part.PAGE
        run.show()

    def fits(self, script: LoadedScript, step: m.Step, frame: Frame) -> bool:
        exercise = script.exercises.get(step.exercise or "")
        return (frame.part is Part.PAGE and exercise is not None
                and frame.page < len(exercise.pages))

    def show(self, run: Run, step: m.Step) -> None:
        show_page(run, _exercise(run, step))

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        if isinstance(press, GoOn):
            self._next_page(run, step)
        else:
            run.show()

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        return MAX_TEXT if writes(run, _exercise(run, step)) else None

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        run.keep(text)
        self._next_page(run, step)

    def skip(self, run: Run, step: m.Step) -> bool:
        if not writes(run, _exercise(run, step)):
            return False
        self._next_page(run, step)
        return True

    def _next_page(self, run: Run, step: m.Step) -> None:
        if not turn_page(run, _exercise(run, step), calming=False):
            run.enter_after(step.id)


def _exercise(run: Run, step: m.Step) -> m.Exercise:
    assert step.exercise is not None
    return run.ctx.script.exercises[step.exercise]
