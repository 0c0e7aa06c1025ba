"""The engine's front door: ``Engine.handle(state, event, now) -> Outcome``.

Gatekeepers run first, in every state: crisis language, stop words and ``/stop``; then the
commands a client may always use; then consent; only then the script. The engine is pure:
no I/O, no clock (``now`` is passed in), no randomness.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from bot.crisis import Detection
from bot.engine._context import Context, Resources
from bot.engine._events import (
    Blocked,
    Button,
    Clinician,
    Command,
    Event,
    NonText,
    Redeemed,
    Start,
    Text,
    TimerFired,
)
from bot.engine._outcome import Effect, Outcome
from bot.engine._reminders import in_quiet_hours, next_reminder, parse_hhmm, zone
from bot.engine._safety import is_stop_word
from bot.engine._state import LEVELS, ClientState, Frame, Opt, ReminderTime, Session
from bot.engine._steps import StepRunner, frame_fits

#: Commands answered in every state, even after a halt.
ALWAYS = ("sos", "help", "privacy", "mydata", "delete")
#: The commands published to Telegram, with their descriptions' text keys.
COMMANDS = (
    "start", "stop", "pause", "resume", "smaller", "skip", "progress", "settings",
    "mydata", "delete", "privacy", "sos", "help",
)
_CONSENT_STEPS = (Opt.STORE_FREE_TEXT, Opt.SHARE_WITH_THERAPIST, Opt.REMINDERS)
_CONSENT_TEXTS = {
    Opt.STORE_FREE_TEXT.value: "consent.free_text",
    Opt.SHARE_WITH_THERAPIST.value: "consent.share",
    Opt.REMINDERS.value: "consent.reminders",
}


#: The prefix of the button codes that choose a region for crisis lines (``gcUS``).
_REGION_CODE = "gc"

#: The button codes that answer each pending question.
_PENDING_CODES = {
    "stop": ("ot", "wd"),
    "delete": ("dy", "dn"),
    "crisis": ("sf", "ns"),
    "level": ("ly", "ln"),
    "kept_answers": ("ak", "ad"),
}


def _answers(pending: str, code: str) -> bool:
    """Whether a button code answers the pending question (and not some other keyboard)."""
    if pending in _PENDING_CODES:
        return code in _PENDING_CODES[pending]
    if pending == "menu":
        return code.startswith("m")
    if pending.startswith("consent:"):
        return code in ("y", "n")
    if pending.startswith("settings"):
        return code.startswith("g")
    return False


class Engine:
    """Runs scripts for clients, one event at a time, deterministically."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    def new_state(self, client_id: str) -> ClientState:
        """A new client's state with the practice's default contract."""
        contract = self.resources.policy.contract.model_copy(deep=True)
        return ClientState(client_id=client_id, contract=contract)

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        """Handle one event for one client.

        Args:
            state: The client's current state (not modified).
            event: What happened.
            now: The current time (timezone-aware UTC), passed in for determinism.

        Returns:
            The new state and everything to send, log, store and schedule.
        """
        ctx = Context(self.resources, state.model_copy(deep=True), now, event.display_name)
        _Conversation(ctx).dispatch(event)
        return ctx.out


class _Conversation:
    """The global layer of one event: gatekeepers, commands, consent, menus."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.runner = StepRunner(ctx)

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        ctx, state = self.ctx, self.state
        if isinstance(event, TimerFired):
            self._timer(event.kind, datetime.fromisoformat(event.due_iso))
            return
        if isinstance(event, Blocked):
            # A block seen twice (a failed send and the chat-member update) is one halt; a
            # block after /stop adds nothing the ledger does not already say.
            if not state.halted:
                self.halt(via="blocked", silent=True)
            return
        if isinstance(event, Clinician):
            self._clinician(event)
            return
        previous = state.last_active
        self._client_is_here()
        self._check_place()
        self._note_language(event.language)
        # Crisis language first, in every free text: a message, the words after a command,
        # a caption, an edited message. It interrupts everything else the event would do.
        detection = ctx.res.crisis.scan(_free_text(event))
        if detection:
            self.crisis(detection)
        elif isinstance(event, Text):
            if is_stop_word(event.text):
                self.halt(via="word")
            else:
                self._text(event.text)
        elif isinstance(event, Command):
            self._command(event.name.lower(), previous)
        elif isinstance(event, Start):
            self._start(previous)
        elif isinstance(event, Redeemed):
            self._redeemed(event, previous)
        elif isinstance(event, Button):
            self._button(event.data, previous)
        elif isinstance(event, NonText):
            if state.halted:
                ctx.say("stop.halted")
            else:
                ctx.say("unexpected.non_text")
                self.repeat()
        self._watch_silence()

    def _note_language(self, language: str | None) -> None:
        """Remember the region a client's Telegram language suggests (for ``/settings``)."""
        settings = self.state.settings
        suggested = self.ctx.res.policy.suggest_region(language)
        if suggested is not None and settings.suggested_region != suggested:
            settings.suggested_region = suggested

    def _client_is_here(self) -> None:
        """Any message from the client: silence follow-up off, reminders answered."""
        ctx, state = self.ctx, self.state
        state.last_active = ctx.now
        if state.silence_armed:
            state.silence_armed = False
            ctx.cancel_timer("silence")
        if state.reminders_unanswered:
            suspended = state.reminders_unanswered >= ctx.res.policy.reminders_max_unanswered
            state.reminders_unanswered = 0
            if suspended and not state.halted:
                self.schedule_reminder()

    def _watch_silence(self) -> None:
        """While calming after high distress, silence still earns the one follow-up."""
        ctx, state = self.ctx, self.state
        session = state.session
        if (state.silence_armed or state.halted or session is None or session.paused
                or session.frame.sub not in ("calm", "recheck") or not session.frame.calm_round):
            return
        state.silence_armed = True
        ctx.timer("silence", ctx.now + ctx.res.policy.silence_followup)

    def _check_place(self) -> None:
        """End a session whose script was removed or edited so that its place is gone."""
        ctx, session = self.ctx, self.state.session
        if session is None:
            return
        script = ctx.res.scripts.get(session.script)
        if script is not None and frame_fits(script, session.frame):
            if script.meta.version != session.script_version:
                session.script_version = script.meta.version
                ctx.log("script_updated", script=session.script, version=script.meta.version)
            return
        ctx.log("session_ended", script=session.script, completed=False,
                reason="script-changed")
        self.state.session = None
        ctx.say("session.closed")

    def repeat(self) -> None:
        """Show the current question again (after an unexpected input)."""
        state = self.state
        if state.pending is not None:
            self._ask_pending()
        elif state.session is not None and not state.halted:
            if state.session.paused:  # the way back in, with a live button
                self.ctx.say("pause.done", [[self.ctx.button("resume", "re")]])
            else:
                self.runner.show()

    # -- gatekeepers ------------------------------------------------------------------------
    def crisis(self, detection: Detection | None) -> None:
        """Crisis lines first, then the client's safety plan, then "are you safe right now?".

        Args:
            detection: What the client's words matched, or None for ``/sos``. The first
                message always carries the emergency number and the lines for the kinds
                matched (for ``/sos``: every kind's lines).
        """
        ctx, state = self.ctx, self.state
        policy = ctx.res.policy
        ctx.urgent = True  # all of it reaches the client at once, whatever the pacing
        running = state.session is not None and not state.session.paused
        ctx.send(ctx.system("crisis.resources",
                            **ctx.lines().crisis_context(detection, running=running)))
        plan = policy.safety_plans.get(state.client_id)
        if plan and any(plan.values()):
            ctx.say("crisis.safety_plan", plan=plan)
        state.pending = "crisis"
        ctx.say("crisis.are_you_safe",
                [[ctx.button("safe", "sf")], [ctx.button("not_safe", "ns")]])
        if detection is None:
            ctx.log("sos_viewed")
            return
        # The fact and the kinds: never the client's words, nor the rules that matched (a
        # rule's name paraphrases them; `rehearse crisis explain` shows rules to a therapist).
        ctx.log("crisis_language", step=state.session.frame.step if state.session else None,
                kinds=[k.value for k in detection.kinds], imminent=detection.imminent)
        state.crisis_hold_since = ctx.now
        state.crisis_hold_cleared_by_therapist = False
        if state.session is not None and not state.session.paused:
            state.session.paused = True
            ctx.log("pacing", choice="pause", reason="crisis")

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
            return
        state.pending = "stop"
        ctx.say("stop.confirm", [[ctx.button("only_this", "ot")], [ctx.button("withdraw", "wd")]])

    # -- text and commands ------------------------------------------------------------------
    def _text(self, text: str) -> None:
        ctx, state = self.ctx, self.state
        if state.halted:
            ctx.say("stop.halted")
        elif state.pending in ("settings:tz", "settings:time"):
            self._settings_input(text)
        elif state.pending is not None:
            ctx.say("unexpected.text_at_buttons")
            self._ask_pending()
        elif not self._consented():
            self._ask_consent()
        elif state.session is None:
            self._menu()
        elif state.session.paused:
            ctx.say("pause.done", [[ctx.button("resume", "re")]])
        elif not self._cap_reached():
            self.runner.on_text(text)

    def _command(self, name: str, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        if name == "stop":
            self.halt(via="command")
        elif name == "start":
            self._start(previous)
        elif name == "sos":
            self.crisis(None)
        elif name == "help":
            ctx.say("help")
        elif name == "privacy":
            policy = ctx.res.policy
            ctx.say("privacy", retention_days=policy.retention_days,
                    answers_days=policy.answers_days)
        elif name == "mydata":
            ctx.log("export_requested")
            ctx.out.effects.append(Effect.EXPORT)
            ctx.say("mydata.intro")
        elif name == "delete":
            state.pending = "delete"
            self._ask_pending()
        elif state.halted:
            ctx.say("stop.halted")
        elif name == "progress":
            self._progress()
        elif name == "settings":
            if self._consented():
                self._settings()
            else:  # no opt-ins before the terms are agreed to
                self._ask_consent()
        elif name in ("pause", "resume", "smaller", "skip"):
            self._pacing_command(name, previous)
        else:
            ctx.say("unexpected.unknown_command")
            self.repeat()

    def _pacing_command(self, name: str, previous: datetime | None) -> None:
        ctx, session = self.ctx, self.state.session
        if session is None:
            ctx.say("pause.nothing")
        elif name == "resume":
            self._resume(previous)
        elif session.paused:
            ctx.say("pause.done", [[ctx.button("resume", "re")]])
        elif self._cap_reached():
            return
        elif name == "pause":
            self.runner.pause()
        elif name == "smaller":
            self.runner.smaller()
        else:
            self.runner.skip()

    # -- buttons ----------------------------------------------------------------------------
    def _button(self, data: str, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        code = ctx.pressed(data)
        if code is None:
            ctx.say("unexpected.stale_button")
            self.repeat()
            return
        pending = state.pending
        if pending is not None and not _answers(pending, code):
            # The question was left behind (e.g. /resume showed the step again): a press
            # of another button must never count as its answer.
            pending = state.pending = None
        if pending is not None:
            state.pending = None
            self._pending_answer(pending, code, previous)
        elif state.halted:
            ctx.say("stop.halted")
        elif code == "re":
            self._resume(previous)
        elif state.session is not None and not state.session.paused:
            if not self._cap_reached():
                self.runner.on_button(code)
        else:
            self.repeat()

    def _pending_answer(self, pending: str, code: str, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        if pending == "stop":
            if code == "ot":
                state.halted = False
                ctx.log("stop_undone", keep="reminders")
                self.schedule_reminder()
                ctx.say("stop.only_this")
            else:
                # Every opt-in held is withdrawn, each with its own ledger row.
                held = [o.value for o in Opt if o.value in state.consents]
                for opt in held or [Opt.CORE.value]:
                    ctx.log("consent", opt=opt, given=False,
                            version=ctx.res.policy.consent_version, reason="withdrawn")
                state.consents.clear()
                ctx.say("stop.withdraw")
                state.pending = "delete"
                self._ask_pending()
        elif pending == "delete":
            if code == "dy":
                ctx.log("erase_requested")
                ctx.out.effects.append(Effect.ERASE)
            else:
                ctx.say("delete.cancelled")
                self.repeat()
        elif pending == "crisis":
            if code == "ns":
                ctx.urgent = True
                ctx.log("crisis_not_safe")
                ctx.say("crisis.not_safe", emergency=ctx.lines().emergency)
            else:
                ctx.log("crisis_safe")
                ctx.say("crisis.safe")
                if self.crisis_hold_active():
                    ctx.say("crisis.hold")
        elif pending == "level":
            self._level_answer(code == "ly")
        elif pending == "menu":
            self._menu_answer(code, previous)
        elif pending.startswith("consent:"):
            self._consent_answer(pending.removeprefix("consent:"), code, previous)
        elif pending == "kept_answers":
            self._kept_answers(delete=code == "ad")
        elif pending.startswith("settings"):
            self._settings_answer(code)

    def _ask_pending(self) -> None:
        ctx, pending = self.ctx, self.state.pending
        if pending == "delete":
            ctx.say("delete.confirm", [[ctx.button("delete_confirm", "dy")],
                                       [ctx.button("delete_cancel", "dn")]])
        elif pending == "stop":
            ctx.say("stop.confirm", [[ctx.button("only_this", "ot")],
                                     [ctx.button("withdraw", "wd")]])
        elif pending == "crisis":
            ctx.say("crisis.are_you_safe", [[ctx.button("safe", "sf")],
                                            [ctx.button("not_safe", "ns")]])
        elif pending == "level":
            level = self.state.level
            ctx.say("level.offer", [[ctx.button("level_yes", "ly")],
                                    [ctx.button("level_no", "ln")]],
                    level=level, next_level=level + 1)
        elif pending == "menu":
            self._menu()
        elif pending == "kept_answers":
            ctx.say("settings.kept_answers", [[ctx.button("delete_answers", "ad")],
                                              [ctx.button("keep_answers", "ak")]])
        elif pending is not None and pending.startswith("consent:"):
            self._ask_consent_step(pending.removeprefix("consent:"))
        elif pending is not None and pending.startswith("settings"):
            self._settings()

    def crisis_hold_active(self) -> bool:
        """Whether content is held at level 1 after crisis language."""
        return self.ctx.crisis_hold()

    # -- consent ----------------------------------------------------------------------------
    def _consented(self) -> bool:
        return self.ctx.opted(Opt.CORE)

    def _ask_consent(self) -> None:
        state = self.state
        if state.consents and not self._consented():
            self.ctx.say("consent.changed")
        state.pending = "consent:intro"
        self._ask_pending()

    def _ask_consent_step(self, step: str) -> None:
        ctx = self.ctx
        policy = ctx.res.policy
        yes_no = [[ctx.button("opt_in", "y")], [ctx.button("opt_out", "n")]]
        if step == "intro":
            ctx.say("consent.intro", [[ctx.button("agree", "y")], [ctx.button("decline", "n")]],
                    retention_days=policy.retention_days, answers_days=policy.answers_days,
                    therapist_delay=policy.therapist_delay)
        elif step == "adult":
            ctx.say("consent.adult", [[ctx.button("yes", "y")], [ctx.button("no", "n")]])
        else:
            ctx.say(_CONSENT_TEXTS[step], yes_no)

    def _consent_answer(self, step: str, code: str, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        version = ctx.res.policy.consent_version
        yes = code == "y"
        if step == "intro":
            ctx.log("consent", opt=Opt.CORE.value, given=yes, version=version)
            if not yes:
                state.consents.pop(Opt.CORE.value, None)
                state.consent_declined = True
                ctx.say("consent.declined")
                return
            state.consent_declined = False
            if state.adult is None:
                # Core consent holds only once the age question is answered: /start
                # in between must not lead past it.
                state.pending = "consent:adult"
                self._ask_pending()
                return
            if not state.adult and not self._minor_allowed():
                self._refuse_minor()  # the age answer stands: it is not asked again
                return
            state.consents[Opt.CORE.value] = version
            next_step = _CONSENT_STEPS[0].value
        elif step == "adult":
            ctx.log("age_confirmed", adult=yes)
            state.adult = yes
            if not yes and not self._minor_allowed():
                self._refuse_minor()
                return
            state.consents[Opt.CORE.value] = version
            next_step = _CONSENT_STEPS[0].value
        else:
            opt = Opt(step)
            ctx.log("consent", opt=opt.value, given=yes, version=version)
            if yes:
                state.consents[opt.value] = version
            else:
                state.consents.pop(opt.value, None)
            order = [o.value for o in _CONSENT_STEPS]
            position = order.index(step)
            if position + 1 < len(order):
                next_step = order[position + 1]
            else:
                given = [o.value for o in _CONSENT_STEPS if state.has(o, version)]
                ctx.say("consent.done", opt_ins=given)
                if Opt.REMINDERS.value in given:
                    state.pending = "settings:tz"
                    ctx.say("settings.ask_timezone")
                    return
                self._start(previous)
                return
        state.pending = f"consent:{next_step}"
        self._ask_pending()

    def _clinician(self, event: Clinician) -> None:
        """Record a therapist's action; nothing is sent to the client."""
        ctx, state = self.ctx, self.state
        if event.action == "clear-hold":
            state.crisis_hold_cleared_by_therapist = True
            ctx.log("crisis_hold_cleared", by="therapist", who=event.by)
        elif event.action == "guardian-consent":
            state.guardian_consent = True
            ctx.log("guardian_consent", given=True, recorded_by=event.by)

    def _minor_allowed(self) -> bool:
        return self.ctx.res.policy.allow_minors and self.state.guardian_consent

    def _refuse_minor(self) -> None:
        """Under 18: no exercises, unless minors are allowed and the therapist recorded a
        guardian's consent (never self-declared in the chat)."""
        ctx, state = self.ctx, self.state
        state.consents.clear()
        ctx.log("consent", opt=Opt.CORE.value, given=False,
                version=ctx.res.policy.consent_version, reason="minor")
        ctx.say("consent.guardian_needed" if ctx.res.policy.allow_minors
                else "consent.minor_refused")

    # -- starting, menus, levels ------------------------------------------------------------
    def _start(self, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        if state.halted:
            state.halted = False
            ctx.log("restarted")
            self.schedule_reminder()
        state.pending = None
        if not self._consented():
            self._ask_consent()
        elif state.session is not None:
            self._resume(previous)
        else:
            self._menu()

    def _redeemed(self, event: Redeemed, previous: datetime | None) -> None:
        ctx, state = self.ctx, self.state
        state.contract.scripts = [event.script_id]
        if event.max_level is not None and event.max_level in LEVELS:  # whatever an invite holds
            state.contract.max_level = event.max_level
        ctx.log("invite_redeemed", script=event.script_id, max_level=state.contract.max_level)
        if event.display_name:
            ctx.say("access.welcome", name=event.display_name)
        self._start(previous)

    def _available(self) -> list[str]:
        scripts = self.ctx.res.scripts
        runnable = [sid for sid, s in scripts.items() if s.first_step is not None]
        assigned = [sid for sid in self.state.contract.scripts if sid in runnable]
        return assigned or sorted(runnable)

    def _menu(self) -> None:
        ctx, state = self.ctx, self.state
        available = self._available()
        if not available:
            ctx.say("exercise.none")
            return
        state.pending = "menu"
        rows = [[(ctx.res.scripts[sid].meta.title[:40], f"m{i}")]
                for i, sid in enumerate(available[:8])]
        ctx.say("menu.choose", rows)

    def _menu_answer(self, code: str, previous: datetime | None) -> None:
        available = self._available()
        index = int(code[1:]) if code[1:].isdigit() else -1
        if not 0 <= index < len(available):
            self._menu()
            return
        self._begin_session(available[index], previous)

    def _begin_session(self, script_id: str, previous: datetime | None, *,
                       restarting: Session | None = None) -> None:
        """Start a session of the script; ``restarting`` is the session it starts afresh."""
        ctx, state = self.ctx, self.state
        script = ctx.res.scripts[script_id]
        version = ctx.res.policy.consent_version
        if not self._consented():  # e.g. the consent text changed while the menu showed
            self._ask_consent()
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
        if restarting is not None or self._returning(previous):
            level = max(1, level - 1)
            # "As it's been a while" would be wrong minutes after crisis support.
            held = state.crisis_hold_since is not None
            ctx.say("crisis.welcome_back" if held else "welcome_back")
        first = script.first_step
        assert first is not None
        state.session = Session(script=script_id, script_version=script.meta.version,
                                started_at=ctx.now, frame=Frame(step=first), level=level)
        ctx.log("session_started", script=script_id, version=script.meta.version,
                level=ctx.effective_level())
        self.runner.enter(first)

    def _returning(self, previous: datetime | None) -> bool:
        """After two weeks away or a crisis, start again one level lower."""
        policy = self.ctx.res.policy
        away = previous is not None and self.ctx.now - previous > policy.long_absence
        return away or self.state.crisis_hold_since is not None

    def _resume(self, previous: datetime | None) -> None:
        ctx, session = self.ctx, self.state.session
        if session is None:
            ctx.say("pause.nothing")
            return
        long_pause = previous is not None and ctx.now - previous > ctx.res.policy.long_pause
        long_pause = session.paused and long_pause
        if long_pause or self._returning(previous):
            # After a pause of more than a day, a crisis or two weeks away: one level lower.
            script_id = session.script
            ctx.log("session_ended", script=script_id, completed=False,
                    reason="long-pause" if long_pause else "returning")
            self.state.session = None
            self._begin_session(script_id, previous, restarting=session)
            return
        if session.paused:
            session.paused = False
            ctx.log("pacing", choice="resume", step=session.frame.step)
            ctx.say("pause.resumed")
        if not self._cap_reached():
            self.runner.show()

    def _cap_reached(self) -> bool:
        """Close the session gently once it runs past the contract's time cap."""
        ctx, session = self.ctx, self.state.session
        if session is None or session.frame.closing or session.frame.sub in ("calm", "recheck"):
            return False  # never cut into a calming exercise; the cap closes after it
        limit = timedelta(minutes=self.state.contract.session_minutes)
        if ctx.now - session.started_at < limit:
            return False
        self.runner.close_for_cap()
        return True

    def _level_answer(self, yes: bool) -> None:
        ctx, state = self.ctx, self.state
        if yes and state.level < state.contract.max_level:
            ctx.log("level_changed", from_level=state.level, to_level=state.level + 1,
                    asked=True)
            state.level += 1
            ctx.say("level.up", level=state.level)
        else:
            ctx.log("level_kept", level=state.level)
            ctx.say("level.stay")

    # -- progress and settings --------------------------------------------------------------
    def _progress(self) -> None:
        ctx, state = self.ctx, self.state
        p = state.progress
        ctx.say("progress", exercises_done=p.exercises_done, smaller_steps=p.smaller_steps,
                connections=p.connections, level=state.level,
                max_level=state.contract.max_level, prompts_shared=p.prompts_shared)
        self.repeat()

    def _settings(self) -> None:
        ctx, state = self.ctx, self.state
        version = ctx.res.policy.consent_version
        tz = state.settings.timezone or ctx.res.policy.default_timezone
        days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        reminders = [" ".join(days[d] for d in r.days) + f" {r.time}"
                     for r in state.settings.reminders] if state.has(Opt.REMINDERS, version) else []
        state.pending = "settings"
        ctx.say("settings.menu", [
            [ctx.button("change_pace", "gp")],
            [ctx.button("change_free_text", "gf")],
            [ctx.button("change_sharing", "gs")],
            [ctx.button("toggle_reminders", "gr")],
            [ctx.button("change_timezone", "gz"), ctx.button("change_reminders", "gt")],
            [ctx.button("change_region", "gc")],
            [ctx.button("close", "gd")],
        ], pace=state.settings.pace or state.contract.pace, region=ctx.lines().label,
            store_free_text=state.has(Opt.STORE_FREE_TEXT, version),
            share_with_therapist=state.has(Opt.SHARE_WITH_THERAPIST, version),
            reminders=reminders, timezone=tz)

    def _settings_answer(self, code: str) -> None:
        ctx, state = self.ctx, self.state
        version = ctx.res.policy.consent_version
        toggles = {"gf": Opt.STORE_FREE_TEXT, "gs": Opt.SHARE_WITH_THERAPIST, "gr": Opt.REMINDERS}
        if code == "gd":
            ctx.say("settings.saved")
            self.repeat()
            return
        if code == "gp":
            current = state.settings.pace or state.contract.pace
            pace = "steady" if current == "gentle" else "gentle"
            state.settings.pace = pace
            ctx.log("pacing", choice="change-pace", pace=pace)
        elif code in toggles:
            opt = toggles[code]
            given = not state.has(opt, version)
            ctx.log("consent", opt=opt.value, given=given, version=version)
            if given:
                state.consents[opt.value] = version
            else:
                state.consents.pop(opt.value, None)
            if opt is Opt.REMINDERS:
                if given and not state.settings.reminders:
                    state.settings.reminders = [ReminderTime()]
                self.schedule_reminder()
            if opt is Opt.STORE_FREE_TEXT and not given:
                state.pending = "kept_answers"  # what was kept so far is theirs to decide
                self._ask_pending()
                return
        elif code == "gz":
            state.pending = "settings:tz"
            ctx.say("settings.ask_timezone")
            return
        elif code == "gt":
            state.pending = "settings:time"
            ctx.say("settings.ask_reminder_time")
            return
        elif code == "gc":
            self._ask_region()
            return
        elif code.startswith(_REGION_CODE):
            region = code.removeprefix(_REGION_CODE)
            if region in ctx.res.policy.regions:
                state.settings.region = region
                ctx.log("settings_changed", setting="region", region=region)
        self._settings()

    def _ask_region(self) -> None:
        """The regions whose lines a client may choose, the suggested one first."""
        ctx, state = self.ctx, self.state
        regions = ctx.res.policy.regions
        suggested = state.settings.suggested_region
        order = sorted(regions, key=lambda name: (name != suggested, regions[name].label))
        state.pending = "settings"
        ctx.say("settings.ask_region",
                [[(regions[name].label, f"{_REGION_CODE}{name}")] for name in order],
                suggested=regions[suggested].label if suggested is not None
                and suggested in regions else "")

    def _kept_answers(self, *, delete: bool) -> None:
        """Keep-what-I-type was switched off: delete what was kept so far, or keep it."""
        ctx, state = self.ctx, self.state
        ctx.log("kept_answers", choice="delete" if delete else "keep")
        if delete:
            ctx.out.effects.append(Effect.DROP_ANSWERS)
            state.progress.last_connection = None
            self.runner.forget_typed()
            ctx.say("settings.answers_deleted")
        else:
            ctx.say("settings.answers_kept", answers_days=ctx.res.policy.answers_days)
        self._settings()

    def _settings_input(self, text: str) -> None:
        ctx, state = self.ctx, self.state
        if state.pending == "settings:tz":
            name = text.strip()
            if zone(name, "Invalid/Zone").key != name:
                ctx.say("settings.bad_timezone")
                return
            state.settings.timezone = name
            ctx.log("settings_changed", setting="timezone")
            if not state.settings.reminders:
                state.pending = "settings:time"
                ctx.say("settings.ask_reminder_time")
                return
        else:
            at = parse_hhmm(text)
            if at is None:
                ctx.say("settings.bad_time")
                return
            policy = ctx.res.policy
            if in_quiet_hours(at, *self._quiet_hours()):
                ctx.say("settings.quiet_hours", start=policy.quiet_start, end=policy.quiet_end)
                return
            state.settings.reminders = [ReminderTime(time=at.strftime("%H:%M"))]
            ctx.log("settings_changed", setting="reminder-time")
        state.pending = None
        self.schedule_reminder()
        ctx.say("settings.saved")
        if state.session is None and self._consented():
            self._menu()
        else:
            self.repeat()

    # -- timers -----------------------------------------------------------------------------
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
                            ctx.now, self._quiet_hours())
        if due is None:
            ctx.cancel_timer("reminder")
        else:
            ctx.timer("reminder", due)

    def _quiet_hours(self) -> tuple[time, time]:
        policy = self.ctx.res.policy
        start, end = parse_hhmm(policy.quiet_start), parse_hhmm(policy.quiet_end)
        assert start is not None and end is not None  # validated by the configuration
        return start, end

    def _timer(self, kind: str, due: datetime) -> None:
        ctx, state = self.ctx, self.state
        if state.halted:
            return
        if kind == "silence":
            if not state.silence_armed:
                return
            state.silence_armed = False
            ctx.say("silence.followup")
            if state.session is not None:
                ctx.log("session_ended", script=state.session.script, completed=False,
                        reason="silence")
                state.session = None
            return
        if kind != "reminder":
            return
        late = ctx.now - due > ctx.res.policy.late_reminder
        if late:
            ctx.log("reminder_skipped", reason="late")
        elif (state.session is None and ctx.opted(Opt.REMINDERS)  # none while paused
              and state.reminders_unanswered < ctx.res.policy.reminders_max_unanswered):
            state.reminders_unanswered += 1
            ctx.log("reminder_sent")
            ctx.say("reminder")
            if state.reminders_unanswered >= ctx.res.policy.reminders_max_unanswered:
                ctx.log("reminders_suspended", reason="unanswered")
        self.schedule_reminder()


def _free_text(event: Event) -> str:
    """Everything a client wrote in an event, for the crisis scan (never stored)."""
    if isinstance(event, Text):
        return event.text
    if isinstance(event, Command):
        return event.args
    if isinstance(event, Start):
        return event.payload or ""
    if isinstance(event, NonText):
        return event.text
    return ""
