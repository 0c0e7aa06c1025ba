"""Running a script's steps for one client: say, ask, check-in, prompt, role-play, …

Every step waits for the client; ``branch`` and ``set`` are passed through at once. The
check-in's de-escalation loop is built in: a high rating (or an under-arousal cue) runs the
calm exercises with a re-rating after each, and still high after two rounds closes the session
gently. Nothing above the client's effective level is ever shown.
"""

from __future__ import annotations

import unicodedata

from bot.engine._context import Choice, Context
from bot.engine._outcome import Answer
from bot.engine._state import Frame, Opt
from bot.script import LoadedScript
from bot.script import _model as m
from bot.script._expr import parse_condition

#: Body cues: over-arousal first, then under-arousal (which always routes to grounding).
OVER_CUES = ("tight_chest", "shallow_breath", "tense_jaw", "racing_heart")
UNDER_CUES = ("numb", "foggy", "far_away", "frozen")
MAX_HOPS = 200
MAX_CALM_ROUNDS = 2


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
    if step.exercise is not None and frame.sub == "page":
        exercise = script.exercises.get(step.exercise)
        return exercise is not None and frame.page < len(exercise.pages)
    if step.roleplay is not None and frame.sub == "turn":
        return frame.turn < len(step.roleplay.turns)
    if frame.closing:
        return frame.sub in ("rating", "recheck")
    return frame.sub in _SUBS_BY_KIND.get(step.kind, ())


_SUBS_BY_KIND = {
    "say": ("say",),
    "ask": ("ask",),
    "checkin": ("rating", "expected", "actual", "relief", "cues", "recheck", "calm"),
    "prompt": ("prompt", "skip_reason"),
    "roleplay": ("turn", "rating", "recheck", "calm"),
    "exercise": ("page",),
    "connection": ("connection",),
}


class StepRunner:
    """Moves one client through the current session's script."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- entering steps ---------------------------------------------------------------------
    def enter(self, step_id: str | None) -> None:
        """Enter a step: run pass-through steps, then show the first step that waits."""
        ctx = self.ctx
        for _ in range(MAX_HOPS):
            if step_id is None:
                # The checker proves every path ends in `end`; this is only a safety net.
                self.end_session(completed=False, reason="script-ran-out")
                return
            step = ctx.script.steps[step_id]
            if step.set is not None:
                ctx.session.vars.update(step.set)
                step_id = ctx.script.following(step_id)
                continue
            if step.branch is not None:
                step_id = self._branch(step.branch)
                continue
            ctx.session.frame = Frame(step=step_id)
            self._begin(step)
            return
        ctx.log("script_fault", reason="too-many-steps-without-waiting", step=step_id)
        self.end_session(completed=False, reason="script-fault")

    def _branch(self, arms: list[m.BranchArm]) -> str:
        variables = self.ctx.variables()
        for arm in arms:
            if arm.if_ is None or parse_condition(arm.if_).evaluate(variables):
                return arm.goto
        return arms[-1].goto

    def _begin(self, step: m.Step) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        if step.checkin is not None:
            frame.sub = "rating"
        elif step.prompt is not None:
            prompt = self._draw_prompt(step.prompt)
            if prompt is None:
                ctx.say("prompt.none_left")
                self.enter(ctx.script.following(step.id))
                return
            frame.prompt = prompt.id
            frame.sub = "prompt"
            if step.prompt.intro:
                ctx.send(ctx.script_text(step.prompt.intro))
        elif step.roleplay is not None:
            frame.sub = "turn"
            character = step.roleplay.character
            scene = ctx.script_text(step.roleplay.scene, character=character)
            ctx.say("roleplay.frame", character=character, scene=scene)
            ctx.log("roleplay_started", script=ctx.session.script, step=step.id)
            if not self._seek_turn(step.roleplay):
                self._scene_over(step.roleplay)
                return
        elif step.exercise is not None:
            frame.sub = "page"
        elif step.end is not None:
            ctx.send(ctx.script_text(step.end))
            self.end_session(completed=True, reason="end")
            return
        else:
            frame.sub = step.kind
        self.show()

    # -- showing the current question -------------------------------------------------------
    def show(self) -> None:
        """(Re)send the question the client is being asked now; changes no progress."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        pace_row: list[Choice] = [ctx.button("smaller", "sm"), ctx.button("skip", "sk")]
        pause = ctx.button("pause", "pa")
        if frame.sub in ("rating", "recheck"):
            question = step.checkin.question if step.checkin and frame.sub == "rating" else None
            text = ctx.script_text(question) if question else ctx.system("checkin.question")
            ctx.send(text, _rating_rows())
        elif frame.sub == "expected":
            ctx.send(ctx.system("checkin.expected"), _rating_rows())
        elif frame.sub == "actual":
            ctx.send(ctx.system("checkin.actual"), _rating_rows())
        elif frame.sub == "relief":
            ctx.say("checkin.relief", [[ctx.button("relief_yes", "l0"),
                                        ctx.button("relief_little", "l1"),
                                        ctx.button("relief_no", "l2")]])
        elif frame.sub == "cues":
            ctx.say("checkin.body_cues", self._cue_rows())
        elif frame.sub in ("page", "calm"):
            self._show_page()
        elif frame.sub == "say":
            assert step.say is not None
            ctx.send(ctx.script_text(step.say), [[ctx.button("go_on", "go"), pause]])
        elif frame.sub == "ask":
            assert step.ask is not None
            rows = [[(choice.label, f"c{i}")] for i, choice in enumerate(step.ask.choices)]
            ctx.send(ctx.script_text(step.ask.text), rows)
        elif frame.sub == "prompt":
            ctx.send(self._prompt_text(), [[ctx.button("shared", "sh")], pace_row, [pause]])
        elif frame.sub == "skip_reason":
            ctx.say("prompt.skip_reason", [
                [ctx.button("skip_not_today", "s0"), ctx.button("skip_too_much", "s1")],
                [ctx.button("skip_private", "s2")], [ctx.button("skip_no_reason", "s3")]])
        elif frame.sub == "turn":
            assert step.roleplay is not None
            turn = step.roleplay.turns[frame.turn]
            line = turn.smaller if frame.smaller and turn.smaller else turn.says
            text = ctx.system("roleplay.line", character=step.roleplay.character,
                              line=ctx.script_text(line, character=step.roleplay.character))
            helpers: list[Choice] = []
            if turn.hint:
                helpers.append(ctx.button("hint", "hi"))
            if turn.example:
                helpers.append(ctx.button("example", "ex"))
            rows = [[ctx.button("said_it", "sd")], *([helpers] if helpers else []),
                    pace_row, [pause]]
            ctx.send(text, rows)
        elif frame.sub == "connection":
            assert step.connection is not None
            ctx.send(ctx.script_text(step.connection), [[ctx.button("skip", "sk")], [pause]])

    def _cue_rows(self) -> list[list[Choice]]:
        ctx = self.ctx
        ticked = set(ctx.session.frame.cues)
        rows: list[list[Choice]] = []
        for group in (OVER_CUES, UNDER_CUES):
            row = []
            for cue in group:
                label = ctx.label(f"cue_{cue}")
                row.append((f"✓ {label}" if cue in ticked else label, f"k{cue}"))
            rows.extend([row[:2], row[2:]])
        rows.append([ctx.button("done", "kd")])
        return rows

    def _exercise_now(self) -> m.Exercise:
        frame = self.ctx.session.frame
        if frame.sub == "calm":
            assert frame.calm_exercise is not None
            return self.ctx.script.exercises[frame.calm_exercise]
        step = self.ctx.script.steps[frame.step]
        assert step.exercise is not None
        return self.ctx.script.exercises[step.exercise]

    def _show_page(self) -> None:
        ctx = self.ctx
        page = self._exercise_now().pages[ctx.session.frame.page]
        if page.write is not None:
            ctx.send(ctx.script_text(page.write), [[ctx.button("skip", "sk")]])
        else:
            assert page.say is not None
            label = page.button or ctx.label("go_on")
            ctx.send(ctx.script_text(page.say), [[(label, "go")]])

    def _prompt_text(self) -> str:
        ctx = self.ctx
        frame = ctx.session.frame
        assert frame.prompt is not None
        prompt = ctx.script.prompts[frame.prompt]
        if frame.smaller and prompt.smaller:
            return ctx.system("prompt.smaller", text=ctx.script_text(prompt.smaller))
        return ctx.script_text(prompt.text)

    # -- prompts ----------------------------------------------------------------------------
    def _draw_prompt(self, spec: m.PromptStep, below: int | None = None) -> m.Prompt | None:
        """The next unused prompt at the wanted level, never above the effective level."""
        ctx = self.ctx
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

    # -- answers ----------------------------------------------------------------------------
    def on_button(self, code: str) -> None:
        """Handle a live button press for the current step."""
        ctx = self.ctx
        frame = ctx.session.frame
        if code == "pa":
            self.pause()
        elif code == "sm":
            self.smaller()
        elif code == "sk":
            self.skip()
        elif code.startswith("r") and code[1:].isdigit():
            self._on_rating(int(code[1:]))
        elif code.startswith("l") and frame.sub == "relief":
            relief = ("yes", "a-little", "no")[int(code[1:])]
            ctx.session.relief = relief
            ctx.log("relief", step=frame.step, relief=relief)
            self._after_relief()
        elif code.startswith("k") and frame.sub == "cues":
            self._on_cue(code[1:])
        elif code == "go":
            self._go_on()
        elif code.startswith("c") and frame.sub == "ask":
            self._on_choice(int(code[1:]))
        elif code == "sh":
            self._prompt_answered(response="shared")
        elif code == "sd":
            self._turn_answered(response="said-it")
        elif code in ("hi", "ex"):
            self._helper(code)
        elif code.startswith("s") and frame.sub == "skip_reason":
            reason = ("not_today", "too_much", "private", None)[int(code[1:])]
            self._skipped(reason)
        else:
            self.show()

    def on_text(self, text: str) -> None:
        """Handle free text for the current step (crisis and stop are handled before)."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        stripped = text.strip()
        if frame.sub in ("rating", "recheck", "expected", "actual"):
            value = _as_int(stripped)
            if value is None or not 0 <= value <= 10:
                ctx.say("unexpected.out_of_range", low=0, high=10)
                self.show()
                return
            self._on_rating(value)
            return
        accepts_text = (
            frame.sub in ("prompt", "turn", "connection")
            or (frame.sub == "ask" and step.ask is not None and step.ask.free_text is not None)
            or (frame.sub in ("page", "calm") and self._exercise_now().pages[frame.page].write)
        )
        if not accepts_text:
            ctx.say("unexpected.text_at_buttons")
            self.show()
            return
        if not _visible(stripped):
            ctx.say("unexpected.empty")
            self.show()
            return
        limit = 4000
        if frame.sub == "ask" and step.ask is not None and step.ask.free_text is not None:
            limit = step.ask.free_text.max_length
        if len(stripped) > limit:
            ctx.say("unexpected.too_long", limit=limit)
            self.show()
            return
        if frame.sub == "ask":
            self._on_free_text(stripped)
        elif frame.sub == "prompt":
            self._keep(stripped)
            self._prompt_answered(response="text")
        elif frame.sub == "turn":
            self._keep(stripped)
            self._turn_answered(response="text")
        elif frame.sub == "connection":
            self._connection_noted(stripped)
        else:
            self._keep(stripped)
            self._next_page()

    def forget_typed(self) -> None:
        """Empty the session's variables saved from typed text (the client deleted them)."""
        session = self.ctx.state.session
        script = self.ctx.res.scripts.get(session.script) if session is not None else None
        if session is None or script is None:
            return
        for step in script.steps.values():
            rules = step.ask.free_text if step.ask is not None else None
            if rules is not None and rules.save_as in session.vars and not rules.number:
                session.vars[rules.save_as] = ""

    def _keep(self, text: str, kind: str = "answer") -> None:
        """Store free text only with the client's opt-in; otherwise it is dropped here."""
        ctx = self.ctx
        if ctx.opted(Opt.STORE_FREE_TEXT):
            ctx.out.answers.append(Answer(step=ctx.session.frame.step, text=text, kind=kind))

    def _go_on(self) -> None:
        frame = self.ctx.session.frame
        if frame.sub in ("page", "calm"):
            self._next_page()
        elif frame.sub == "say":
            self.enter(self.ctx.script.following(frame.step))
        else:
            self.show()

    def _on_choice(self, index: int) -> None:
        ctx = self.ctx
        step = ctx.script.steps[ctx.session.frame.step]
        assert step.ask is not None
        if not 0 <= index < len(step.ask.choices):
            self.show()
            return
        choice = step.ask.choices[index]
        value = choice.value or choice.label
        if step.ask.save_as:
            ctx.session.vars[step.ask.save_as] = value
        if choice.set:
            ctx.session.vars.update(choice.set)
        ctx.log("answer", step=step.id, choice=value)
        self.enter(choice.goto or ctx.script.following(step.id))

    def _on_free_text(self, text: str) -> None:
        ctx = self.ctx
        step = ctx.script.steps[ctx.session.frame.step]
        assert step.ask is not None and step.ask.free_text is not None
        rules = step.ask.free_text
        if rules.number:
            value = _as_int(text)
            low = rules.min if rules.min is not None else -(10**9)
            high = rules.max if rules.max is not None else 10**9
            if value is None or not low <= value <= high:
                ctx.say("unexpected.out_of_range", low=low, high=high)
                self.show()
                return
            if rules.save_as:
                ctx.session.vars[rules.save_as] = value
        else:
            if len(text) < rules.min_length:
                ctx.say("unexpected.empty")
                self.show()
                return
            self._keep(text)
            if rules.save_as:
                stored = text if ctx.opted(Opt.STORE_FREE_TEXT) else ""
                ctx.session.vars[rules.save_as] = stored
        ctx.log("answer", step=step.id, free_text=True)
        self.enter(ctx.script.following(step.id))

    # -- check-ins --------------------------------------------------------------------------
    def _checkin_spec(self) -> tuple[m.Moment, bool, int | None, list[str]]:
        """Moment, body cues, own threshold and calm exercises of the current check-in."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if step.checkin is not None:
            c = step.checkin
            if frame.closing:  # the last rating before a cap closes the session: no extras
                return m.Moment.DURING, False, c.high, ctx.script.calm_for(c.calm)
            return c.moment, c.body_cues, c.high, ctx.script.calm_for(c.calm)
        if step.roleplay is not None:
            return m.Moment.DURING, False, None, ctx.script.calm_for(step.roleplay.calm)
        # The closing rating of a session cap can come at any step.
        return m.Moment.DURING, False, None, ctx.script.calm_for([])

    def _on_rating(self, value: int) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        moment, cues, own, _ = self._checkin_spec()
        if frame.sub == "expected":
            ctx.session.expected = value
            ctx.log("checkin_expected", step=frame.step, expected=value)
            self._after_details(cues)
            return
        if frame.sub == "actual":
            ctx.session.actual = value
            ctx.log("checkin_actual", step=frame.step, actual=value)
            frame.sub = "relief"
            self.show()
            return
        if frame.sub not in ("rating", "recheck"):
            self.show()
            return
        ctx.session.distress = value
        if value >= ctx.threshold(own):
            ctx.session.high_distress = True
        recheck = frame.sub == "recheck"
        ctx.log("checkin", step=frame.step, distress=value,
                moment="recheck" if recheck else moment.value, round=frame.calm_round)
        if moment is m.Moment.BEFORE and not recheck:
            ctx.session.distress_before = value
        if recheck or value >= ctx.threshold(own):
            # High distress goes straight to calming: no more questions first.
            self._evaluate()
        elif moment is m.Moment.BEFORE:
            frame.sub = "expected"
            self.show()
        elif moment is m.Moment.AFTER:
            frame.sub = "actual"
            self.show()
        elif cues:
            frame.sub = "cues"
            self.show()
        else:
            self._evaluate()

    def _after_relief(self) -> None:
        _, cues, _, _ = self._checkin_spec()
        self._after_details(cues)

    def _after_details(self, cues: bool) -> None:
        frame = self.ctx.session.frame
        if cues:
            frame.sub = "cues"
            self.show()
        else:
            self._evaluate()

    def _on_cue(self, cue: str) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        if cue == "d":
            if frame.cues:
                ctx.say("checkin.body_info", cues=[ctx.label(f"cue_{c}") for c in frame.cues],
                        under=any(c in UNDER_CUES for c in frame.cues))
            ctx.log("body_cues", step=frame.step, cues=list(frame.cues))
            self._evaluate()
            return
        if cue not in OVER_CUES + UNDER_CUES:
            self.show()
            return
        ticked = cue in frame.cues
        frame.cues = [c for c in frame.cues if c != cue] if ticked else [*frame.cues, cue]
        ctx.send(ctx.system("checkin.body_cues"), self._cue_rows(), replace=True)

    def _evaluate(self) -> None:
        """Route by the last rating: high distress or under-arousal to de-escalation."""
        ctx = self.ctx
        frame = ctx.session.frame
        _, _, own, calm = self._checkin_spec()
        distress = ctx.session.distress or 0
        under = any(c in UNDER_CUES for c in frame.cues)
        if distress >= ctx.threshold(own) or under:
            ctx.state.silence_armed = True
            ctx.timer("silence", ctx.now + ctx.res.policy.silence_followup)
            self._deescalate(calm, distress)
            return
        frame.calm_round = 0
        frame.cues = []
        if self._clears_crisis_hold():
            ctx.state.crisis_hold_since = None
            ctx.log("crisis_hold_cleared", by="check-in")
        ctx.say("checkin.thanks")
        self._after_checkin()

    def _clears_crisis_hold(self) -> bool:
        ctx = self.ctx
        since = ctx.state.crisis_hold_since
        if since is None or ctx.session.started_at <= since:
            return False
        return (not ctx.res.policy.crisis_hold_needs_therapist
                or ctx.state.crisis_hold_cleared_by_therapist)

    def _deescalate(self, calm: list[str], distress: int) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if step.roleplay is not None and frame.turn < self._turn_limit(step.roleplay):
            ctx.say("roleplay.step_out", character=step.roleplay.character)
            frame.turn = len(step.roleplay.turns)
        if frame.calm_round >= MAX_CALM_ROUNDS or not calm:
            ctx.log("deescalation_closed", step=frame.step, rounds=frame.calm_round)
            ctx.say("checkin.still_high")
            self.end_session(completed=False, reason="distress")
            return
        exercise = calm[min(frame.calm_round, len(calm) - 1)]
        frame.calm_round += 1
        ctx.session.calmed = True
        ctx.log("deescalation", step=frame.step, exercise=exercise, round=frame.calm_round)
        ctx.say("checkin.high", distress=distress)
        frame.sub, frame.calm_exercise, frame.page = "calm", exercise, 0
        self.show()

    def _after_checkin(self) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        if frame.closing:
            ctx.say("session.cap")
            self.end_session(completed=False, reason="session-cap")
            return
        step = ctx.script.steps[frame.step]
        if step.roleplay is None:
            self.enter(ctx.script.following(step.id))
            return
        frame.turns_since_checkin = 0
        if frame.turn >= self._turn_limit(step.roleplay) or not self._seek_turn(step.roleplay):
            if step.roleplay.debrief:
                ctx.send(ctx.script_text(step.roleplay.debrief))
            self.enter(ctx.script.following(step.id))
            return
        frame.sub = "turn"
        self.show()

    # -- exercises --------------------------------------------------------------------------
    def _next_page(self) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        exercise = self._exercise_now()
        if frame.page + 1 < len(exercise.pages):
            frame.page += 1
            self.show()
            return
        ctx.log("exercise_done", exercise=exercise.id, calming=frame.sub == "calm")
        if frame.sub == "calm":
            frame.sub, frame.calm_exercise, frame.page = "recheck", None, 0
            self.show()
        else:
            self.enter(ctx.script.following(frame.step))

    # -- prompts and pacing -----------------------------------------------------------------
    def _prompt_answered(self, response: str) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        if frame.sub != "prompt" or frame.prompt is None:
            self.show()
            return
        prompt = ctx.script.prompts[frame.prompt]
        progress = ctx.state.progress
        progress.prompts_shared += 1
        if prompt.id not in progress.used_prompts:
            progress.used_prompts.append(prompt.id)
        ctx.log("prompt", step=frame.step, prompt=prompt.id, level=prompt.level,
                smaller=frame.smaller, response=response)
        ctx.say("prompt.ack")
        self.enter(ctx.script.following(frame.step))

    def smaller(self) -> None:
        """Honour "smaller step" at once: a gentler wording or a lower level."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        offered = False
        if frame.sub == "prompt" and frame.prompt is not None and step.prompt is not None:
            prompt = ctx.script.prompts[frame.prompt]
            if not frame.smaller and prompt.smaller:
                frame.smaller = offered = True
            else:
                lower = self._draw_prompt(step.prompt, below=prompt.level)
                if lower is not None and lower.level < prompt.level:
                    frame.prompt, frame.smaller, offered = lower.id, False, True
        elif frame.sub == "turn" and step.roleplay is not None:
            turn = step.roleplay.turns[frame.turn]
            if turn.smaller and not frame.smaller:
                frame.smaller = offered = True
            elif turn.example:
                ctx.say("roleplay.example", example=ctx.script_text(turn.example))
                offered = True
        if not offered:
            ctx.say("pacing.smallest")
        else:
            ctx.state.progress.smaller_steps += 1
            ctx.log("pacing", choice="smaller", step=frame.step)
        self.show()

    def skip(self) -> None:
        """Skip the current disclosure step (a reason is asked, never required)."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if frame.sub == "prompt":
            frame.sub = "skip_reason"
            self.show()
        elif frame.sub == "skip_reason":  # /skip while asked why: skip, no reason needed
            self._skipped(None)
        elif frame.sub == "turn" and step.roleplay is not None:
            ctx.log("pacing", choice="skip", step=frame.step, turn=frame.turn)
            self._advance_turn(step.roleplay)
        elif frame.sub == "connection":
            ctx.log("pacing", choice="skip", step=frame.step)
            self.enter(ctx.script.following(frame.step))
        elif frame.sub in ("page", "calm") and self._exercise_now().pages[frame.page].write:
            self._next_page()
        else:
            ctx.say("pacing.cannot_skip")
            self.show()

    def _skipped(self, reason: str | None) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        ctx.log("pacing", choice="skip", step=frame.step, prompt=frame.prompt, reason=reason)
        ctx.say("prompt.skip_ack", reason=reason)
        self.enter(ctx.script.following(frame.step))

    def pause(self) -> None:
        """Pause the session; nothing more is asked until the client resumes."""
        ctx = self.ctx
        ctx.session.paused = True
        ctx.log("pacing", choice="pause", step=ctx.session.frame.step)
        ctx.say("pause.done", [[ctx.button("resume", "re")]])

    # -- role-play --------------------------------------------------------------------------
    def _turn_limit(self, play: m.RolePlay) -> int:
        return min(len(play.turns), self.ctx.state.contract.roleplay_turns)

    def _seek_turn(self, play: m.RolePlay) -> bool:
        """Move to the first playable turn from the current one; False if none is left."""
        ctx = self.ctx
        frame = ctx.session.frame
        level = ctx.effective_level()
        while frame.turn < self._turn_limit(play):
            turn = play.turns[frame.turn]
            if turn.level <= level:
                frame.smaller = False
                return True
            if turn.smaller:
                frame.smaller = True
                return True
            ctx.log("turn_left_out", step=frame.step, turn=frame.turn, level=turn.level)
            frame.turn += 1
        return False

    def _turn_answered(self, response: str) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if frame.sub != "turn" or step.roleplay is None:
            self.show()
            return
        turn = step.roleplay.turns[frame.turn]
        ctx.log("roleplay_turn", step=frame.step, turn=frame.turn, level=turn.level,
                smaller=frame.smaller, response=response)
        frame.turns_since_checkin += 1
        due = turn.hostile or frame.turns_since_checkin >= step.roleplay.checkin_every
        self._advance_turn(step.roleplay, checkin=due)

    def _advance_turn(self, play: m.RolePlay, *, checkin: bool = False) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        frame.turn += 1
        if frame.turn >= self._turn_limit(play) or not self._seek_turn(play):
            self._scene_over(play)
            return
        if checkin:
            frame.sub = "rating"
        self.show()

    def _scene_over(self, play: m.RolePlay) -> None:
        """Step out of the role, then the check-in that always closes a scene."""
        ctx = self.ctx
        frame = ctx.session.frame
        frame.turn = len(play.turns)
        ctx.say("roleplay.step_out", character=play.character)
        frame.sub = "rating"
        self.show()

    def _helper(self, code: str) -> None:
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if frame.sub == "turn" and step.roleplay is not None:
            turn = step.roleplay.turns[frame.turn]
            if code == "hi" and turn.hint:
                ctx.say("roleplay.hint", hint=ctx.script_text(turn.hint))
            elif code == "ex" and turn.example:
                ctx.say("roleplay.example", example=ctx.script_text(turn.example))
            ctx.log("roleplay_help", step=frame.step, turn=frame.turn,
                    help="hint" if code == "hi" else "example")
        self.show()

    # -- connection log ---------------------------------------------------------------------
    def _connection_noted(self, text: str) -> None:
        ctx = self.ctx
        progress = ctx.state.progress
        progress.connections += 1
        if ctx.opted(Opt.STORE_FREE_TEXT):
            progress.last_connection = text
            self._keep(text, kind="connection")
        ctx.log("connection_noted", step=ctx.session.frame.step)
        self.enter(ctx.script.following(ctx.session.frame.step))

    # -- closing ----------------------------------------------------------------------------
    def close_for_cap(self) -> None:
        """A session cap was reached: step out of any role, a last rating, then close."""
        ctx = self.ctx
        frame = ctx.session.frame
        step = ctx.script.steps[frame.step]
        if frame.closing:
            return
        turn = frame.turn
        if step.roleplay is not None and frame.turn < len(step.roleplay.turns):
            ctx.say("roleplay.step_out", character=step.roleplay.character)
            turn = len(step.roleplay.turns)  # out of the role: not stepped out of twice
        ctx.log("session_cap", step=frame.step)
        ctx.session.frame = Frame(step=frame.step, sub="rating", closing=True, turn=turn)
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
        if completed and not (session.high_distress or session.calmed):
            offer_level_up(ctx)


def offer_level_up(ctx: Context) -> None:
    """Ask (never push) about one level up, only when the contract's rule holds."""
    state = ctx.state
    rule = state.contract.advance
    done = state.progress.completed_at_level.get(str(state.level), 0)
    if (done >= rule.completed_at_level and state.level < state.contract.max_level
            and not ctx.crisis_hold()):
        state.pending = "level"
        ctx.log("level_offered", level=state.level, next_level=state.level + 1)
        ctx.say("level.offer", [[ctx.button("level_yes", "ly")], [ctx.button("level_no", "ln")]],
                level=state.level, next_level=state.level + 1)


def _counts_for_pacing(ctx: Context, after: int | None, expected: int | None,
                       actual: int | None) -> bool:
    rule = ctx.state.contract.advance
    if after is None or after > rule.max_after_distress:
        return False
    return not (rule.require_actual_not_harder_than_expected and expected is not None
                and actual is not None and actual > expected)


def _rating_rows() -> list[list[Choice]]:
    return [[(str(i), f"r{i}") for i in range(6)], [(str(i), f"r{i}") for i in range(6, 11)]]


def _visible(text: str) -> bool:
    """Whether a text has anything to read: not only spaces, zero-width or control marks."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
               for ch in text)


def _as_int(text: str) -> int | None:
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 6:
        return int(text)
    return None
