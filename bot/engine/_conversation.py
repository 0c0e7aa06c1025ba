"""The conversation around the script: asking questions, starting, the menu, sessions, stopping.

One :class:`Conversation` lives for one event. The questions (:mod:`bot.engine._questions`)
and the engine's front door (:mod:`bot.engine._engine`) use it; the script's steps run in
:class:`~bot.engine.steps.Run`.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from bot.crisis import Detection
from bot.engine._agreement import current_terms
from bot.engine._buttons import MenuItem, Resume
from bot.engine._context import Context
from bot.engine._outcome import Alert, Effect
from bot.engine._policy import RISK_KINDS
from bot.engine._questions import (
    OUTCOMES_EVERY,
    ConsentQuestion,
    ContractQuestion,
    CrisisQuestion,
    MenuQuestion,
    OutcomeQuestion,
    Pending,
    SafetyPlanQuestion,
    StopQuestion,
    StopRequestQuestion,
    agreement_lines,
)
from bot.engine._reminders import next_reminder, parse_hhmm, zone
from bot.engine._state import Frame, Session
from bot.engine._terms import Opt
from bot.engine.steps import Run
from bot.intents import SafetyAnswer


class Conversation:
    """What the engine does for one client outside the steps of a script.

    Attributes:
        ctx: The event's context (state, outcome, texts).
        state: The client's state being changed.
        runner: Runs the session's steps.
        previous: When the client last wrote before this event (None: never).
    """

    def __init__(self, ctx: Context, previous: datetime | None) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.runner = Run(ctx)
        self.previous = previous

    # -- questions --------------------------------------------------------------------------
    def ask(self, question: Pending) -> None:
        """Wait for the answer to a question outside the script, and ask it."""
        self.state.pending = question
        question.ask(self)

    def repeat(self) -> None:
        """Show the current question again (after an unexpected input)."""
        state = self.state
        if state.pending is not None:
            state.pending.again(self)
        elif state.session is not None and not state.halted:
            if state.session.paused:  # the way back in, with a live button
                self.paused()
            else:
                self.runner.show()

    def paused(self) -> None:
        """Say the session is paused, with the button that resumes it."""
        self.ctx.say("pause.done", [[self.ctx.button("resume", Resume())]],
                     character=self.runner.role())

    def consented(self) -> bool:
        """Whether the client agreed to the current terms."""
        return self.ctx.opted(Opt.CORE)

    def ask_consent(self) -> None:
        """Ask for consent from the start (saying so when the terms changed)."""
        if self.state.consents and not self.consented():
            self.ctx.say("consent.changed")
        self.ask(ConsentQuestion())

    # -- gatekeepers ------------------------------------------------------------------------
    def crisis(self, detection: Detection | None) -> None:
        """Crisis lines first, then the client's safety plan, then "are you safe right now?".

        Args:
            detection: What the client's words matched, or None for ``/sos``. The first
                message always carries the emergency number and the lines for the kinds
                matched (for ``/sos``: every kind's lines).
        """
        ctx, state = self.ctx, self.state
        ctx.urgent = True  # all of it reaches the client at once, whatever the pacing
        running = state.session is not None and not state.session.paused
        scene = running and self.runner.in_role()
        kinds = [k.value for k in detection.kinds] if detection else []
        alerted = self._alert("crisis" if detection else "sos", kinds=kinds,
                              imminent=bool(detection and detection.imminent))
        ctx.say_first("crisis.resources", **{**ctx.lines().crisis_context(
            detection, running=running, scene=scene), "alerted": alerted == "sent"})
        self.ask(CrisisQuestion())
        if detection is None:
            ctx.log("sos_viewed")
        else:
            # The fact and the kinds: never the client's words, nor the rules that matched (a
            # rule's name paraphrases them; `rehearse crisis explain` shows rules to a
            # therapist).
            ctx.log("crisis_language", step=state.session.frame.step if state.session else None,
                    kinds=kinds, imminent=detection.imminent)
            state.crisis_kinds = kinds
        if detection is not None or running:  # /sos mid-exercise: the same hold and pause
            self._hold(reason="crisis" if detection else "sos")
        if running:
            assert state.session is not None
            state.session.paused = True
            ctx.log("pacing", choice="pause", reason="crisis" if detection else "sos")

    def _alert(self, signal: str, *, kinds: list[str], imminent: bool = False,
               answer: SafetyAnswer | None = None) -> str:
        """Tell the client's therapist about a risk signal, if the client opted in to that.

        At most one alert goes out per ``safety.alert_min_minutes``; the answer to the safety
        question that follows it goes too, once, as a follow-up ("answered: not safe"). A
        "safe" answer is only ever such a follow-up. A signal inside the window is ledgered
        as not sent. The alert says which client, when, the kind and the answer, never what
        the client wrote.

        Args:
            signal: ``crisis`` (risk language), ``sos``, or the safety answer's value.
            kinds: The kinds of risk of the signal (empty: /sos or not known).
            imminent: The words named a plan, means or time.
            answer: The answer to "are you safe right now?", for a safety answer.

        Returns:
            ``sent``, ``earlier`` (the therapist was alerted within the window, or nothing
            new to send), or ``off`` (the client has not opted in).
        """
        ctx, state = self.ctx, self.state
        if not ctx.opted(Opt.ALERT_THERAPIST):
            return "off"
        follow_up = answer is not None and state.alert_follow_up
        since = state.alert_sent_at
        if not follow_up and (answer is SafetyAnswer.SAFE or (
                since is not None and ctx.now < since + ctx.res.policy.alert_min)):
            if answer is not SafetyAnswer.SAFE:
                ctx.log("therapist_alert", signal=signal, kinds=kinds, sent=False,
                        reason="rate-limit")
            return "earlier"
        policy = ctx.res.policy
        local = ctx.now.astimezone(zone(None, policy.default_timezone))
        ctx.out.alerts.append(Alert(ctx.system(
            "alert.therapist", name=ctx.name, client=state.client_id,
            when=f"{local:%a} {local.day} {local:%b} {local:%H:%M} ({policy.default_timezone})",
            signal=signal, kinds=kinds, imminent=imminent,
            answer=answer.value if answer is not None else "", follow_up=follow_up)))
        ctx.log("therapist_alert", signal=signal, kinds=kinds, sent=True, follow_up=follow_up)
        if follow_up:
            state.alert_follow_up = False
        else:
            state.alert_sent_at = ctx.now
            state.alert_follow_up = answer is None  # the safety question's answer follows
        return "sent"

    def _hold(self, *, reason: str) -> None:
        """Begin (or begin again) the crisis hold, from now."""
        ctx, state = self.ctx, self.state
        state.crisis_hold_since = ctx.now
        state.crisis_hold_cleared_by_therapist = False
        if state.session is not None:
            state.session.held = True
        until = ctx.hold_until()
        assert until is not None
        ctx.log("crisis_hold", reason=reason, until=until.isoformat())

    def _until(self) -> str:
        """When the crisis hold's time is up, in the client's time zone (a hold is on)."""
        until = self.ctx.hold_until()
        assert until is not None
        return self.ctx.local_time(until)

    def safety_answer(self, answer: SafetyAnswer, *, typed: bool) -> None:
        """The answer to "are you safe right now?": support, and for not safe or unsure,
        the end of practice for the hold."""
        ctx, state = self.ctx, self.state
        how = {"typed": True} if typed else {}  # a tapped answer's row is as it always was
        alerted = self._alert(answer.value, kinds=state.crisis_kinds, answer=answer)
        if answer is SafetyAnswer.SAFE:
            ctx.log("crisis_safe", **how)
            session = state.session
            ctx.say("crisis.safe", paused=session is not None and session.paused,
                has_plan=state.safety_plan is not None)
            if ctx.crisis_hold():
                ctx.say("crisis.hold", until=self._until(), support_only=ctx.support_only())
            return
        ctx.urgent = True
        ctx.log("crisis_not_safe", answer=answer.value, **how)
        session = state.session
        scene = session is not None and self.runner.in_role()
        ctx.say_first("crisis.not_safe", emergency=ctx.lines().emergency,
                      unsure=answer is SafetyAnswer.UNSURE, scene=scene, alert=alerted)
        kinds = tuple(state.crisis_kinds) or RISK_KINDS
        ctx.send(ctx.system("crisis.resources", groups=ctx.lines().groups(kinds),
                            emergency=ctx.lines().emergency, noticed=False, paused=False,
                            scene=False, imminent=False, plan="",  # the plan came first
                            alerted=False))
        if session is not None:
            ctx.log("session_ended", script=session.script, completed=False, reason="not-safe")
            state.session = None
        self._hold(reason=answer.value)
        state.not_safe = True
        state.silence_armed = False
        ctx.cancel_timer("silence")
        ctx.say("crisis.practice_ended", ended=session is not None, until=self._until())

    def safety_plan(self) -> None:
        """``/safetyplan``: the plan so far and what next, or first what saving one means."""
        state = self.state
        if not self.consented():  # nothing is written down before the terms are agreed to
            self.ask_consent()
            return
        before = state.pending
        if isinstance(before, SafetyPlanQuestion):  # asked again: what came before it
            before = before.before
        written = state.safety_plan is not None and bool(state.safety_plan.filled())
        self.ask(SafetyPlanQuestion(step="overview" if written else "intro", before=before))

    def contract(self) -> None:
        """``/contract``: the agreement as it is, its history, then a change waiting, if any."""
        ctx, state = self.ctx, self.state
        if not self.consented():
            self.ask_consent()
            return
        history = [{"date": ctx.local_time(agreed.at), "status": agreed.status,
                    "terms": agreement_lines(ctx, agreed.change.terms())}
                   for agreed in state.contract_history]
        ctx.say("contract.overview", terms=agreement_lines(ctx, current_terms(state.contract)),
                history=history, waiting=state.proposal is not None)
        if state.proposal is None:
            self.repeat()
            return
        before = state.pending
        if isinstance(before, ContractQuestion):  # asked again: what came before it
            before = before.before
        self.ask(ContractQuestion(number=state.proposal.number, before=before))

    def support(self) -> None:
        """While only support may follow "not safe": a short reply, never a script step."""
        ctx, state = self.ctx, self.state
        ctx.log("crisis_support")
        ctx.say("crisis.support", emergency=ctx.lines().emergency,
                groups=ctx.lines().groups(tuple(state.crisis_kinds) or RISK_KINDS),
                until=self._until())
        self.ask(CrisisQuestion())

    def ground(self) -> None:
        """Under-arousal in words outside a running exercise: a short grounding, then what
        was on offer before (the menu, or the paused exercise's way back)."""
        ctx = self.ctx
        ctx.log("under_arousal", step=None, said="words")  # the fact, never the words
        ctx.say("grounding.offer")
        self.repeat()

    def practice_waits(self) -> None:
        """``/start``, ``/resume`` or the menu while only support may follow "not safe"."""
        self.ctx.say("crisis.practice_waits", until=self._until())

    def halt(self, *, via: str, silent: bool = False) -> None:
        """Stop everything at once: end the exercise, cancel reminders and queued messages."""
        ctx, state = self.ctx, self.state
        if state.session is not None:
            ctx.log("session_ended", script=state.session.script, completed=False,
                    reason="stop")
            state.session = None
        state.halted = True
        state.silence_armed = False
        ctx.cancel_timer("*")
        ctx.out.effects.append(Effect.CANCEL_OUTBOX)
        ctx.log("stopped", via=via)
        if silent:
            state.pending = None
        else:
            self.ask(StopQuestion())

    def stop_request(self) -> None:
        """A clear stop request in words: ask once whether to stop; nothing moves on."""
        before = self.state.pending
        if isinstance(before, StopRequestQuestion):  # asked already: the same question
            before = before.before
        self.ctx.log("stop_request", choice="asked")
        self.ask(StopRequestQuestion(before=before))

    # -- starting and the menu --------------------------------------------------------------
    def start(self) -> None:
        """``/start``: back from a halt, then consent, the session under way or the menu."""
        ctx, state = self.ctx, self.state
        if state.halted:
            state.halted = False
            ctx.log("restarted")
            self.schedule_reminder()
        state.pending = None
        state.resting = False
        if not self.consented():
            self.ask_consent()
        elif ctx.support_only():
            self.practice_waits()
        elif state.session is not None:
            self.resume()
        elif not self.check_in_weekly():
            self.menu()

    def check_in_weekly(self, script: str | None = None) -> bool:
        """Ask the weekly outcome check-in if it is due; True when it was asked.

        It is due when the therapist switched it on and a week has passed since the last one
        (or none was asked since it was switched on), and only as a session starts: never
        before consent, after /stop, during a session or while only support may follow
        "not safe".

        Args:
            script: The exercise chosen from the menu, started after the check-in.
        """
        ctx, state = self.ctx, self.state
        last = state.outcomes_asked_at
        if (not state.outcomes or state.halted or state.session is not None
                or not self.consented() or ctx.support_only()
                or (last is not None and ctx.now - last < OUTCOMES_EVERY)):
            return False
        state.outcomes_asked_at = ctx.now
        self.ask(OutcomeQuestion(script=script))
        return True

    def available(self) -> list[str]:
        """The scripts the client may choose: those assigned to them, else every one."""
        scripts = self.ctx.res.scripts
        runnable = [sid for sid, s in scripts.items() if s.first_step is not None]
        assigned = [sid for sid in self.state.contract.scripts if sid in runnable]
        return assigned or sorted(runnable)

    def menu(self) -> None:
        """Offer the scripts to choose from (at most eight)."""
        ctx = self.ctx
        available = self.available()
        if not available:
            ctx.say("exercise.none")
            return
        self.state.pending = MenuQuestion()
        rows = [[(ctx.res.scripts[sid].meta.title[:40], MenuItem(i))]
                for i, sid in enumerate(available[:8])]
        ctx.say("menu.choose", rows)

    # -- sessions ---------------------------------------------------------------------------
    def begin_session(self, script_id: str, *, restarting: Session | None = None) -> None:
        """Start a session of the script; ``restarting`` is the session it starts afresh."""
        ctx, state = self.ctx, self.state
        script = ctx.res.scripts[script_id]
        version = ctx.res.policy.consent_version
        if not self.consented():  # e.g. the consent text changed while the menu showed
            self.ask_consent()
            return
        if ctx.support_only():  # e.g. a menu shown before "not safe"
            self.practice_waits()
            return
        missing = [c.value for c in script.meta.consent if not state.has(Opt(c.value), version)]
        if missing:
            ctx.say("menu.needs_consent", missing=missing)
            return
        tz = zone(state.settings.timezone, ctx.res.policy.default_timezone)
        today = ctx.now.astimezone(tz).date().isoformat()
        # A session started afresh (after a long pause or a crisis) was counted when it began.
        counted = (restarting is not None
                   and restarting.started_at.astimezone(tz).date().isoformat() == today)
        if not counted:
            if state.session_days.get(today, 0) >= state.contract.sessions_per_day:
                ctx.say("session.day_cap")
                return
            state.session_days = {today: state.session_days.get(today, 0) + 1}
        level = state.level
        if restarting is not None or self._returning():
            level = max(1, level - 1)
            # "As it's been a while" would be wrong minutes after crisis support.
            held = state.crisis_hold_since is not None
            ctx.say("crisis.welcome_back" if held else "welcome_back")
        first = script.first_step
        assert first is not None
        state.session = Session(script=script_id, script_version=script.meta.version,
                                started_at=ctx.now, frame=Frame(step=first),
                                level=level, held=ctx.crisis_hold(), shared=False)
        if restarting is not None:  # started afresh, it is still the session that needed calming
            state.session.high_distress = restarting.high_distress
            state.session.calmed = restarting.calmed
            state.session.held = state.session.held or restarting.held
        ctx.log("session_started", script=script_id, version=script.meta.version,
                level=ctx.effective_level())
        self.runner.enter(first)

    def _returning(self) -> bool:
        """After two weeks away or a crisis, start again one level lower."""
        policy = self.ctx.res.policy
        away = self.previous is not None and self.ctx.now - self.previous > policy.long_absence
        return away or self.state.crisis_hold_since is not None

    def resume(self) -> None:
        """Go on with the session; after a long pause, a crisis or time away, start it afresh."""
        ctx, session = self.ctx, self.state.session
        if ctx.support_only():
            self.practice_waits()
            return
        if session is None:
            ctx.say("pause.nothing")
            return
        previous = self.previous
        long_pause = previous is not None and ctx.now - previous > ctx.res.policy.long_pause
        long_pause = session.paused and long_pause
        if long_pause or self._returning():
            # After a pause of more than a day, a crisis or two weeks away: one level lower.
            script_id = session.script
            ctx.log("session_ended", script=script_id, completed=False,
                    reason="long-pause" if long_pause else "returning")
            self.state.session = None
            self.begin_session(script_id, restarting=session)
            return
        if session.paused:
            session.paused = False
            ctx.log("pacing", choice="resume", step=session.frame.step)
            ctx.say("pause.resumed")
        if not self.cap_reached():
            self.runner.resume_in_role()

    def cap_reached(self) -> bool:
        """Close the session gently once it runs past the contract's time cap."""
        ctx, session = self.ctx, self.state.session
        if session is None or session.frame.closing or session.frame.calming:
            return False  # never cut into a calming exercise; the cap closes after it
        limit = timedelta(minutes=self.state.contract.session_minutes)
        if ctx.now - session.started_at < limit:
            return False
        self.runner.close_for_cap()
        return True

    # -- reminders --------------------------------------------------------------------------
    def schedule_reminder(self) -> None:
        """(Re)schedule the next reminder, or cancel it when none may be sent."""
        ctx, state = self.ctx, self.state
        policy = ctx.res.policy
        if (state.halted or not ctx.opted(Opt.REMINDERS) or not state.settings.reminders
                or state.reminders_unanswered >= policy.reminders_max_unanswered):
            ctx.cancel_timer("reminder")
            return
        due = next_reminder(state.settings.reminders,
                            zone(state.settings.timezone, policy.default_timezone),
                            ctx.now, self.quiet_hours())
        if due is None:
            ctx.cancel_timer("reminder")
        else:
            ctx.timer("reminder", due)

    def quiet_hours(self) -> tuple[time, time]:
        """The practice's quiet hours (local times), when no reminder is sent."""
        policy = self.ctx.res.policy
        start, end = parse_hhmm(policy.quiet_start), parse_hhmm(policy.quiet_end)
        assert start is not None and end is not None  # validated by the configuration
        return start, end
