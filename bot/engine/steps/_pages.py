"""Pages of an exercise, shown one at a time: an ``exercise`` step's, and calming ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine._buttons import GoOn, Skip
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


def show_page(run: Run, exercise: m.Exercise) -> None:
    """Show the page the client is at: its text and "go on", or a journaling question."""
    ctx = run.ctx
    page = exercise.pages[ctx.session.frame.page]
    if page.write is not None:
        ctx.send(ctx.script_text(page.write), [[ctx.button("skip", Skip())]])
    else:
        assert page.say is not None
        label = page.button or ctx.label("go_on")
        ctx.send(ctx.script_text(page.say), [[(label, GoOn())]])


def writes(run: Run, exercise: m.Exercise) -> bool:
    """Whether the page the client is at asks them to write."""
    return exercise.pages[run.ctx.session.frame.page].write is not None


def turn_page(run: Run, exercise: m.Exercise, *, calming: bool) -> bool:
    """Show the next page; False (and the exercise logged as done) after the last one."""
    ctx = run.ctx
    frame = ctx.session.frame
    if frame.page + 1 < len(exercise.pages):
        frame.page += 1
        run.show()
        return True
    ctx.log("exercise_done", exercise=exercise.id, calming=calming)
    return False
