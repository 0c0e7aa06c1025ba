"""``prompt``: the next unused graded prompt at the client's level, with smaller and skip.

The client's pace (:class:`~bot.engine._terms.Pace`) sets how many prompts in a row a session
offers before it asks "one more, or enough for today?" (an ``ask`` step answered in between
counts as asking); after "enough", the session's later prompt steps are passed over (its
check-ins and end still come).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._buttons import (
    Enough,
    OneMore,
    Pause,
    Press,
    Shared,
    Skip,
    SkipReason,
    SkipWhy,
    Smaller,
)
from bot.engine._state import Part
from bot.engine._terms import MAX_TEXT
from bot.engine.steps._base import Deeper, Drawing, StepKind, TextAt
from bot.script import LoadedScript
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Prompt(StepKind):
    """Invites the client to share: "I shared it", words, smaller, skip (a reason asked)."""

    key = "prompt"
    noun = "prompt step"
    parts = (Part.PROMPT, Part.SKIP_REASON, Part.ENOUGH)

    # -- what the checker and the drawings read -----------------------------------------------
    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("prompt", "intro"), _spec(step).intro, False)]

    def deeper(self, step: m.Step, script: LoadedScript) -> Deeper | None:
        reach = reach_of(_spec(step), script)
        if reach < 2:
            return None
        return Deeper("no-checkin-before-prompt",
                      f"step `{step.id}` can show a level-{reach} prompt and",
                      " (only level-1 prompts may come first)")

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        spec = _spec(step)
        level = spec.level
        shown = f"level {level}" if level != "current" else f"current level (≤{script.meta.level})"
        topic = f" · {spec.topic}" if spec.topic else ""
        drawn = script.meta.level if level == "current" else level
        return Drawing(f"prompt{topic} · {shown}", "box", f"level{drawn}")

    # -- how the engine runs it ---------------------------------------------------------------
    def begin(self, run: Run, step: m.Step) -> None:
        session = run.ctx.session
        if session.enough:  # the client said it was enough sharing for today
            run.enter_after(step.id)
        elif session.prompts_in_a_row >= run.ctx.state.pace.prompts_in_a_row:
            session.frame.part = Part.ENOUGH
            run.show()
        else:
            self._offer(run, step)

    def _offer(self, run: Run, step: m.Step) -> None:
        """Draw the prompt and show it (or go on when none is left)."""
        ctx = run.ctx
        spec = _spec(step)
        prompt = _draw(run, spec)
        if prompt is None:
            ctx.say("prompt.none_left")
            run.enter_after(step.id)
            return
        frame = ctx.session.frame
        frame.prompt = prompt.id
        frame.part = Part.PROMPT
        if spec.intro:
            ctx.send(ctx.script_text(spec.intro))
        run.show()

    def show(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        if ctx.session.frame.part is Part.ENOUGH:
            ctx.say("pacing.enough", [[ctx.button("one_more", OneMore())],
                                      [ctx.button("enough_today", Enough())]],
                    shared=ctx.session.prompts_in_a_row)
            return
        if ctx.session.frame.part is Part.SKIP_REASON:
            ctx.say("prompt.skip_reason", [
                [ctx.button("skip_not_today", SkipWhy(SkipReason.NOT_TODAY)),
                 ctx.button("skip_too_much", SkipWhy(SkipReason.TOO_MUCH))],
                [ctx.button("skip_private", SkipWhy(SkipReason.PRIVATE))],
                [ctx.button("skip_no_reason", SkipWhy(None))]])
            return
        ctx.send(_text(run), [[ctx.button("shared", Shared())],
                              [ctx.button("smaller", Smaller()), ctx.button("skip", Skip())],
                              [ctx.button("pause", Pause())]])

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        part = run.ctx.session.frame.part
        match press:
            case Shared() if part is Part.PROMPT:
                self._answered(run, step, response="shared")
            case SkipWhy(reason=reason) if part is Part.SKIP_REASON:
                self._skipped(run, step, reason)
            case OneMore() if part is Part.ENOUGH:
                self._paced(run, step, enough=False)
            case Enough() if part is Part.ENOUGH:
                self._paced(run, step, enough=True)
            case _:
                run.show()

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        return MAX_TEXT if run.ctx.session.frame.part is Part.PROMPT else None

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        run.keep(text)
        self._answered(run, step, response="text")

    def skip(self, run: Run, step: m.Step) -> bool:
        frame = run.ctx.session.frame
        if frame.part is Part.ENOUGH:  # /skip rather than one more: enough for today
            self._paced(run, step, enough=True)
        elif frame.part is Part.PROMPT:
            frame.part = Part.SKIP_REASON
            run.show()
        else:  # /skip while asked why: skip, no reason needed
            self._skipped(run, step, None)
        return True

    def _paced(self, run: Run, step: m.Step, *, enough: bool) -> None:
        """The answer to "one more, or enough for today?"."""
        ctx = run.ctx
        session = ctx.session
        ctx.log("pacing", choice="enough-for-today" if enough else "one-more", step=step.id,
                pace=ctx.state.pace.value, prompts=session.prompts_in_a_row)
        session.prompts_in_a_row, session.enough = 0, enough
        if enough:
            ctx.say("pacing.enough_ack")
            run.enter_after(step.id)
        else:
            self._offer(run, step)

    def smaller(self, run: Run, step: m.Step) -> bool:
        ctx = run.ctx
        frame = ctx.session.frame
        if frame.part is not Part.PROMPT or frame.prompt is None:
            return False
        prompt = ctx.script.prompts[frame.prompt]
        if not frame.smaller and prompt.smaller:
            frame.smaller = True
            return True
        lower = _draw(run, _spec(step), below=prompt.level)
        if lower is not None and lower.level < prompt.level:
            frame.prompt, frame.smaller = lower.id, False
            return True
        return False

    def _answered(self, run: Run, step: m.Step, response: str) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        if frame.prompt is None:
            run.show()
            return
        prompt = ctx.script.prompts[frame.prompt]
        ctx.session.prompts_in_a_row += 1
        ctx.session.shared = True
        progress = ctx.state.progress
        progress.prompts_shared += 1
        if prompt.id not in progress.used_prompts:
            progress.used_prompts.append(prompt.id)
        ctx.log("prompt", step=frame.step, prompt=prompt.id, level=prompt.level,
                smaller=frame.smaller, response=response)
        ctx.say("prompt.ack")
        run.enter_after(step.id)

    def _skipped(self, run: Run, step: m.Step, reason: SkipReason | None) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        ctx.log("pacing", choice="skip", step=frame.step, prompt=frame.prompt, reason=reason)
        ctx.say("prompt.skip_ack", reason=reason)
        run.enter_after(step.id)


def reach_of(spec: m.PromptStep, script: LoadedScript) -> int:
    """The deepest level a prompt step can ever show (the engine never exceeds the script)."""
    fixed = script.meta.level if spec.level == "current" else spec.level
    return min(fixed, script.meta.level)


def _text(run: Run) -> str:
    ctx = run.ctx
    frame = ctx.session.frame
    assert frame.prompt is not None
    prompt = ctx.script.prompts[frame.prompt]
    if frame.smaller and prompt.smaller:
        return ctx.system("prompt.smaller", text=ctx.script_text(prompt.smaller))
    return ctx.script_text(prompt.text)


def _draw(run: Run, spec: m.PromptStep, below: int | None = None) -> m.Prompt | None:
    """The next unused prompt at the wanted level, never above the effective level."""
    ctx = run.ctx
    level = ctx.effective_level() if spec.level == "current" else spec.level
    level = min(level, ctx.effective_level())
    if below is not None:
        level = min(level, below - 1)
    blocked = set(ctx.state.contract.off_limit_topics)
    used = set(ctx.state.progress.used_prompts)
    candidates = [
        p for p in ctx.script.prompts.values()
        if (spec.topic is None or p.topic == spec.topic) and p.topic not in blocked
    ]
    for wanted in range(level, 0, -1):
        at_level = [p for p in candidates if p.level == wanted]
        fresh = [p for p in at_level if p.id not in used]
        if fresh or at_level:
            return (fresh or at_level)[0]
    return None


def _spec(step: m.Step) -> m.PromptStep:
    assert step.prompt is not None
    return step.prompt
