"""The engine's front door: ``Engine.handle(state, event, now) -> Outcome``.

Gatekeepers run first, in every state: crisis language, stop words and ``/stop``; then the
commands a client may always use; then consent; only then the script. The engine is pure:
no I/O, no clock (``now`` is passed in), no randomness.
"""

from __future__ import annotations

import copy
from datetime import datetime

from bot.engine._agreement import PROPOSED, ContractChange, Proposal
from bot.engine._buttons import Resume
from bot.engine._context import Context, Resources
from bot.engine._conversation import Conversation
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
from bot.engine._plan import PlanChange, SafetyPlan
from bot.engine._questions import (
    OUTCOMES_SWITCHED,
    ContractQuestion,
    DeleteQuestion,
    MenuQuestion,
    SettingsQuestion,
    SummaryQuestion,
    agreement_lines,
)
from bot.engine._reminders import in_quiet_hours, zone
from bot.engine._safety import is_stop_word
from bot.engine._state import ClientState
from bot.engine._terms import LEVELS, Opt
from bot.engine.steps import frame_fits

#: The commands published to Telegram, with their descriptions' text keys.
COMMANDS = (
    "start", "stop", "pause", "resume", "smaller", "skip", "progress", "summary", "settings",
    "mydata", "delete", "privacy", "sos", "safetyplan", "contract", "help",
)


class Engine:
    """Runs scripts for clients, one event at a time, deterministically."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    def new_state(self, client_id: str) -> ClientState:
        """A new client's state with the practice's default contract."""
        policy = self.resources.policy
        contract = policy.contract.model_copy(deep=True)
        return ClientState(client_id=client_id, contract=contract,
                           level=max(1, min(policy.start_level, contract.max_level)))

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        """Handle one event for one client.

        Args:
            state: The client's current state (not modified).
            event: What happened.
            now: The current time (timezone-aware UTC), passed in for determinism.

        Returns:
            The new state and everything to send, log, store and schedule.
        """
        # The ledger's session rows and the kept answers are only ever read: shared, not
        # copied (a year of them would cost more to copy than the rest of the event).
        shared = {id(state.history): state.history, id(state.kept): state.kept}
        fresh = copy.deepcopy(state, shared)
        ctx = Context(self.resources, fresh, now, event.display_name)
        _dispatch(Conversation(ctx, previous=state.last_active), event)
        return ctx.out


def _dispatch(talk: Conversation, event: Event) -> None:
    """Handle one event: timers and edge events, then the gatekeepers, then the input."""
    ctx, state = talk.ctx, talk.state
    if isinstance(event, TimerFired):
        _timer(talk, event.kind, datetime.fromisoformat(event.due_iso))
        return
    if isinstance(event, Blocked):
        # A block seen twice (a failed send and the chat-member update) is one halt; a
        # block after /stop adds nothing the ledger does not already say.
        if not state.halted:
            talk.halt(via="blocked", silent=True)
        return
    if isinstance(event, Clinician):
        _clinician(talk, event)
        return
    _client_is_here(talk)
    _check_place(talk)
    _note_language(talk, event.language)
    # Crisis language first, in every free text: a message, the words after a command, a
    # caption, an edited message. It interrupts everything else the event would do.
    detection = ctx.res.crisis.scan(_free_text(event))
    if detection:
        talk.crisis(detection)
    elif isinstance(event, Text):
        if is_stop_word(event.text):
            talk.halt(via="word")
        elif not state.halted and ctx.res.intents.stop_request(event.text):
            talk.stop_request()
        else:
            _text(talk, event.text)
    elif isinstance(event, Command):
        _command(talk, event.name.lower())
    elif isinstance(event, Start):
        talk.start()
    elif isinstance(event, Redeemed):
        _redeemed(talk, event)
    elif isinstance(event, Button):
        _button(talk, event.data)
    elif isinstance(event, NonText):
        if state.halted:
            ctx.say("stop.halted")
        else:
            ctx.say("unexpected.non_text")
            talk.repeat()
    else:
        raise TypeError(f"not an event the engine knows: {event!r}")
    _watch_silence(talk)


def _note_language(talk: Conversation, language: str | None) -> None:
    """Remember the region a client's Telegram language suggests (for ``/settings``)."""
    settings = talk.state.settings
    suggested = talk.ctx.res.policy.suggest_region(language)
    if suggested is not None and settings.suggested_region != suggested:
        settings.suggested_region = suggested


def _client_is_here(talk: Conversation) -> None:
    """Any message from the client: silence follow-up off, reminders answered."""
    ctx, state = talk.ctx, talk.state
    state.last_active = ctx.now
    if state.silence_armed:
        state.silence_armed = False
        ctx.cancel_timer("silence")
    if state.reminders_unanswered:
        suspended = state.reminders_unanswered >= ctx.res.policy.reminders_max_unanswered
        state.reminders_unanswered = 0
        if suspended and not state.halted:
            talk.schedule_reminder()


def _watch_silence(talk: Conversation) -> None:
    """While calming after high distress, silence still earns the one follow-up."""
    ctx, state = talk.ctx, talk.state
    session = state.session
    if (state.silence_armed or state.halted or session is None or session.paused
            or not session.frame.calming or not session.frame.calm_round):
        return
    state.silence_armed = True
    ctx.timer("silence", ctx.now + ctx.res.policy.silence_followup)


def _check_place(talk: Conversation) -> None:
    """End a session whose script was removed or edited so that its place is gone."""
    ctx, session = talk.ctx, talk.state.session
    if session is None:
        return
    script = ctx.res.scripts.get(session.script)
    if script is not None and frame_fits(script, session.frame):
        if script.meta.version != session.script_version:
            session.script_version = script.meta.version
            ctx.log("script_updated", script=session.script, version=script.meta.version)
        return
    ctx.log("session_ended", script=session.script, completed=False, reason="script-changed")
    talk.state.session = None
    ctx.say("session.closed")


# -- text, commands and buttons ----------------------------------------------------------------


def _text(talk: Conversation, text: str) -> None:
    ctx, state = talk.ctx, talk.state
    idle = state.session is None or state.session.paused
    if state.halted:
        ctx.say("stop.halted")
    elif (idle and state.pending in (None, MenuQuestion()) and talk.consented()
          and not ctx.support_only() and ctx.res.intents.under_arousal(text)):
        talk.ground()  # "I feel numb" at the menu, or with the exercise paused
    elif state.pending is not None:
        state.pending.typed(talk, text)
    elif ctx.support_only():
        talk.support()
    elif not talk.consented():
        talk.ask_consent()
    elif state.session is None and state.resting:
        ctx.say("session.resting")
    elif state.session is None:
        talk.menu()
    elif state.session.paused:
        talk.paused()
    elif not talk.cap_reached():
        talk.runner.on_text(text)


def _command(talk: Conversation, name: str) -> None:
    ctx, state = talk.ctx, talk.state
    if name == "stop":
        talk.halt(via="command")
    elif name == "start":
        talk.start()
    elif name == "sos":
        talk.crisis(None)
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
        talk.ask(DeleteQuestion())
    elif state.halted:
        ctx.say("stop.halted")
    elif name == "progress":
        _progress(talk)
    elif name == "safetyplan":
        talk.safety_plan()
    elif name == "contract":
        talk.contract()
    elif name == "summary":
        if talk.consented():
            talk.ask(SummaryQuestion())
        else:  # nothing is kept, or shared, before the terms are agreed to
            talk.ask_consent()
    elif name == "settings":
        if talk.consented():
            talk.ask(SettingsQuestion())
        else:  # no opt-ins before the terms are agreed to
            talk.ask_consent()
    elif name in ("pause", "resume", "smaller", "skip"):
        _pacing_command(talk, name)
    else:
        ctx.say("unexpected.unknown_command")
        talk.repeat()


def _pacing_command(talk: Conversation, name: str) -> None:
    session = talk.state.session
    if name == "resume":
        talk.resume()
    elif session is None:
        talk.ctx.say("pause.nothing")
    elif session.paused:
        talk.paused()
    elif talk.cap_reached():
        return
    elif name == "pause":
        talk.runner.pause()
    elif name == "smaller":
        talk.runner.smaller()
    else:
        talk.runner.skip()


def _button(talk: Conversation, data: str) -> None:
    ctx, state = talk.ctx, talk.state
    press = ctx.pressed(data)
    if press is None:
        ctx.say("unexpected.stale_button")
        talk.repeat()
        return
    pending = state.pending
    if pending is not None and not isinstance(press, pending.takes):
        # The question was left behind (e.g. /resume showed the step again): a press of
        # another button must never count as its answer.
        pending = state.pending = None
    if pending is not None:
        state.pending = None
        pending.answer(talk, press)
    elif state.halted:
        ctx.say("stop.halted")
    elif isinstance(press, Resume):
        talk.resume()
    elif state.session is not None and not state.session.paused:
        if not talk.cap_reached():
            talk.runner.on_button(press)
    else:
        talk.repeat()


def _progress(talk: Conversation) -> None:
    state = talk.state
    p = state.progress
    ctx = talk.ctx
    until = ctx.hold_until()
    ctx.say("progress", exercises_done=p.exercises_done, smaller_steps=p.smaller_steps,
            connections=p.connections, level=state.level,
            max_level=state.contract.max_level, prompts_shared=p.prompts_shared,
            held=until is not None,
            held_until=ctx.local_time(until) if until is not None and until > ctx.now else "",
            support_only=ctx.support_only())
    talk.repeat()


# -- events from the edges ---------------------------------------------------------------------


def _redeemed(talk: Conversation, event: Redeemed) -> None:
    ctx, state = talk.ctx, talk.state
    state.contract.scripts = [event.script_id]
    if event.max_level is not None and event.max_level in LEVELS:  # whatever an invite holds
        state.contract.max_level = event.max_level
        state.level = min(state.level, event.max_level)  # never above the contract's max
    ctx.log("invite_redeemed", script=event.script_id, max_level=state.contract.max_level)
    if event.display_name:
        ctx.say("access.welcome", name=event.display_name)
    talk.start()


def _clinician(talk: Conversation, event: Clinician) -> None:
    """Record a therapist's action; only a suggested safety plan and a proposed change to the
    contract are told to the client (once, outside quiet hours and never after a halt); the
    weekly outcome check-in switched on is asked at their next session start."""
    ctx, state = talk.ctx, talk.state
    if event.action == "propose-contract":
        assert event.change is not None  # checked by the edge (change_from)
        _propose(talk, event.change, event.by)
        return
    if event.action == "suggest-plan":
        plan = SafetyPlan.model_validate(dict(event.parts))  # checked by the edge (plan_from)
        changed = tuple(plan.filled())
        ctx.out.plans.append(PlanChange(plan, event.by, "suggested", changed))
        ctx.log("safety_plan", action="suggested", by=event.by, parts=list(changed))
        if _may_tell(talk):
            ctx.say("safetyplan.suggested")
        return
    if event.action in ("outcomes-on", "outcomes-off"):
        on = event.action == "outcomes-on"
        if on and not state.outcomes:  # the first session start after it asks
            state.outcomes_asked_at = None
        state.outcomes = on
        ctx.log(OUTCOMES_SWITCHED, on=on, by=event.by)
        return
    if event.action == "clear-hold":
        state.crisis_hold_cleared_by_therapist = True
        ctx.log("crisis_hold_cleared", by="therapist", who=event.by)
    elif event.action == "guardian-consent":
        state.guardian_consent = True
        ctx.log("guardian_consent", given=True, recorded_by=event.by)


def _may_tell(talk: Conversation) -> bool:
    """Whether a therapist's action may be told to the client now: not after a halt, not
    before consent, not in quiet hours."""
    ctx, state = talk.ctx, talk.state
    local = ctx.now.astimezone(zone(state.settings.timezone,
                                    ctx.res.policy.default_timezone)).time()
    return (not state.halted and talk.consented()
            and not in_quiet_hours(local, *talk.quiet_hours()))


def _propose(talk: Conversation, change: ContractChange, by: str) -> None:
    """A change to the contract, waiting for the client's answer (it replaces one waiting).

    The client gets one message: with its buttons when nothing else is asked of them (the
    exercise menu at most), otherwise without, so that an exercise or a question under way
    keeps its buttons; then ``/contract`` answers it. During a crisis hold nothing is sent:
    it waits for the client's ``/contract``.
    """
    ctx, state = talk.ctx, talk.state
    replaced = state.proposal.number if state.proposal is not None else None
    state.proposals += 1
    proposal = state.proposal = Proposal(number=state.proposals, by=by, change=change)
    ctx.log(PROPOSED, number=proposal.number, by=by,
            change=change.model_dump(exclude_none=True), replaces=replaced)
    if not _may_tell(talk) or ctx.crisis_hold():  # after a hard moment it waits for /contract
        return
    pending = state.pending
    if isinstance(pending, ContractQuestion):  # the replaced proposal was showing
        pending = pending.before
    running = state.session is not None and not state.session.paused
    if not running and (pending is None or isinstance(pending, MenuQuestion)):
        talk.ask(ContractQuestion(number=proposal.number, before=pending))
    else:
        ctx.say("contract.proposed", terms=agreement_lines(ctx, change.terms()), later=True)


def _timer(talk: Conversation, kind: str, due: datetime) -> None:
    ctx, state = talk.ctx, talk.state
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
    elif ctx.support_only() or state.resting:
        ctx.log("reminder_skipped", reason="crisis-hold" if state.not_safe else "resting")
    elif (state.session is None and ctx.opted(Opt.REMINDERS)  # none while paused
          and state.reminders_unanswered < ctx.res.policy.reminders_max_unanswered):
        state.reminders_unanswered += 1
        ctx.log("reminder_sent")
        ctx.say("reminder")
        if state.reminders_unanswered >= ctx.res.policy.reminders_max_unanswered:
            ctx.log("reminders_suspended", reason="unanswered")
    talk.schedule_reminder()


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
