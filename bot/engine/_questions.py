"""The questions outside the script the engine can wait for, each asking and taking its answer.

What the engine waits for is :attr:`ClientState.pending <bot.engine._state.ClientState>`: one
of the small models below (or None). Each knows how to ask itself (:meth:`Question.ask`, and
:meth:`Question.again` after an unexpected input), which buttons answer it
(:attr:`Question.takes`) and what an answer does (:meth:`Question.answer`); those that wait
for typed text take it in :meth:`Question.typed`. They are stored with the state as
``{"kind": ..., ...}``; a kind no release wrote fails to load, loudly.

============================  ==========================================  ====================
question                      asked                                       answered by
============================  ==========================================  ====================
:class:`ConsentQuestion`      the terms, age, each opt-in, in turn        Yes / No
:class:`MenuQuestion`         which exercise                              an exercise
:class:`SettingsQuestion`     ``/settings`` (and its region list)         a setting, a region
:class:`TimezoneQuestion`     the client's time zone                      typed text
:class:`ReminderTimeQuestion` the reminder time                           typed text
:class:`KeptAnswersQuestion`  keep-what-I-type switched off: delete?      delete / keep
:class:`CrisisQuestion`       "are you safe right now?"                   safe / not / unsure
:class:`LevelQuestion`        one level up?                               yes / no
:class:`StopQuestion`         after /stop: only this, or withdraw?        only this / withdraw
:class:`StopRequestQuestion`  a stop request in words: stop everything?   stop / keep going
:class:`DeleteQuestion`       delete all my data?                         delete / keep
:class:`SafetyPlanQuestion`   ``/safetyplan``: save a plan? each part …   plan buttons, text
:class:`ContractQuestion`     a change the therapist proposed: agree?     agree / talk first
:class:`SummaryQuestion`      ``/summary``, a session's end: share what?  summary buttons
:class:`OutcomeQuestion`      the weekly check-in, one item at a time     0–10, typed or not
============================  ==========================================  ====================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.engine._agreement import ANSWERED, Term, current_terms
from bot.engine._buttons import (
    SUMMARY_ANSWERS,
    SUMMARY_PAGE,
    ButtonKey,
    ContractAgree,
    ContractTalk,
    DeleteAnswers,
    DeleteNo,
    DeleteYes,
    HelpedRated,
    KeepAnswers,
    KeepGoing,
    LevelStay,
    LevelUp,
    MenuItem,
    No,
    NotSafe,
    NotSure,
    OnlyThis,
    OutcomeNotThisWeek,
    OutcomeSkip,
    PlanDone,
    PlanEdit,
    PlanNotNow,
    PlanPartChosen,
    PlanReview,
    PlanSkip,
    PlanUse,
    PlanWrite,
    Press,
    Rating,
    RegionChosen,
    Safe,
    Setting,
    SettingChosen,
    StopEverything,
    SummaryAnswer,
    SummaryComment,
    SummaryDone,
    SummaryEdit,
    SummaryItem,
    SummaryKeep,
    SummaryPage,
    SummaryPicked,
    SummaryShareAll,
    Withdraw,
    Yes,
)
from bot.engine._outcome import Answer, Effect
from bot.engine._plan import CLIENT, PART_CHARS, PART_LABELS, PARTS, PlanChange, SafetyPlan
from bot.engine._reminders import in_quiet_hours, parse_hhmm, zone
from bot.engine._summary import (
    COMMENT,
    COMMENTED,
    EDIT,
    EDITED,
    HELPED,
    RATED,
    SHARE_ITEMS,
    SHARED,
    WITHDRAWN,
    Kept,
    Row,
    Summary,
    Typed,
    edit_key,
    sessions,
)
from bot.engine._terms import MAX_TEXT, Opt, Pace, ReminderTime
from bot.intents import SafetyAnswer

if TYPE_CHECKING:
    from bot.engine._context import Choice, Context
    from bot.engine._conversation import Conversation


class Question(BaseModel, ABC):
    """Base of the questions: asks, and takes the answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: The kinds of button that answer it; any other press leaves it behind.
    takes: ClassVar[tuple[type[Press], ...]] = ()

    @abstractmethod
    def ask(self, talk: Conversation) -> None:
        """Ask the question."""

    def again(self, talk: Conversation) -> None:
        """Ask the question again, after an unexpected input."""
        self.ask(talk)

    @abstractmethod
    def answer(self, talk: Conversation, press: Press) -> None:
        """Take a press of one of the :attr:`takes` buttons (the question is no longer pending)."""

    def typed(self, talk: Conversation, text: str) -> None:
        """Take typed text while the question is pending: by default, ask again."""
        talk.ctx.say("unexpected.text_at_buttons")
        self.again(talk)


# -- consent -----------------------------------------------------------------------------------

#: The optional opt-ins, asked in this order after the terms.
OPT_INS = (Opt.STORE_FREE_TEXT, Opt.SHARE_WITH_THERAPIST, Opt.REMINDERS, Opt.ALERT_THERAPIST)
_OPT_IN_TEXTS = {
    Opt.STORE_FREE_TEXT: "consent.free_text",
    Opt.SHARE_WITH_THERAPIST: "consent.share",
    Opt.REMINDERS: "consent.reminders",
    Opt.ALERT_THERAPIST: "consent.alert",
}
#: The consent questions: the terms, being an adult, then each optional opt-in.
ConsentStep = Literal["intro", "adult", "store_free_text", "share_with_therapist", "reminders",
                      "alert_therapist"]


class ConsentQuestion(Question):
    """The consent questions, one at a time: the terms, age, then each optional opt-in."""

    kind: Literal["consent"] = "consent"
    step: ConsentStep = "intro"
    takes = (Yes, No)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        policy = ctx.res.policy
        if self.step == "intro":
            ctx.say("consent.intro", [[ctx.button("agree", Yes())],
                                      [ctx.button("decline", No())]],
                    retention_days=policy.retention_days, answers_days=policy.answers_days,
                    therapist_delay=policy.therapist_delay,
                    crisis_hold_hours=policy.crisis_hold_hours)
        elif self.step == "adult":
            ctx.say("consent.adult", [[ctx.button("yes", Yes())], [ctx.button("no", No())]])
        else:
            # the alert's text says how often at most, from the setting that decides it
            often = ({"alert_minutes": int(policy.alert_min.total_seconds() // 60)}
                     if self.step == Opt.ALERT_THERAPIST.value else {})
            ctx.say(_OPT_IN_TEXTS[Opt(self.step)], [[ctx.button("opt_in", Yes())],
                                                    [ctx.button("opt_out", No())]], **often)

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        version = ctx.res.policy.consent_version
        yes = isinstance(press, Yes)
        if self.step == "intro":
            ctx.log("consent", opt=Opt.CORE.value, given=yes, version=version)
            if not yes:
                state.consents.pop(Opt.CORE.value, None)
                state.consent_declined = True
                ctx.say("consent.declined")
                return
            state.consent_declined = False
            if state.adult is None:
                # Core consent holds only once the age question is answered: /start in
                # between must not lead past it.
                talk.ask(ConsentQuestion(step="adult"))
                return
            if not state.adult and not self._minor_allowed(talk):
                self._refuse_minor(talk)  # the age answer stands: it is not asked again
                return
            state.consents[Opt.CORE.value] = version
            talk.ask(ConsentQuestion(step=OPT_INS[0].value))
        elif self.step == "adult":
            ctx.log("age_confirmed", adult=yes)
            state.adult = yes
            if not yes and not self._minor_allowed(talk):
                self._refuse_minor(talk)
                return
            state.consents[Opt.CORE.value] = version
            talk.ask(ConsentQuestion(step=OPT_INS[0].value))
        else:
            opt = Opt(self.step)
            ctx.log("consent", opt=opt.value, given=yes, version=version)
            if yes:
                state.consents[opt.value] = version
            else:
                state.consents.pop(opt.value, None)
            position = OPT_INS.index(opt)
            if position + 1 < len(OPT_INS):
                talk.ask(ConsentQuestion(step=OPT_INS[position + 1].value))
                return
            given = [o.value for o in OPT_INS if state.has(o, version)]
            ctx.say("consent.done", opt_ins=given)
            if Opt.REMINDERS.value in given:
                talk.ask(TimezoneQuestion())
            else:
                talk.start()

    @staticmethod
    def _minor_allowed(talk: Conversation) -> bool:
        return talk.ctx.res.policy.allow_minors and talk.state.guardian_consent

    @staticmethod
    def _refuse_minor(talk: Conversation) -> None:
        """Under 18: no exercises, unless minors are allowed and the therapist recorded a
        guardian's consent (never self-declared in the chat)."""
        ctx = talk.ctx
        talk.state.consents.clear()
        ctx.log("consent", opt=Opt.CORE.value, given=False,
                version=ctx.res.policy.consent_version, reason="minor")
        ctx.say("consent.guardian_needed" if ctx.res.policy.allow_minors
                else "consent.minor_refused")


# -- the menu ----------------------------------------------------------------------------------


class MenuQuestion(Question):
    """Which exercise to start (at most eight are listed)."""

    kind: Literal["menu"] = "menu"
    takes = (MenuItem,)

    def ask(self, talk: Conversation) -> None:
        talk.menu()

    def answer(self, talk: Conversation, press: Press) -> None:
        assert isinstance(press, MenuItem)
        available = talk.available()
        if press.index < len(available):
            if not talk.check_in_weekly(available[press.index]):
                talk.begin_session(available[press.index])
        else:
            talk.menu()


# -- settings ----------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TOGGLES = {Setting.FREE_TEXT: Opt.STORE_FREE_TEXT, Setting.SHARING: Opt.SHARE_WITH_THERAPIST,
            Setting.REMINDERS: Opt.REMINDERS, Setting.ALERT: Opt.ALERT_THERAPIST}


class SettingsQuestion(Question):
    """``/settings``: the client's choices, each a button; the region list answers it too."""

    kind: Literal["settings"] = "settings"
    takes = (SettingChosen, RegionChosen)

    def ask(self, talk: Conversation) -> None:
        ctx, state = talk.ctx, talk.state
        version = ctx.res.policy.consent_version
        tz = state.settings.timezone or ctx.res.policy.default_timezone
        reminders = [" ".join(_DAYS[d] for d in r.days) + f" {r.time}"
                     for r in state.settings.reminders] if state.has(Opt.REMINDERS, version) else []

        def choose(key: ButtonKey, setting: Setting) -> tuple[str, Press]:
            return ctx.button(key, SettingChosen(setting))

        ctx.say("settings.menu", [
            [choose("change_pace", Setting.PACE)],
            [choose("change_free_text", Setting.FREE_TEXT)],
            [choose("change_sharing", Setting.SHARING)],
            [choose("toggle_reminders", Setting.REMINDERS)],
            [choose("change_alert", Setting.ALERT)],
            [choose("change_timezone", Setting.TIMEZONE),
             choose("change_reminders", Setting.REMINDER_TIME)],
            [choose("change_region", Setting.REGION)],
            [choose("close", Setting.CLOSE)],
        ], pace=state.pace, region=ctx.lines().label,
            store_free_text=state.has(Opt.STORE_FREE_TEXT, version),
            share_with_therapist=state.has(Opt.SHARE_WITH_THERAPIST, version),
            alert_therapist=state.has(Opt.ALERT_THERAPIST, version),
            reminders=reminders, timezone=tz,
            agreement=agreement_lines(ctx, current_terms(state.contract)),
            proposal_waiting=state.proposal is not None)

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        if isinstance(press, RegionChosen):
            if press.region in ctx.res.policy.regions:
                state.settings.region = press.region
                ctx.log("settings_changed", setting="region", region=press.region)
            talk.ask(self)
            return
        assert isinstance(press, SettingChosen)
        setting = press.setting
        if setting is Setting.CLOSE:
            ctx.say("settings.saved")
            talk.repeat()
        elif setting is Setting.PACE:
            pace = Pace.STEADY if state.pace is Pace.GENTLE else Pace.GENTLE
            state.settings.pace = pace
            ctx.log("pacing", choice="change-pace", pace=pace)
            talk.ask(self)
        elif setting in _TOGGLES:
            self._toggle(talk, _TOGGLES[setting])
        elif setting is Setting.TIMEZONE:
            talk.ask(TimezoneQuestion())
        elif setting is Setting.REMINDER_TIME:
            talk.ask(ReminderTimeQuestion())
        else:
            self._ask_region(talk)

    def _toggle(self, talk: Conversation, opt: Opt) -> None:
        ctx, state = talk.ctx, talk.state
        version = ctx.res.policy.consent_version
        given = not state.has(opt, version)
        ctx.log("consent", opt=opt.value, given=given, version=version)
        if given:
            state.consents[opt.value] = version
        else:
            state.consents.pop(opt.value, None)
        if opt is Opt.REMINDERS:
            if given and not state.settings.reminders:
                state.settings.reminders = [ReminderTime()]
            talk.schedule_reminder()
        if opt is Opt.STORE_FREE_TEXT and not given:
            talk.ask(KeptAnswersQuestion())  # what was kept so far is theirs to decide
        else:
            talk.ask(self)

    def _ask_region(self, talk: Conversation) -> None:
        """The regions whose lines a client may choose, the suggested one first."""
        ctx, state = talk.ctx, talk.state
        regions = ctx.res.policy.regions
        suggested = state.settings.suggested_region
        order = sorted(regions, key=lambda name: (name != suggested, regions[name].label))
        state.pending = self
        ctx.say("settings.ask_region",
                [[(regions[name].label, RegionChosen(name))] for name in order],
                suggested=regions[suggested].label if suggested is not None
                and suggested in regions else "")


class KeptAnswersQuestion(Question):
    """Keep-what-I-type was switched off: delete what was kept so far, or keep it?"""

    kind: Literal["kept_answers"] = "kept_answers"
    takes = (DeleteAnswers, KeepAnswers)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        ctx.say("settings.kept_answers", [[ctx.button("delete_answers", DeleteAnswers())],
                                          [ctx.button("keep_answers", KeepAnswers())]])

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx = talk.ctx
        delete = isinstance(press, DeleteAnswers)
        ctx.log("kept_answers", choice="delete" if delete else "keep")
        if delete:
            ctx.out.effects.append(Effect.DROP_ANSWERS)
            talk.state.progress.last_connection = None
            talk.runner.forget_typed()
            ctx.say("settings.answers_deleted")
        else:
            ctx.say("settings.answers_kept", answers_days=ctx.res.policy.answers_days)
        talk.ask(SettingsQuestion())


class _TypedSetting(Question):
    """A setting the client types (time zone, reminder time); settings buttons still count."""

    takes = (SettingChosen, RegionChosen)

    def again(self, talk: Conversation) -> None:
        """Back to the settings menu (the question is no longer asked in words)."""
        talk.ask(SettingsQuestion())

    def answer(self, talk: Conversation, press: Press) -> None:
        SettingsQuestion().answer(talk, press)

    def _saved(self, talk: Conversation) -> None:
        """The setting is saved: reminders follow it, then on with what the client was doing."""
        ctx = talk.ctx
        talk.state.pending = None
        talk.schedule_reminder()
        ctx.say("settings.saved")
        if talk.state.session is None and talk.consented():
            talk.menu()
        else:
            talk.repeat()


class TimezoneQuestion(_TypedSetting):
    """The client's time zone, typed (``Europe/Berlin``); the reminder time follows if unset."""

    kind: Literal["timezone"] = "timezone"

    def ask(self, talk: Conversation) -> None:
        talk.ctx.say("settings.ask_timezone")

    def typed(self, talk: Conversation, text: str) -> None:
        ctx, state = talk.ctx, talk.state
        name = text.strip()
        if zone(name, "Invalid/Zone").key != name:
            ctx.say("settings.bad_timezone")
            return
        state.settings.timezone = name
        ctx.log("settings_changed", setting="timezone")
        if not state.settings.reminders:
            talk.ask(ReminderTimeQuestion())
            return
        self._saved(talk)


class ReminderTimeQuestion(_TypedSetting):
    """The reminder time, typed (``19:00``), outside quiet hours."""

    kind: Literal["reminder_time"] = "reminder_time"

    def ask(self, talk: Conversation) -> None:
        talk.ctx.say("settings.ask_reminder_time")

    def typed(self, talk: Conversation, text: str) -> None:
        ctx, state = talk.ctx, talk.state
        at = parse_hhmm(text)
        if at is None:
            ctx.say("settings.bad_time")
            return
        policy = ctx.res.policy
        if in_quiet_hours(at, *talk.quiet_hours()):
            ctx.say("settings.quiet_hours", start=policy.quiet_start, end=policy.quiet_end)
            return
        state.settings.reminders = [ReminderTime(time=at.strftime("%H:%M"))]
        ctx.log("settings_changed", setting="reminder-time")
        self._saved(talk)


# -- safety, levels, stopping and deleting -----------------------------------------------------


class CrisisQuestion(Question):
    """After the crisis lines: "are you safe right now?", tapped or typed.

    A typed answer is read by :meth:`bot.intents.Intents.safety_answer` (after the crisis
    scan, as every text); "not sure" and anything unclear are answered as not safe.
    """

    kind: Literal["crisis"] = "crisis"
    takes = (Safe, NotSafe, NotSure)

    def ask(self, talk: Conversation) -> None:
        ask_if_safe(talk.ctx)

    def answer(self, talk: Conversation, press: Press) -> None:
        answer = (SafetyAnswer.SAFE if isinstance(press, Safe)
                  else SafetyAnswer.NOT_SAFE if isinstance(press, NotSafe)
                  else SafetyAnswer.UNSURE)
        talk.safety_answer(answer, typed=False)

    def typed(self, talk: Conversation, text: str) -> None:
        talk.state.pending = None
        talk.safety_answer(talk.ctx.res.intents.safety_answer(text), typed=True)


def ask_if_safe(ctx: Context) -> None:
    """Ask "are you safe right now?" (and wait for the answer), with its three buttons."""
    ctx.state.pending = CrisisQuestion()
    ctx.say("crisis.are_you_safe", [[ctx.button("safe", Safe())],
                                    [ctx.button("not_safe", NotSafe())],
                                    [ctx.button("not_sure", NotSure())]])


class LevelQuestion(Question):
    """One level up? (asked, never pushed, when the contract's rule holds)."""

    kind: Literal["level"] = "level"
    takes = (LevelUp, LevelStay)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        level = talk.state.level
        ctx.say("level.offer", [[ctx.button("level_yes", LevelUp())],
                                [ctx.button("level_no", LevelStay())]],
                level=level, next_level=level + 1)

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        if isinstance(press, LevelUp) and state.level < state.contract.max_level:
            ctx.log("level_changed", from_level=state.level, to_level=state.level + 1,
                    asked=True)
            state.level += 1
            ctx.say("level.up", level=state.level)
        else:
            key = str(state.level)
            state.progress.level_declined_at[key] = state.progress.completed_at_level.get(key, 0)
            ctx.log("level_kept", level=state.level)
            ctx.say("level.stay")


class StopQuestion(Question):
    """After /stop: stop only this, or withdraw every consent?"""

    kind: Literal["stop"] = "stop"
    takes = (OnlyThis, Withdraw)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        ctx.say("stop.confirm", [[ctx.button("only_this", OnlyThis())],
                                 [ctx.button("withdraw", Withdraw())]])

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        if isinstance(press, OnlyThis):
            state.halted = False
            ctx.log("stop_undone", keep="reminders")
            talk.schedule_reminder()
            ctx.say("stop.only_this")
            return
        # Every opt-in held is withdrawn, each with its own ledger row.
        held = [o.value for o in Opt if o.value in state.consents]
        for opt in held or [Opt.CORE.value]:
            ctx.log("consent", opt=opt, given=False, version=ctx.res.policy.consent_version,
                    reason="withdrawn")
        state.consents.clear()
        ctx.say("stop.withdraw")
        talk.ask(DeleteQuestion())


class StopRequestQuestion(Question):
    """A clear stop request in words ("please stop"): stop everything, or keep going?

    Attributes:
        before: The question the client was asked when they wrote it, asked again on "Keep
            going" (None: the session's step, or the menu).
    """

    kind: Literal["stop_request"] = "stop_request"
    before: Pending | None = None
    takes = (StopEverything, KeepGoing)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        ctx.say("stop.request", [[ctx.button("stop_everything", StopEverything())],
                                 [ctx.button("keep_going", KeepGoing())]])

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        if isinstance(press, StopEverything):
            talk.halt(via="request")
            return
        ctx.log("stop_request", choice="keep-going")
        if self.before is not None:
            talk.ask(self.before)  # the very question, as it was asked
        elif state.session is not None:
            talk.repeat()
        elif talk.consented():  # nothing was asked: what any text gets here
            talk.menu()
        else:
            talk.ask_consent()


class DeleteQuestion(Question):
    """Delete all my data? (``/delete``, or after withdrawing consent)."""

    kind: Literal["delete"] = "delete"
    takes = (DeleteYes, DeleteNo)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        ctx.say("delete.confirm", [[ctx.button("delete_confirm", DeleteYes())],
                                   [ctx.button("delete_cancel", DeleteNo())]])

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx = talk.ctx
        if isinstance(press, DeleteYes):
            ctx.log("erase_requested")
            ctx.out.effects.append(Effect.ERASE)
        else:
            ctx.say("delete.cancelled")
            talk.repeat()


# -- the safety plan ---------------------------------------------------------------------------

#: Where ``/safetyplan`` is: what saving means (before anything is written), one part's
#: question, the whole plan and what next, or the list of parts to change one of.
PlanStep = Literal["intro", "part", "overview", "choose"]
#: Every part in turn, one chosen part, or the parts a therapist suggested wording for.
PlanMode = Literal["build", "edit", "review"]


class SafetyPlanQuestion(Question):
    """``/safetyplan``: the client's own safety plan, in their words, one short part at a time.

    Each part the client writes (or whose suggested wording they choose) is saved at once as
    a new version of the plan, so nothing written is lost when a crisis, a stop or another
    command interrupts; every part can be skipped. Nothing a therapist suggested becomes the
    client's plan without their press of "use this wording".

    Attributes:
        step: See :data:`PlanStep`.
        part: The part asked, by its place in :data:`~bot.engine._plan.PARTS`.
        mode: See :data:`PlanMode`.
        suggestion: The version of the therapist's suggestion this pass shows: "use this
            wording" counts only while that is still the suggestion waiting.
        before: The question the client was asked before ``/safetyplan``, asked again after
            it (None: the session's step, if any).
    """

    kind: Literal["safety_plan"] = "safety_plan"
    step: PlanStep = "intro"
    part: int = Field(default=0, ge=0, lt=len(PARTS))
    mode: PlanMode = "build"
    suggestion: int | None = None
    before: Pending | None = None
    takes = (PlanWrite, PlanNotNow, PlanSkip, PlanUse, PlanEdit, PlanReview, PlanDone,
             PlanPartChosen)

    def ask(self, talk: Conversation) -> None:
        ctx, state = talk.ctx, talk.state
        shared = ctx.opted(Opt.SHARE_WITH_THERAPIST)
        suggested = state.plan_suggestion is not None
        if self.step == "intro":
            ctx.say("safetyplan.intro", [[ctx.button("plan_write", PlanWrite())],
                                         [ctx.button("plan_not_now", PlanNotNow())]],
                    shared=shared, suggested=suggested, parts=len(PARTS))
        elif self.step == "part":
            self._ask_part(talk)
        elif self.step == "overview":
            plan = ctx.plan_text()
            if plan:
                ctx.send(plan)
            rows = [[ctx.button("plan_change", PlanEdit())]]
            if suggested:
                rows.append([ctx.button("plan_review", PlanReview())])
            rows.append([ctx.button("plan_done", PlanDone())])
            ctx.say("safetyplan.overview", rows, written=bool(plan), shared=shared,
                    suggested=suggested)
        else:
            ctx.say("safetyplan.choose",
                    [[ctx.button(PART_LABELS[part], PlanPartChosen(index))]
                     for index, part in enumerate(PARTS)]
                    + [[ctx.button("plan_done", PlanDone())]])

    def _ask_part(self, talk: Conversation) -> None:
        ctx = talk.ctx
        part = PARTS[self.part]
        current = _plan(talk).part(part)
        suggested = self._suggested(talk, self.part, self.suggestion)
        rows = [[ctx.button("plan_use", PlanUse())]] if suggested else []
        rows.append([ctx.button("plan_keep" if current else "plan_skip", PlanSkip())])
        ctx.say("safetyplan.part", rows, part=part, heading=ctx.label(PART_LABELS[part]),
                number=self.part + 1, total=len(PARTS), current=current, suggested=suggested,
                chars=PART_CHARS, one_part=self.mode != "build")

    @staticmethod
    def _suggested(talk: Conversation, index: int, version: int | None) -> str:
        """The wording suggestion `version` has for a part, if it is still the suggestion
        waiting and its wording differs from what the plan says."""
        suggestion = talk.state.plan_suggestion
        if suggestion is None or suggestion.version != version:
            return ""
        text = suggestion.plan.part(PARTS[index])
        return text if text != _plan(talk).part(PARTS[index]) else ""

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        suggestion = state.plan_suggestion
        version = suggestion.version if suggestion is not None else None
        if isinstance(press, PlanWrite):
            ctx.log("safety_plan", action="write")  # the client's choice to keep a plan
            self._go(talk, 0, "build", version)
        elif isinstance(press, PlanNotNow):
            ctx.say("safetyplan.not_now")
            self._back(talk)
        elif isinstance(press, PlanDone):
            ctx.say("safetyplan.done")
            self._back(talk)
        elif isinstance(press, PlanEdit):
            talk.ask(self.model_copy(update={"step": "choose"}))
        elif isinstance(press, PlanPartChosen):
            self._go(talk, press.index, "edit", version)
        elif isinstance(press, PlanReview):
            first = self._following(talk, -1, "review", version)
            if first is None:  # nothing left to look at: the plan says it all already
                self._reviewed(talk, version)
                talk.ask(self.model_copy(update={"step": "overview"}))
            else:
                self._go(talk, first, "review", version)
        elif isinstance(press, PlanSkip):
            self._next(talk)
        else:
            assert isinstance(press, PlanUse)  # the last kind it takes
            text = self._suggested(talk, self.part, self.suggestion)
            if not text:  # a newer suggestion came meanwhile: show that one first
                ctx.say("safetyplan.suggestion_changed")
                self._go(talk, self.part, self.mode, version)
                return
            assert suggestion is not None
            self._save(talk, text, suggestion=suggestion.version, by=suggestion.by)

    def typed(self, talk: Conversation, text: str) -> None:
        if self.step != "part":
            super().typed(talk, text)
            return
        words = text.strip()
        if len(words) > PART_CHARS:
            talk.ctx.say("safetyplan.too_long", chars=PART_CHARS, length=len(words))
            return  # the question stays: the same buttons still answer it
        if words:
            self._save(talk, words)
        else:
            talk.ask(self)

    # -- moving through the parts -------------------------------------------------------------
    def _go(self, talk: Conversation, index: int, mode: PlanMode, version: int | None) -> None:
        talk.ask(self.model_copy(update={"step": "part", "part": index, "mode": mode,
                                         "suggestion": version}))

    def _save(self, talk: Conversation, text: str, *, suggestion: int | None = None,
              by: str | None = None) -> None:
        """Save the part as a new version of the plan (the fact in the ledger, not the text)."""
        ctx, state = talk.ctx, talk.state
        part = PARTS[self.part]
        plan = _plan(talk).with_part(part, text)
        state.safety_plan = plan
        ctx.out.plans.append(PlanChange(plan, CLIENT, "accepted", (part,), suggestion))
        used = {} if suggestion is None else {"suggestion": suggestion, "suggested_by": by}
        ctx.log("safety_plan", action="saved", part=part, **used)
        self._next(talk)

    def _next(self, talk: Conversation) -> None:
        following = self._following(talk, self.part, self.mode, self.suggestion)
        if following is not None:
            self._go(talk, following, self.mode, self.suggestion)
            return
        if self.mode != "edit":  # every part this pass shows was shown
            self._reviewed(talk, self.suggestion)
        talk.ask(self.model_copy(update={"step": "overview"}))

    def _following(self, talk: Conversation, index: int, mode: PlanMode,
                   version: int | None) -> int | None:
        """The next part a pass asks after ``index``: every part when building, the parts
        suggestion `version` has wording for when reviewing it, none after one chosen part."""
        later = range(index + 1, len(PARTS))
        if mode == "edit":
            return None
        if mode == "review":
            return next((i for i in later if self._suggested(talk, i, version)), None)
        return next(iter(later), None)

    def _reviewed(self, talk: Conversation, version: int | None) -> None:
        """The client has been through this suggestion: it is not offered again."""
        ctx, state = talk.ctx, talk.state
        suggestion = state.plan_suggestion
        if version is None or suggestion is None or suggestion.version != version:
            return
        state.plan_reviewed = version
        state.plan_suggestion = None
        ctx.log("safety_plan", action="suggestion_reviewed", suggestion=version)

    def _back(self, talk: Conversation) -> None:
        """Back to what the client was doing before ``/safetyplan``."""
        _back(talk, self.before)


# -- the agreement -----------------------------------------------------------------------------


def agreement_lines(ctx: Context, terms: dict[Term, int | list[str]]) -> list[str]:
    """Each term in plain words (``contract.term``), scripts by their titles."""
    scripts = ctx.res.scripts
    return [ctx.system("contract.term", term=term, value=[
        scripts[s].meta.title if s in scripts else s for s in value]
        if term == "assign" and isinstance(value, list) else value)
        for term, value in terms.items()]


class ContractQuestion(Question):
    """A change to the agreement the therapist proposed: agree, or talk about it first?

    Only "Agree" makes the change; nobody is moved up a level by it (a higher max level
    lets the client be asked later), and a lower one brings their level down with it.

    Attributes:
        number: The proposal asked about: a press for any other (replaced meanwhile) is
            told so and changes nothing.
        before: The question the client was asked before, asked again after the answer.
    """

    kind: Literal["contract"] = "contract"
    number: int
    before: Pending | None = None
    takes = (ContractAgree, ContractTalk)

    def ask(self, talk: Conversation) -> None:
        ctx, proposal = talk.ctx, talk.state.proposal
        if proposal is None or proposal.number != self.number:
            talk.state.pending = None
            ctx.say("contract.replaced")
            self._back(talk)
            return
        ctx.say("contract.proposed",
                [[ctx.button("contract_agree", ContractAgree(self.number))],
                 [ctx.button("contract_talk", ContractTalk(self.number))]],
                terms=agreement_lines(ctx, proposal.change.terms()), later=False)

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx, state = talk.ctx, talk.state
        assert isinstance(press, ContractAgree | ContractTalk)
        proposal = state.proposal
        if proposal is None or proposal.number != press.index:
            ctx.say("contract.replaced")
            self._back(talk)
            return
        state.proposal = None
        if isinstance(press, ContractTalk):
            ctx.log(ANSWERED, number=proposal.number, answer="talk_first")
            ctx.say("contract.talk_first")
            self._back(talk)
            return
        state.contract = proposal.change.applied_to(state.contract)
        ctx.log(ANSWERED, number=proposal.number, answer="agreed")
        if state.level > state.contract.max_level:
            ctx.log("level_changed", from_level=state.level, to_level=state.contract.max_level,
                    asked=True, reason="contract")
            state.level = state.contract.max_level
        ctx.say("contract.agreed", terms=agreement_lines(ctx, proposal.change.terms()))
        self._back(talk)

    def _back(self, talk: Conversation) -> None:
        """Back to what the client was doing before."""
        _back(talk, self.before)


def _back(talk: Conversation, before: Pending | None) -> None:
    """Back to what the client was doing: the question asked before (`before`), or the
    session's step."""
    if before is not None:
        talk.ask(before)
    else:
        talk.repeat()


def _plan(talk: Conversation) -> SafetyPlan:
    """The client's plan so far (an empty one before anything is written)."""
    return talk.state.safety_plan or SafetyPlan()


# -- session summaries -------------------------------------------------------------------------

_SHARE_KEYS: dict[str, ButtonKey] = {
    "exercise": "summary_share_exercise", "ratings": "summary_share_ratings",
    "difficulty": "summary_share_difficulty", "relief": "summary_share_relief",
    "pacing": "summary_share_pacing", "connections": "summary_share_connections",
    "helped": "summary_share_helped", "comment": "summary_share_comment"}
_WITHDRAW_KEYS: dict[str, ButtonKey] = {
    "exercise": "summary_withdraw_exercise", "ratings": "summary_withdraw_ratings",
    "difficulty": "summary_withdraw_difficulty", "relief": "summary_withdraw_relief",
    "pacing": "summary_withdraw_pacing", "connections": "summary_withdraw_connections",
    "helped": "summary_withdraw_helped", "comment": "summary_withdraw_comment"}
_HELPED_KEYS: tuple[ButtonKey, ...] = ("helped_yes", "helped_a_little", "helped_not_really")
#: How much of a typed answer the summary shows (and of the answer being edited): a
#: summary with every answer of a session stays one message.
_PREVIEW = 240
_EDIT_PREVIEW = 3_500
#: The longest comment on "Did this help?" taken: a short comment, not another exercise.
COMMENT_CHARS = 500


def _preview(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1].rstrip() + "…"


class SummaryQuestion(Question):
    """A session's summary, item by item the client's to share or keep private; or the
    ``/summary`` list of their sessions, newest first, a page at a time.

    Nothing is shared until the client presses a share button, and only while they hold the
    sharing opt-in; every press is a ``summary_shared`` or ``summary_withdrawn`` ledger row
    (:mod:`bot.engine._summary`), so the summary itself is read from the ledger, never kept in
    the state.

    Attributes:
        session: The session shown (its start time); None: the list.
        page: The list's page (0: the newest sessions), to go back to.
        listed: The session was chosen from the list: "Done" goes back to it.
        offer_level: Shown as a session ended: "Done" may ask about one level up next.
        editing: The typed answer (its place in the session's answers) the client's next
            text replaces; None: no edit under way.
        commenting: The client's next text is their comment on "Did this help?".
    """

    kind: Literal["summary"] = "summary"
    session: datetime | None = None
    page: int = Field(default=0, ge=0)
    listed: bool = False
    offer_level: bool = False
    editing: int | None = Field(default=None, ge=0)
    commenting: bool = False
    takes = (SummaryItem, SummaryShareAll, SummaryDone, SummaryPicked, SummaryPage, HelpedRated,
             SummaryAnswer, SummaryEdit, SummaryKeep, SummaryComment)

    def ask(self, talk: Conversation) -> None:
        self.show(talk.ctx)

    def show(self, ctx: Context) -> None:
        """Show the session's summary, or the list (``pending`` must be this question)."""
        if self.session is None:
            self._show_list(ctx)
            return
        shown = self._shown(ctx)
        if shown is None:  # erased meanwhile, or older than the ledger keeps
            ctx.say("summary.none")
            ctx.state.pending = None
            return
        if self.editing is not None:
            typed = self._typed(ctx, shown, self.editing)
            if typed is not None:
                ctx.say("summary.edit", [[ctx.button("summary_keep_answer", SummaryKeep())]],
                        number=self.editing + 1, text=_preview(typed.text, _EDIT_PREVIEW),
                        chars=MAX_TEXT)
                return
            ctx.state.pending = self.model_copy(update={"editing": None})
        keeps = ctx.opted(Opt.STORE_FREE_TEXT)
        if self.commenting and keeps and shown.helped is not None:
            ctx.say("summary.comment", [[ctx.button("summary_keep_answer", SummaryKeep())]],
                    comment=shown.comment, chars=COMMENT_CHARS)
            return
        sharing = ctx.opted(Opt.SHARE_WITH_THERAPIST)
        holds = _offered(shown)
        rows: list[list[tuple[str, Press]]] = []
        if shown.helped is None:  # "Did this help?", answered once (or never: it is optional)
            rows.append([ctx.button(key, HelpedRated(index))
                         for index, key in enumerate(_HELPED_KEYS)])
        can_comment = keeps and shown.helped is not None
        if can_comment:
            rows.append([ctx.button("summary_change_comment" if shown.comment is not None
                                    else "summary_comment", SummaryComment())])
        answers = shown.answers[:SUMMARY_ANSWERS]
        if sharing:
            for item in holds:
                if item in SHARE_ITEMS:
                    key = _WITHDRAW_KEYS[item] if shown.shares(item) else _SHARE_KEYS[item]
                    rows.append([ctx.button(key, SummaryItem(SHARE_ITEMS.index(item)))])
        for index, typed in enumerate(answers):
            row = [ctx.button("summary_edit_answer", SummaryEdit(index), number=index + 1)]
            if sharing:
                key = ("summary_withdraw_answer" if shown.shares(typed.item)
                       else "summary_share_answer")
                row.append(ctx.button(key, SummaryAnswer(index), number=index + 1))
            rows.append(row)
        if sharing and any(not shown.shares(item) for item in holds):
            rows.append([ctx.button("summary_share_all", SummaryShareAll())])
        rows.append([ctx.button("summary_done", SummaryDone())])
        ctx.say("summary.session", rows, title=_title(ctx, shown), date=ctx.local_time(shown.id),
                completed=shown.completed, level=shown.level,
                distress_before=shown.distress_before, distress_after=shown.distress_after,
                expected=shown.expected, actual=shown.actual, relief=shown.relief,
                smaller_steps=shown.smaller_steps, skips=shown.skips,
                connections=shown.connections, helped=shown.helped,
                comment=_preview(shown.comment or "", _PREVIEW), can_comment=can_comment,
                items=[item for item in holds if item in SHARE_ITEMS],
                answers=[{"text": _preview(t.text, _PREVIEW), "edited": t.edited,
                          "shared": shown.shares(t.item)} for t in answers],
                shared=[item for item in holds if shown.shares(item)], sharing=sharing)

    def _show_list(self, ctx: Context) -> None:
        ended = summaries(ctx)
        if not ended:
            ctx.say("summary.none")
            ctx.state.pending = None
            return
        pages = (len(ended) + SUMMARY_PAGE - 1) // SUMMARY_PAGE
        page = min(self.page, pages - 1)
        if page != self.page:
            ctx.state.pending = self.model_copy(update={"page": page})
        shown = ended[page * SUMMARY_PAGE:(page + 1) * SUMMARY_PAGE]
        rows: list[list[tuple[str, Press]]] = [
            [(f"{ctx.local_time(s.id)} · {_title(ctx, s)}"[:40], SummaryPicked(index))]
            for index, s in enumerate(shown)]
        turn = [ctx.button("summary_newer", SummaryPage(page - 1))] if page else []
        if page + 1 < pages:
            turn.append(ctx.button("summary_older", SummaryPage(page + 1)))
        rows += [turn] if turn else []
        rows.append([ctx.button("summary_done", SummaryDone())])
        ctx.say("summary.list", rows, page=page + 1, pages=pages,
                sharing=ctx.opted(Opt.SHARE_WITH_THERAPIST))

    def answer(self, talk: Conversation, press: Press) -> None:
        ctx = talk.ctx
        if isinstance(press, SummaryPage):
            talk.ask(self.model_copy(update={"page": press.index}))
        elif isinstance(press, SummaryPicked):
            start = self.page * SUMMARY_PAGE + press.index
            ended = summaries(ctx)
            if start < len(ended):
                talk.ask(SummaryQuestion(session=ended[start].id, page=self.page, listed=True))
            else:
                talk.ask(self)
        elif isinstance(press, SummaryDone):
            if self.session is not None and self.listed:
                talk.ask(SummaryQuestion(page=self.page))
                return
            ctx.say("summary.closed")
            if self.offer_level:
                talk.runner.offer_level_up()
            else:  # back to the step of a session under way, if any
                talk.repeat()
        else:
            self._choose(talk, press)

    def _choose(self, talk: Conversation, press: Press) -> None:
        """Answer "Did this help?", share an item (or all of them), or withdraw one: a ledger
        row, then the summary again as it now stands."""
        ctx = talk.ctx
        shown = self._shown(ctx)
        if isinstance(press, SummaryKeep):
            talk.ask(self.model_copy(update={"editing": None, "commenting": False}))
            return
        if isinstance(press, SummaryComment):  # only once "Did this help?" has its answer
            talk.ask(self.model_copy(update={
                "commenting": shown is not None and shown.helped is not None}))
            return
        if isinstance(press, SummaryEdit):  # an answer no longer kept: the summary again
            typed = None if shown is None else self._typed(ctx, shown, press.index)
            talk.ask(self.model_copy(update={"editing": press.index if typed else None}))
            return
        if isinstance(press, HelpedRated):
            if shown is not None and shown.helped is None:
                ctx.log(RATED, session=shown.id.isoformat(), script=shown.script,
                        helped=HELPED[press.index])
            talk.ask(self)
            return
        if shown is None or not ctx.opted(Opt.SHARE_WITH_THERAPIST):
            talk.ask(self)  # nothing to share, or no opt-in (any more): nothing is written
            return
        holds = _offered(shown)
        if isinstance(press, SummaryAnswer):
            typed = self._typed(ctx, shown, press.index)
            if typed is not None:
                ctx.log(WITHDRAWN if shown.shares(typed.item) else SHARED,
                        session=shown.id.isoformat(), items=[typed.item])
        elif isinstance(press, SummaryItem):
            item = SHARE_ITEMS[press.index]
            if item in holds:
                ctx.log(WITHDRAWN if shown.shares(item) else SHARED,
                        session=shown.id.isoformat(), items=[item])
        else:
            fresh = [item for item in holds if not shown.shares(item)]
            if fresh:
                ctx.log(SHARED, session=shown.id.isoformat(), items=fresh)
        talk.ask(self)

    def typed(self, talk: Conversation, text: str) -> None:
        """The new version of the answer being edited, or the comment (crisis words were
        caught before)."""
        ctx = talk.ctx
        if self.commenting:
            self._comment(talk, text)
            return
        shown = self._shown(ctx) if self.editing is not None else None
        typed = None if shown is None or self.editing is None else self._typed(
            ctx, shown, self.editing)
        if shown is None or typed is None:
            super().typed(talk, text)
            return
        words = text.strip()
        if len(words) > MAX_TEXT:
            ctx.say("unexpected.too_long", limit=MAX_TEXT)
            return  # still editing: the next text is the new version
        if not words:
            talk.ask(self)
            return
        if words != typed.text:
            ctx.out.answers.append(Answer(step=edit_key(shown.id, typed.place), text=words,
                                          kind=EDIT))
            ctx.log(EDITED, session=shown.id.isoformat(), item=typed.item)
        talk.ask(self.model_copy(update={"editing": None}))

    def _comment(self, talk: Conversation, text: str) -> None:
        """Store the comment on "Did this help?" (only while the client keeps what they type)."""
        ctx = talk.ctx
        shown = self._shown(ctx)
        words = text.strip()
        if shown is None or shown.helped is None or not ctx.opted(Opt.STORE_FREE_TEXT):
            talk.ask(self.model_copy(update={"commenting": False}))
            return
        if len(words) > COMMENT_CHARS:
            ctx.say("unexpected.too_long", limit=COMMENT_CHARS)
            return  # still commenting: the next text is the comment
        if words and words != shown.comment:
            ctx.out.answers.append(Answer(step=shown.id.isoformat(), text=words, kind=COMMENT))
            ctx.log(COMMENTED, session=shown.id.isoformat())
        talk.ask(self.model_copy(update={"commenting": False}))

    def _shown(self, ctx: Context) -> Summary | None:
        return next((s for s in summaries(ctx) if s.id == self.session), None)

    @staticmethod
    def _typed(ctx: Context, shown: Summary, index: int) -> Typed | None:
        """The session's typed answer at `index`, while the client keeps what they type."""
        if not ctx.opted(Opt.STORE_FREE_TEXT) or index >= len(shown.answers):
            return None
        return shown.answers[index]


def _offered(shown: Summary) -> tuple[str, ...]:
    """What the summary shows and so offers to share: every item it holds, but typed
    answers only as far as they are shown (nothing unseen is shared by "Share all")."""
    shown_answers = {typed.item for typed in shown.answers[:SUMMARY_ANSWERS]}
    return tuple(item for item in shown.holds()
                 if item in SHARE_ITEMS or item in shown_answers)


def summaries(ctx: Context) -> list[Summary]:
    """The client's ended sessions, newest first, with every choice made so far applied
    (those of this event too), and their typed answers while the client keeps them."""
    now = [Row(kind=e.kind, data=e.data, at=ctx.now) for e in ctx.out.ledger]
    kept = [*ctx.state.kept, *(Kept(step=a.step, text=a.text, at=ctx.now, kind=a.kind)
                               for a in ctx.out.answers)]
    if not ctx.opted(Opt.STORE_FREE_TEXT):
        kept = []
    return [s for s in reversed(sessions([*ctx.state.history, *now], kept))
            if s.ended_at is not None]


def _title(ctx: Context, shown: Summary) -> str:
    script = ctx.res.scripts.get(shown.script)
    return script.meta.title if script is not None else shown.script


# -- the weekly outcome check-in ---------------------------------------------------------------

#: The check-in's items, in the order asked (``outcomes.item`` words each): worded from the
#: seeds' "track changes in relationship satisfaction, communication quality, and
#: willingness to seek support". Ledger rows name them; never a diagnosis, never a score.
OUTCOME_ITEMS = ("closeness", "saying_needs", "reaching_out")
#: How long after one check-in the next is asked (at the first session start after it).
OUTCOMES_EVERY = timedelta(days=7)
#: The ledger rows: the therapist switched it (``{"on": BOOL, "by": WHO}``), an item's answer
#: (``{"item": ITEM, "value": 0–10}``) and "Not this week" (``{"item": ITEM}``, where it was).
OUTCOMES_SWITCHED, OUTCOME_RATED, OUTCOMES_DECLINED = (
    "outcomes_switched", "outcome_rated", "outcomes_declined")


def rating_rows() -> list[list[Choice]]:
    """The 0–10 buttons, in two rows."""
    return [[(str(i), Rating(i)) for i in range(6)], [(str(i), Rating(i)) for i in range(6, 11)]]


class OutcomeQuestion(Question):
    """The weekly outcome check-in: each item 0–10, pressed or typed, or skipped; "Not this
    week" skips the rest. Then what the client came for: the exercise they chose, or the menu.

    Attributes:
        item: The item asked (its place in :data:`OUTCOME_ITEMS`).
        script: The exercise chosen from the menu before the check-in came (None: /start).
    """

    kind: Literal["outcomes"] = "outcomes"
    item: int = 0
    script: str | None = None
    takes = (Rating, OutcomeSkip, OutcomeNotThisWeek)

    def ask(self, talk: Conversation) -> None:
        ctx = talk.ctx
        ctx.say("outcomes.item", [*rating_rows(), [ctx.button("outcomes_skip", OutcomeSkip())],
                                  [ctx.button("outcomes_not_this_week", OutcomeNotThisWeek())]],
                item=OUTCOME_ITEMS[self.item], number=self.item + 1, of=len(OUTCOME_ITEMS))

    def answer(self, talk: Conversation, press: Press) -> None:
        if isinstance(press, OutcomeNotThisWeek):
            talk.ctx.log(OUTCOMES_DECLINED, item=OUTCOME_ITEMS[self.item])
            talk.ctx.say("outcomes.not_this_week")
            self._then(talk)
        elif isinstance(press, Rating):
            self._rated(talk, press.value)
        else:
            self._next(talk)

    def typed(self, talk: Conversation, text: str) -> None:
        value = text.strip()
        if value.isascii() and value.isdigit() and int(value) <= 10:
            talk.state.pending = None
            self._rated(talk, int(value))
        else:
            talk.ctx.say("outcomes.number")
            self.ask(talk)

    def _rated(self, talk: Conversation, value: int) -> None:
        talk.ctx.log(OUTCOME_RATED, item=OUTCOME_ITEMS[self.item], value=value)
        self._next(talk)

    def _next(self, talk: Conversation) -> None:
        if self.item + 1 < len(OUTCOME_ITEMS):
            talk.ask(self.model_copy(update={"item": self.item + 1}))
        else:
            talk.ctx.say("outcomes.thanks")
            self._then(talk)

    def _then(self, talk: Conversation) -> None:
        talk.state.pending = None
        if self.script is not None and self.script in talk.available():
            talk.begin_session(self.script)
        else:
            talk.menu()


#: What the engine can wait for outside the script, stored as ``{"kind": ..., ...}``.
Pending = Annotated[
    ConsentQuestion | MenuQuestion | SettingsQuestion | TimezoneQuestion | ReminderTimeQuestion
    | KeptAnswersQuestion | CrisisQuestion | LevelQuestion | StopQuestion | DeleteQuestion
    | StopRequestQuestion | SafetyPlanQuestion | ContractQuestion | SummaryQuestion
    | OutcomeQuestion,
    Field(discriminator="kind"),
]
StopRequestQuestion.model_rebuild()
SafetyPlanQuestion.model_rebuild()
ContractQuestion.model_rebuild()
