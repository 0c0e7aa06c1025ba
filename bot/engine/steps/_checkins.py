"""The check-in, and the de-escalation loop built into it.

A 0–10 rating (SUDS-style); ``before`` also asks how hard the client expects the exercise to
be, ``after`` how hard it was and whether relief followed; body cues if the step asks for
them. A rating at or above the threshold, or any under-arousal cue, runs the calming exercises
with a re-rating after each; still high after :data:`MAX_CALM_ROUNDS` rounds, the session
closes gently. The same check-in closes every role-play scene (and is due within it), and is
the last rating before a session cap closes the session, at any step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.engine._buttons import (
    OVER_CUES,
    UNDER_CUES,
    CuesDone,
    CueTicked,
    GoOn,
    Press,
    Rating,
    Relief,
    ReliefFelt,
)
from bot.engine._context import Choice
from bot.engine._questions import ask_if_safe, rating_rows
from bot.engine._state import Part
from bot.engine._terms import MAX_TEXT
from bot.engine.steps._base import Handler
from bot.engine.steps._pages import show_page, turn_page, writes
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run

#: Calming rounds before a session whose distress stays high closes gently.
MAX_CALM_ROUNDS = 2
#: The library's grounding exercise, for under-arousal when the calm list has none.
LIBRARY_GROUNDING = "grounding-54321"
#: The parts of a check-in, which the check-in runs at any step.
CHECKIN_PARTS = (Part.RATING, Part.EXPECTED, Part.ACTUAL, Part.RELIEF, Part.CUES, Part.CALM,
                 Part.RECHECK)
#: The parts answered with a 0–10 rating (pressed or typed).
RATING_PARTS = (Part.RATING, Part.RECHECK, Part.EXPECTED, Part.ACTUAL)


class CheckIns(Handler):
    """Runs the check-in parts of whatever step the client is at."""

    # -- showing ----------------------------------------------------------------------------
    def show(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        match frame.part:
            case Part.RATING | Part.RECHECK:
                question = run.kind(step).checkin_of(run, step).question
                asked = question if frame.part is Part.RATING else None
                text = ctx.script_text(asked) if asked else ctx.system("checkin.question")
                ctx.send(text, rating_rows())
            case Part.EXPECTED:
                ctx.send(ctx.system("checkin.expected"), rating_rows())
            case Part.ACTUAL:
                ctx.send(ctx.system("checkin.actual"), rating_rows())
            case Part.RELIEF:
                ctx.say("checkin.relief", [[ctx.button("relief_yes", ReliefFelt(Relief.YES)),
                                            ctx.button("relief_little",
                                                       ReliefFelt(Relief.A_LITTLE)),
                                            ctx.button("relief_no", ReliefFelt(Relief.NO))]])
            case Part.CUES:
                ctx.say("checkin.body_cues", self._cue_rows(run))
            case Part.CALM:
                show_page(run, self._calming(run))
            case _:
                raise ValueError(f"{frame.part!r} is not a part of a check-in")

    def _cue_rows(self, run: Run) -> list[list[Choice]]:
        ctx = run.ctx
        ticked = set(ctx.session.frame.cues)
        rows: list[list[Choice]] = []
        for group in (OVER_CUES, UNDER_CUES):
            row: list[Choice] = []
            for cue in group:
                label = ctx.label(cue.label)
                row.append((f"✓ {label}" if cue in ticked else label, CueTicked(cue)))
            rows.extend([row[:2], row[2:]])
        rows.append([ctx.button("done", CuesDone())])
        return rows

    def _calming(self, run: Run) -> m.Exercise:
        frame = run.ctx.session.frame
        assert frame.calm_exercise is not None
        return run.ctx.script.exercises[frame.calm_exercise]

    # -- answers ----------------------------------------------------------------------------
    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        match press:
            case Rating(value=value):
                self.rate(run, step, value)
            case ReliefFelt(relief=relief) if frame.part is Part.RELIEF:
                ctx.session.relief = relief
                ctx.log("relief", step=frame.step, relief=relief)
                self._after_details(run, step)
            case CueTicked() | CuesDone() if frame.part is Part.CUES:
                self._on_cue(run, step, press)
            case GoOn() if frame.part is Part.CALM:
                self._next_page(run)
            case _:
                run.show()

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        calm = run.ctx.session.frame.part is Part.CALM
        return MAX_TEXT if calm and writes(run, self._calming(run)) else None

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        run.keep(text)
        self._next_page(run)

    def skip(self, run: Run, step: m.Step) -> bool:
        if run.ctx.session.frame.part is Part.CALM and writes(run, self._calming(run)):
            self._next_page(run)
            return True
        return False

    def _next_page(self, run: Run) -> None:
        frame = run.ctx.session.frame
        if not turn_page(run, self._calming(run), calming=True):
            frame.part, frame.calm_exercise, frame.page = Part.RECHECK, None, 0
            run.show()

    def rate(self, run: Run, step: m.Step, value: int) -> None:
        """A rating, pressed or typed: at a rating part, distress; else how hard it was."""
        ctx = run.ctx
        frame = ctx.session.frame
        spec = run.kind(step).checkin_of(run, step)
        if frame.part is Part.EXPECTED:
            ctx.session.expected = value
            ctx.log("checkin_expected", step=frame.step, expected=value)
            self._after_details(run, step)
            return
        if frame.part is Part.ACTUAL:
            ctx.session.actual = value
            ctx.log("checkin_actual", step=frame.step, actual=value)
            if ctx.session.shared is False:  # nothing shared (all skipped): no relief asked
                self._after_details(run, step)
                return
            frame.part = Part.RELIEF
            run.show()
            return
        if frame.part not in (Part.RATING, Part.RECHECK):
            run.show()
            return
        ctx.session.distress = value
        high = value >= ctx.threshold(spec.high)
        if high:
            ctx.session.high_distress = True
        recheck = frame.part is Part.RECHECK
        ctx.log("checkin", step=frame.step, distress=value,
                moment="recheck" if recheck else spec.moment.value, round=frame.calm_round)
        if spec.moment is m.Moment.BEFORE and not recheck:
            ctx.session.distress_before = value
        if recheck or high:
            # High distress goes straight to calming: no more questions first.
            self._evaluate(run, step)
        elif spec.moment is m.Moment.BEFORE:
            frame.part = Part.EXPECTED
            run.show()
        elif spec.moment is m.Moment.AFTER:
            frame.part = Part.ACTUAL
            run.show()
        else:
            self._after_details(run, step)

    def _after_details(self, run: Run, step: m.Step) -> None:
        if run.kind(step).checkin_of(run, step).body_cues:
            run.ctx.session.frame.part = Part.CUES
            run.show()
        else:
            self._evaluate(run, step)

    def _on_cue(self, run: Run, step: m.Step, press: CueTicked | CuesDone) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        if isinstance(press, CuesDone):
            if frame.cues:
                ctx.say("checkin.body_info",
                        cues=[ctx.label(c.label) for c in frame.cues],
                        under=any(c.under_arousal for c in frame.cues))
            ctx.log("body_cues", step=frame.step, cues=list(frame.cues))
            self._evaluate(run, step)
            return
        cue = press.cue
        frame.cues = [c for c in frame.cues if c != cue] if cue in frame.cues else [
            *frame.cues, cue]
        ctx.send(ctx.system("checkin.body_cues"), self._cue_rows(run), replace=True)

    # -- where a check-in leads -------------------------------------------------------------
    def _evaluate(self, run: Run, step: m.Step) -> None:
        """Route by the last rating: high distress or under-arousal to de-escalation."""
        ctx = run.ctx
        frame = ctx.session.frame
        spec = run.kind(step).checkin_of(run, step)
        distress = ctx.session.distress or 0
        # Ticked cues are the first rating's: a low re-rating after grounding goes on.
        under = frame.part is not Part.RECHECK and any(c.under_arousal for c in frame.cues)
        high = distress >= ctx.threshold(spec.high)
        if high or under:
            frame.under = frame.under or under
            ctx.state.silence_armed = True
            ctx.timer("silence", ctx.now + ctx.res.policy.silence_followup)
            self._deescalate(run, step, list(spec.calm), distress, high=high)
            return
        frame.calm_round = 0
        frame.cues, frame.under = [], False
        if self._clears_crisis_hold(run):
            state = ctx.state
            state.crisis_hold_since, state.not_safe, state.crisis_kinds = None, False, []
            ctx.log("crisis_hold_cleared", by="check-in")
        ctx.say("checkin.thanks")
        if frame.closing:
            ctx.say("session.cap")
            run.end_session(completed=False, reason="session-cap")
        else:
            run.kind(step).after_checkin(run, step)

    def _clears_crisis_hold(self, run: Run) -> bool:
        """A fresh check-in lifts the hold in a session that started after the signal: once
        the therapist cleared it, or (unless only they may) once the hold's time was up."""
        ctx = run.ctx
        since, until = ctx.state.crisis_hold_since, ctx.hold_until()
        if since is None or until is None or ctx.session.started_at <= since:
            return False
        if ctx.state.crisis_hold_cleared_by_therapist:
            return True
        return not ctx.res.policy.crisis_hold_needs_therapist and ctx.session.started_at >= until

    def ground(self, run: Run, step: m.Step) -> None:
        """Under-arousal in the client's words ("I feel numb"): grounding, then a re-rating."""
        ctx = run.ctx
        frame = ctx.session.frame
        frame.under = True
        ctx.log("under_arousal", step=frame.step, said="words")  # the fact, never the words
        ctx.state.silence_armed = True
        ctx.timer("silence", ctx.now + ctx.res.policy.silence_followup)
        spec = run.kind(step).checkin_of(run, step)
        distress = ctx.session.distress or 0
        self._deescalate(run, step, list(spec.calm), distress,
                         high=distress >= ctx.threshold(spec.high))

    def _deescalate(self, run: Run, step: m.Step, calm: list[str], distress: int, *,
                    high: bool) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        run.kind(step).before_calming(run, step)
        grounding = _grounding(run, calm) if frame.under else None
        if grounding is not None:
            calm = [grounding]  # under-arousal: grounding in every round, never breathing
        if frame.calm_round >= MAX_CALM_ROUNDS or not calm:
            ctx.log("deescalation_closed", step=frame.step, rounds=frame.calm_round)
            sustained = high and frame.calm_round >= MAX_CALM_ROUNDS
            if sustained:  # still high after every round: crisis lines, the safety question
                ctx.urgent = True
                ctx.say_first("crisis.resources",
                              **ctx.lines().crisis_context(None, running=False))
            ctx.say("checkin.still_high", sustained=sustained)
            run.end_session(completed=False, reason="distress")
            if sustained:
                ctx.state.resting = True  # the menu waits for /start
                ask_if_safe(ctx)
            return
        exercise = calm[min(frame.calm_round, len(calm) - 1)]
        frame.calm_round += 1
        ctx.session.calmed = True
        ctx.log("deescalation", step=frame.step, exercise=exercise, round=frame.calm_round)
        if frame.under and distress < ctx.threshold(run.kind(step).checkin_of(run, step).high):
            ctx.say("checkin.under")  # far away, not "a lot"
        else:
            ctx.say("checkin.high", distress=distress)
        frame.part, frame.calm_exercise, frame.page = Part.CALM, exercise, 0
        run.show()


def _grounding(run: Run, calm: list[str]) -> str | None:
    """The grounding exercise for under-arousal: the calm list's, else the library's."""
    exercises = run.ctx.script.exercises
    for exercise in calm:
        if exercise in exercises and exercises[exercise].kind is m.ExerciseKind.GROUNDING:
            return exercise
    return LIBRARY_GROUNDING if LIBRARY_GROUNDING in exercises else None
