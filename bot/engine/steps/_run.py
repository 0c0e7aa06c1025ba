"""Running a session's steps for one client: entering, showing, and taking the answers.

Every step waits for the client except those its kind passes through (``branch``, ``set``).
The part of the step the client is at decides who takes their answer: the check-in parts are
the check-in's (:mod:`bot.engine.steps._checkins`), at any step; every other part is its step
kind's. Nothing above the client's effective level is ever shown.
"""

from __future__ import annotations

import unicodedata

from bot.engine._buttons import LevelStay, LevelUp, Pause, Press, Resume, Skip, Smaller
from bot.engine._context import Context
from bot.engine._outcome import Answer
from bot.engine._questions import LevelQuestion, SummaryQuestion, summaries
from bot.engine._state import Frame, Part
from bot.engine._terms import Opt
from bot.engine.steps._base import Handler, StepKind
from bot.engine.steps._checkins import CHECKIN_PARTS, RATING_PARTS, CheckIns
from bot.engine.steps._kinds import kind_of
from bot.engine.steps.ask import as_int, typed_variables
from bot.script import LoadedScript
from bot.script import _model as m

#: Steps entered without waiting before the engine gives up on a script (a safety net).
MAX_HOPS = 200


def frame_fits(script: LoadedScript, frame: Frame) -> bool:
    """Whether a saved place still exists in a (possibly edited) script."""
    step = script.steps.get(frame.step)
    if step is None:
        return False
    if frame.prompt is not None and frame.prompt not in script.prompts:
        return False
    if frame.calm_exercise is not None:
        calm = script.exercises.get(frame.calm_exercise)
        return calm is not None and frame.page < len(calm.pages)
    if frame.closing:
        return frame.part in (Part.RATING, Part.RECHECK)
    if frame.part is Part.RECHECK:  # a re-rating after calming, at whatever step it began
        return True
    return kind_of(step).fits(script, step, frame)


class Run:
    """Moves one client through the current session's script."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.checkins = CheckIns()

    def kind(self, step: m.Step) -> StepKind:
        """The kind of a step."""
        return kind_of(step)

    def _at(self) -> tuple[m.Step, Handler]:
        """The step the client is at, and who takes the answer at its part."""
        frame = self.ctx.session.frame
        step = self.ctx.script.steps[frame.step]
        if frame.part in CHECKIN_PARTS:
            return step, self.checkins
        kind = kind_of(step)
        if frame.part not in kind.parts:
            raise ValueError(f"a `{kind.key}` step has no part {frame.part!r}")
        return step, kind

    # -- entering steps ---------------------------------------------------------------------
    def enter(self, step_id: str | None) -> None:
        """Enter a step: pass through those that do not wait, then begin the first that does."""
        ctx = self.ctx
        for _ in range(MAX_HOPS):
            if step_id is None:
                # The checker proves every path ends in `end`; this is only a safety net.
                self.end_session(completed=False, reason="script-ran-out")
                return
            step = ctx.script.steps[step_id]
            kind = kind_of(step)
            if kind.passes_through:
                step_id = kind.onward(self, step)
                continue
            ctx.session.frame = Frame(step=step_id)
            kind.begin(self, step)
            return
        ctx.log("script_fault", reason="too-many-steps-without-waiting", step=step_id)
        self.end_session(completed=False, reason="script-fault")

    def enter_after(self, step_id: str) -> None:
        """Go on to the step after ``step_id`` (its ``next``, else the one below)."""
        self.enter(self.ctx.script.following(step_id))

    # -- showing and answering --------------------------------------------------------------
    def show(self) -> None:
        """(Re)send the question the client is being asked now; changes no progress."""
        step, handler = self._at()
        handler.show(self, step)

    def in_role(self) -> bool:
        """Whether a role-play scene is under way (a check-in within it included)."""
        step = self.ctx.script.steps[self.ctx.session.frame.step]
        return kind_of(step).in_role(self, step)

    def on_button(self, press: Press) -> None:
        """Handle a live button press for the current step."""
        match press:
            case Pause():
                self.pause()
            case Smaller():
                self.smaller()
            case Skip():
                self.skip()
            case _:
                step, handler = self._at()
                handler.on_button(self, step, press)

    def on_text(self, text: str) -> None:
        """Handle free text for the current step (crisis and stop are handled before).

        Under-arousal in words ("everything feels far away") routes to grounding first, at
        every step: one that takes words or a rating, and one that waits for a button too.
        """
        ctx = self.ctx
        step, handler = self._at()
        stripped = text.strip()
        frame = ctx.session.frame
        if (not (frame.calming or frame.closing)
                and ctx.res.intents.under_arousal(stripped)):
            self.checkins.ground(self, step)  # "I feel numb": grounding, whatever was asked
            return
        if frame.part in RATING_PARTS:
            value = as_int(stripped)
            if value is None or not 0 <= value <= 10:
                ctx.say("unexpected.out_of_range", low=0, high=10)
                self.show()
            else:
                self.checkins.rate(self, step, value)
            return
        limit = handler.text_limit(self, step)
        if limit is None:
            ctx.say("unexpected.text_at_buttons")
        elif not _visible(stripped):
            ctx.say("unexpected.empty")
        elif len(stripped) > limit:
            ctx.say("unexpected.too_long", limit=limit)
        else:
            handler.on_text(self, step, stripped)
            return
        self.show()

    def keep(self, text: str, kind: str = "answer") -> None:
        """Store free text only with the client's opt-in; otherwise it is dropped here."""
        ctx = self.ctx
        if ctx.opted(Opt.STORE_FREE_TEXT):
            ctx.out.answers.append(Answer(step=ctx.session.frame.step, text=text, kind=kind))

    def forget_typed(self) -> None:
        """Empty the session's variables saved from typed text (the client deleted them)."""
        session = self.ctx.state.session
        script = self.ctx.res.scripts.get(session.script) if session is not None else None
        if session is None or script is None:
            return
        for step in script.steps.values():
            for name in typed_variables(step):
                if name in session.vars:
                    session.vars[name] = ""

    # -- pacing -----------------------------------------------------------------------------
    def pause(self) -> None:
        """Pause the session; nothing more is asked until the client resumes."""
        ctx = self.ctx
        ctx.session.paused = True
        ctx.log("pacing", choice="pause", step=ctx.session.frame.step)
        ctx.say("pause.done", [[ctx.button("resume", Resume())]], character=self.role())

    def role(self) -> str | None:
        """The character the bot is playing at the client's place, if it is in a role."""
        step = self.ctx.script.steps[self.ctx.session.frame.step]
        return kind_of(step).role(self, step)

    def resume_in_role(self) -> None:
        """Back from a pause: in a scene, say again what it is, then show where it was."""
        step = self.ctx.script.steps[self.ctx.session.frame.step]
        kind = kind_of(step)
        if kind.role(self, step) is not None:
            kind.reframe(self, step)
        self.show()

    def smaller(self) -> None:
        """Honour "smaller step" at once: a gentler wording or a lower level."""
        ctx = self.ctx
        step, handler = self._at()
        if handler.smaller(self, step):
            ctx.state.progress.smaller_steps += 1
            ctx.log("pacing", choice="smaller", step=step.id)
        else:
            ctx.say("pacing.smallest")
        self.show()

    def skip(self) -> None:
        """Skip the current disclosure step (a reason is asked, never required)."""
        step, handler = self._at()
        if not handler.skip(self, step):
            self.ctx.say("pacing.cannot_skip")
            self.show()

    # -- closing ----------------------------------------------------------------------------
    def close_for_cap(self) -> None:
        """A session cap was reached: step out of any role, a last rating, then close."""
        ctx = self.ctx
        frame = ctx.session.frame
        if frame.closing:
            return
        step = ctx.script.steps[frame.step]
        kind_of(step).before_cap(self, step)
        ctx.log("session_cap", step=frame.step)
        ctx.session.frame = Frame(step=frame.step, part=Part.RATING, closing=True,
                                  turn=frame.turn)
        self.show()

    def end_session(self, *, completed: bool, reason: str) -> None:
        """Close the session; a completed one counts towards progress and pacing."""
        ctx = self.ctx
        session = ctx.session
        level = session.level
        if completed:
            progress = ctx.state.progress
            progress.exercises_done += 1
            if not session.calmed and _counts_for_pacing(ctx, session.distress,
                                                         session.expected, session.actual):
                key = str(level)
                progress.completed_at_level[key] = progress.completed_at_level.get(key, 0) + 1
            ctx.say("exercise.done", title=ctx.script.meta.title)
        ctx.log("session_ended", script=session.script, completed=completed, reason=reason,
                level=level, distress_before=session.distress_before,
                distress_after=session.distress, expected=session.expected,
                actual=session.actual)
        ctx.state.session = None
        level_up = completed and not (session.high_distress or session.calmed or session.held)
        if completed and any(s.id == session.started_at for s in summaries(ctx)):
            # The client's summary first; "Done" on it may ask about a level up next.
            question = SummaryQuestion(session=session.started_at, offer_level=level_up)
            ctx.state.pending = question
            question.show(ctx)
        elif level_up:
            _offer_level_up(ctx)

    def offer_level_up(self) -> None:
        """Ask about one level up if the contract's rule holds (after a session's summary)."""
        _offer_level_up(self.ctx)


def _offer_level_up(ctx: Context) -> None:
    """Ask (never push) about one level up, only when the contract's rule holds."""
    state = ctx.state
    rule = state.contract.advance
    key = str(state.level)
    # After a "Not yet", the rule counts only the completions since.
    done = (state.progress.completed_at_level.get(key, 0)
            - state.progress.level_declined_at.get(key, 0))
    if (done >= rule.completed_at_level and state.level < state.contract.max_level
            and not ctx.crisis_hold()):
        state.pending = LevelQuestion()
        ctx.log("level_offered", level=state.level, next_level=state.level + 1)
        ctx.say("level.offer", [[ctx.button("level_yes", LevelUp())],
                                [ctx.button("level_no", LevelStay())]],
                level=state.level, next_level=state.level + 1)


def _counts_for_pacing(ctx: Context, after: int | None, expected: int | None,
                       actual: int | None) -> bool:
    rule = ctx.state.contract.advance
    if after is None or after > rule.max_after_distress:
        return False
    return not (rule.require_actual_not_harder_than_expected and expected is not None
                and actual is not None and actual > expected)


def _visible(text: str) -> bool:
    """Whether a text has anything to read: not only spaces, zero-width or control marks."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
               for ch in text)
