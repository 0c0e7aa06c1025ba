"""Typed button data: what a button means, packed into its callback data and checked back.

In the spirit of aiogram's ``CallbackData``: every kind of button is a small frozen class with
a prefix (``Rating`` is ``r``) and at most one field, packed after the prefix (``r7``) and
unpacked by :func:`unpack`, which accepts exactly what :meth:`Press.pack` writes and raises
:class:`UnknownButton` for anything else. The packed codes are the ones the engine has always
sent, so keyboards shown before an upgrade keep working after it.

On the wire a code travels as ``KEYBOARD:CODE`` (:meth:`bot.engine._context.Context.send`):
the keyboard number makes presses of older keyboards stale, and only codes the engine offered
on the live keyboard are accepted. Telegram allows 64 bytes of callback data; a code is at most
:data:`MAX_CODE` bytes, which leaves room for any keyboard number.

Typical use::

    code = Rating(7).pack()            # "r7"
    assert unpack(code) == Rating(7)
    match unpack(code):
        case Rating(value=value): ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal, Self, get_args

from bot.engine._summary import HELPED, SHARE_ITEMS

#: The longest code (the keyboard number and a colon come before it, within 64 bytes).
MAX_CODE = 40

#: Every button label the engine shows from the system texts (``buttons.KEY``); script labels
#: (choices, exercise pages, the menu) and numbers are shown as written.
ButtonKey = Literal[
    "go_on", "pause", "resume", "smaller", "skip", "shared", "said_it", "hint", "example",
    "start", "one_more", "enough_today",
    "skip_not_today", "skip_too_much", "skip_private", "skip_no_reason",
    "relief_yes", "relief_little", "relief_no", "done",
    "cue_tight_chest", "cue_shallow_breath", "cue_tense_jaw", "cue_racing_heart",
    "cue_numb", "cue_foggy", "cue_far_away", "cue_frozen",
    "yes", "no", "agree", "decline", "opt_in", "opt_out",
    "safe", "not_safe", "not_sure", "level_yes", "level_no", "only_this", "withdraw",
    "stop_everything", "keep_going", "partner_safe", "partner_unsure",
    "delete_confirm", "delete_cancel", "delete_answers", "keep_answers",
    "change_pace", "change_free_text", "change_sharing", "toggle_reminders", "change_alert",
    "change_timezone", "change_reminders", "change_region", "close",
    "plan_write", "plan_not_now", "plan_skip", "plan_keep", "plan_use", "plan_change",
    "plan_review", "plan_done", "plan_warning_signs", "plan_internal_coping",
    "plan_distraction", "plan_people_to_ask", "plan_professionals", "plan_safe_environment",
    "contract_agree", "contract_talk",
    "summary_share_exercise", "summary_share_ratings", "summary_share_difficulty",
    "summary_share_relief", "summary_share_pacing", "summary_share_connections",
    "summary_withdraw_exercise", "summary_withdraw_ratings", "summary_withdraw_difficulty",
    "summary_withdraw_relief", "summary_withdraw_pacing", "summary_withdraw_connections",
    "summary_share_helped", "summary_withdraw_helped", "helped_yes", "helped_a_little",
    "helped_not_really",
    "summary_share_all", "summary_done", "summary_older", "summary_newer",
    "outcomes_skip", "outcomes_not_this_week",
    "summary_share_answer", "summary_withdraw_answer", "summary_edit_answer",
    "summary_keep_answer", "summary_share_comment", "summary_withdraw_comment",
    "summary_comment", "summary_change_comment",
]  # fmt: skip
BUTTON_KEYS: tuple[ButtonKey, ...] = get_args(ButtonKey)


class UnknownButton(ValueError):
    """Callback data that no kind of button packs to."""


@dataclass(frozen=True)
class Press:
    """Base of every kind of button: a prefix, and its field (if any) packed after it."""

    prefix: ClassVar[str] = ""
    _kinds: ClassVar[list[type[Press]]] = []

    def __init_subclass__(cls, prefix: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not prefix and cls.__name__.startswith("_"):
            return  # a private base of other kinds (`_Numbered`), never a button itself
        if not prefix:
            raise TypeError(f"{cls.__name__} needs a prefix")
        cls.prefix = prefix
        Press._kinds.append(cls)

    def pack(self) -> str:
        """The callback code of this button, e.g. ``r7``."""
        code = self.prefix + self._field()
        if len(code.encode()) > MAX_CODE:
            raise ValueError(f"button code {code!r} is longer than {MAX_CODE} bytes")
        return code

    def _field(self) -> str:
        return ""

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        """The button whose field packs to ``field``, or None (the default: no field)."""
        return cls() if field == "" else None


def unpack(code: str) -> Press:
    """The button a code stands for.

    Raises:
        UnknownButton: When no kind of button packs to ``code``, or more than one does.
    """
    found = [press for kind in Press._kinds if code.startswith(kind.prefix)
             if (press := kind._from_field(code[len(kind.prefix):])) is not None]
    if len(found) != 1:
        raise UnknownButton(f"no button packs to {code!r}" if not found
                            else f"{code!r} is ambiguous: {found}")
    return found[0]


def _index(field: str, count: int) -> int | None:
    """A packed index below ``count``, or None."""
    if field.isascii() and field.isdigit() and str(int(field)) == field and int(field) < count:
        return int(field)
    return None


@dataclass(frozen=True)
class _Numbered(Press):
    """A button that carries one number from :attr:`lowest` to below :attr:`below`: a place
    in a list, a page, a proposal's number."""

    below: ClassVar[int]
    lowest: ClassVar[int] = 0
    index: int

    def _field(self) -> str:
        return str(self.index)

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        index = _index(field, cls.below)
        return None if index is None or index < cls.lowest else cls(index)


# -- moving through a step ---------------------------------------------------------------------


@dataclass(frozen=True)
class GoOn(Press, prefix="go"):
    """Go on: the next page, or the step after a ``say``."""


@dataclass(frozen=True)
class Pause(Press, prefix="pa"):
    """Pause the session."""


@dataclass(frozen=True)
class Resume(Press, prefix="re"):
    """Resume a paused session."""


@dataclass(frozen=True)
class Smaller(Press, prefix="sm"):
    """A smaller step: a gentler wording or a lower level."""


@dataclass(frozen=True)
class Skip(Press, prefix="sk"):
    """Skip this prompt, role-play line, connection note or journaling page."""


@dataclass(frozen=True)
class Shared(Press, prefix="sh"):
    """The client shared what a prompt invited (off the app, or in words)."""


@dataclass(frozen=True)
class SaidIt(Press, prefix="sd"):
    """The client said their line of a role-play."""


@dataclass(frozen=True)
class StartScene(Press, prefix="st"):
    """Start the role-play scene whose frame is showing (at a gentle pace)."""


@dataclass(frozen=True)
class Hint(Press, prefix="hi"):
    """Show the hint of a role-play line."""


@dataclass(frozen=True)
class Example(Press, prefix="ex"):
    """Show the modelled answer of a role-play line."""


@dataclass(frozen=True)
class OneMore(Press, prefix="mo"):
    """Asked whether that is enough for today: one more prompt, please."""


@dataclass(frozen=True)
class Enough(Press, prefix="en"):
    """Asked whether that is enough for today: yes, no more prompts in this session."""


@dataclass(frozen=True)
class ChoiceMade(_Numbered, prefix="c"):
    """One of an ``ask`` step's choices, by its position (at most 8)."""

    below = 8


class SkipReason(StrEnum):
    """Why a client skipped a prompt (a reason is never required)."""

    NOT_TODAY = "not_today"
    TOO_MUCH = "too_much"
    PRIVATE = "private"


#: The skip reasons in the order of their buttons; the last button gives none.
_SKIP_REASONS = (*SkipReason, None)


@dataclass(frozen=True)
class SkipWhy(Press, prefix="s"):
    """The reason given for skipping a prompt (None: "no reason")."""

    reason: SkipReason | None

    def _field(self) -> str:
        return str(_SKIP_REASONS.index(self.reason))

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        index = _index(field, len(_SKIP_REASONS))
        return None if index is None else cls(_SKIP_REASONS[index])


# -- check-ins ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating(Press, prefix="r"):
    """A 0–10 rating: distress, or how hard the client expects or found the exercise."""

    value: int

    def _field(self) -> str:
        return str(self.value)

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        value = _index(field, 11)
        return None if value is None else cls(value)


class Relief(StrEnum):
    """Whether relief followed an exercise."""

    YES = "yes"
    A_LITTLE = "a-little"
    NO = "no"


_RELIEFS = tuple(Relief)


@dataclass(frozen=True)
class ReliefFelt(Press, prefix="l"):
    """The answer to "did some relief follow?"."""

    relief: Relief

    def _field(self) -> str:
        return str(_RELIEFS.index(self.relief))

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        index = _index(field, len(_RELIEFS))
        return None if index is None else cls(_RELIEFS[index])


class Cue(StrEnum):
    """Body cues: over-arousal first, then under-arousal (which always routes to grounding)."""

    TIGHT_CHEST = "tight_chest"
    SHALLOW_BREATH = "shallow_breath"
    TENSE_JAW = "tense_jaw"
    RACING_HEART = "racing_heart"
    NUMB = "numb"
    FOGGY = "foggy"
    FAR_AWAY = "far_away"
    FROZEN = "frozen"

    @property
    def under_arousal(self) -> bool:
        """Whether the cue is one of under-arousal (numb, foggy, far away, frozen)."""
        return self in UNDER_CUES

    @property
    def label(self) -> ButtonKey:
        """The key of its button's label."""
        return _CUE_LABELS[self]


OVER_CUES = (Cue.TIGHT_CHEST, Cue.SHALLOW_BREATH, Cue.TENSE_JAW, Cue.RACING_HEART)
UNDER_CUES = (Cue.NUMB, Cue.FOGGY, Cue.FAR_AWAY, Cue.FROZEN)
_CUE_LABELS: dict[Cue, ButtonKey] = {
    Cue.TIGHT_CHEST: "cue_tight_chest", Cue.SHALLOW_BREATH: "cue_shallow_breath",
    Cue.TENSE_JAW: "cue_tense_jaw", Cue.RACING_HEART: "cue_racing_heart", Cue.NUMB: "cue_numb",
    Cue.FOGGY: "cue_foggy", Cue.FAR_AWAY: "cue_far_away", Cue.FROZEN: "cue_frozen",
}


@dataclass(frozen=True)
class CueTicked(Press, prefix="k"):
    """A body cue ticked or unticked."""

    cue: Cue

    def _field(self) -> str:
        return self.cue.value

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        return cls(Cue(field)) if field in Cue._value2member_map_ else None


@dataclass(frozen=True)
class CuesDone(Press, prefix="kd"):
    """Done ticking body cues."""


# -- questions outside the script --------------------------------------------------------------


@dataclass(frozen=True)
class Yes(Press, prefix="y"):
    """Yes to a consent question (agree, I am an adult, opt in)."""


@dataclass(frozen=True)
class No(Press, prefix="n"):
    """No to a consent question (decline, I am not an adult, no thanks)."""


@dataclass(frozen=True)
class MenuItem(_Numbered, prefix="m"):
    """An exercise on the menu, by its position (at most 8)."""

    below = 8


@dataclass(frozen=True)
class Safe(Press, prefix="sf"):
    """"I'm safe right now"."""


@dataclass(frozen=True)
class NotSafe(Press, prefix="ns"):
    """"I'm not safe"."""


@dataclass(frozen=True)
class NotSure(Press, prefix="nu"):
    """"Not sure" (answered as not safe)."""


@dataclass(frozen=True)
class LevelUp(Press, prefix="ly"):
    """Yes to the offered step up a level."""


@dataclass(frozen=True)
class LevelStay(Press, prefix="ln"):
    """No to the offered step up: stay at this level."""


@dataclass(frozen=True)
class OnlyThis(Press, prefix="ot"):
    """After /stop: stop only this exercise, keep reminders and consent."""


@dataclass(frozen=True)
class Withdraw(Press, prefix="wd"):
    """After /stop: withdraw every consent."""


@dataclass(frozen=True)
class StopEverything(Press, prefix="xs"):
    """Yes to "do you want to stop?": stop everything, as /stop does."""


@dataclass(frozen=True)
class KeepGoing(Press, prefix="xk"):
    """No to "do you want to stop?": back to exactly where the client was."""


@dataclass(frozen=True)
class PartnerSafe(Press, prefix="ps"):
    """Before a partner scene: "I feel safe with my partner"."""


@dataclass(frozen=True)
class PartnerUnsure(Press, prefix="pu"):
    """Before a partner scene: "I don't, or I'm not sure"."""


@dataclass(frozen=True)
class DeleteYes(Press, prefix="dy"):
    """Yes, delete all my data."""


@dataclass(frozen=True)
class DeleteNo(Press, prefix="dn"):
    """No, keep my data."""


@dataclass(frozen=True)
class KeepAnswers(Press, prefix="ak"):
    """Keep-what-I-type switched off: keep what was kept so far."""


@dataclass(frozen=True)
class DeleteAnswers(Press, prefix="ad"):
    """Keep-what-I-type switched off: delete what was kept so far."""


# -- the safety plan (/safetyplan) -------------------------------------------------------------


@dataclass(frozen=True)
class PlanWrite(Press, prefix="pw"):
    """Yes, write (and save) my safety plan, one part at a time."""


@dataclass(frozen=True)
class PlanNotNow(Press, prefix="pn"):
    """Not now: nothing is written or saved."""


@dataclass(frozen=True)
class PlanSkip(Press, prefix="pk"):
    """Skip this part of the plan, or keep it as it is."""


@dataclass(frozen=True)
class PlanUse(Press, prefix="pg"):
    """Use the therapist's suggested wording for this part."""


@dataclass(frozen=True)
class PlanEdit(Press, prefix="pe"):
    """Change one part of the plan (the parts are listed next)."""


@dataclass(frozen=True)
class PlanReview(Press, prefix="pr"):
    """Go through the therapist's suggestions, one part at a time."""


@dataclass(frozen=True)
class PlanDone(Press, prefix="pd"):
    """Done with the plan for now."""


@dataclass(frozen=True)
class PlanPartChosen(_Numbered, prefix="pp"):
    """One part of the plan, by its place in the plan (0–5), to change."""

    below = 6


# -- the agreement (/contract) -----------------------------------------------------------------


@dataclass(frozen=True)
class ContractAgree(_Numbered, prefix="ca"):
    """Agree to the proposed change to the agreement (by the proposal's number, 1, 2, …: a
    press shown with an older proposal is told apart from one for the proposal waiting)."""

    below = 10**9
    lowest = 1


@dataclass(frozen=True)
class ContractTalk(_Numbered, prefix="ct"):
    """"I'd like to talk about it first": the proposed change does not take effect (by the
    proposal's number, as :class:`ContractAgree`)."""

    below = 10**9
    lowest = 1


class Setting(StrEnum):
    """What a client can change in ``/settings`` (the letter is its code)."""

    PACE = "p"
    FREE_TEXT = "f"
    SHARING = "s"
    REMINDERS = "r"
    TIMEZONE = "z"
    REMINDER_TIME = "t"
    REGION = "c"
    ALERT = "a"
    CLOSE = "d"


@dataclass(frozen=True)
class SettingChosen(Press, prefix="g"):
    """One of the ``/settings`` buttons."""

    setting: Setting

    def _field(self) -> str:
        return self.setting.value

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        return cls(Setting(field)) if field in Setting._value2member_map_ else None


#: A region's key as a button can carry it (the configuration allows no other).
REGION_KEY = re.compile(r"[A-Za-z0-9_-]{1,20}")


@dataclass(frozen=True)
class RegionChosen(Press, prefix="gc"):
    """A region whose crisis lines the client chose, by its key (``US``)."""

    region: str

    def __post_init__(self) -> None:
        if not REGION_KEY.fullmatch(self.region):
            raise ValueError(f"a region key is 1–20 letters, digits, - or _, not {self.region!r}")

    def _field(self) -> str:
        return self.region

    @classmethod
    def _from_field(cls, field: str) -> Self | None:
        return cls(field) if REGION_KEY.fullmatch(field) else None


# -- session summaries -------------------------------------------------------------------------

#: How many sessions a page of ``/summary`` lists.
SUMMARY_PAGE = 5
#: At most this many typed answers of one session are shown, each with its buttons (a
#: script has a few writing steps).
SUMMARY_ANSWERS = 8


@dataclass(frozen=True)
class SummaryItem(_Numbered, prefix="ui"):
    """Share one item of the summary shown, or withdraw it (by its place in SHARE_ITEMS)."""

    below = len(SHARE_ITEMS)


@dataclass(frozen=True)
class SummaryAnswer(_Numbered, prefix="uw"):
    """Share one typed answer of the summary shown, or withdraw it (by its place)."""

    below = SUMMARY_ANSWERS


@dataclass(frozen=True)
class SummaryEdit(_Numbered, prefix="ue"):
    """Edit one typed answer of the summary shown (by its place): the next text replaces it."""

    below = SUMMARY_ANSWERS


@dataclass(frozen=True)
class SummaryKeep(Press, prefix="uk"):
    """Leave the answer (or the comment) being edited as it is."""


@dataclass(frozen=True)
class SummaryComment(Press, prefix="uc"):
    """Write (or change) a comment on "Did this help?": the next text is the comment."""


@dataclass(frozen=True)
class SummaryShareAll(Press, prefix="ua"):
    """Share every item of the summary shown."""


@dataclass(frozen=True)
class SummaryDone(Press, prefix="ud"):
    """Done with the summaries."""


@dataclass(frozen=True)
class SummaryPicked(_Numbered, prefix="uo"):
    """One session of the ``/summary`` page shown, by its place on the page."""

    below = SUMMARY_PAGE


@dataclass(frozen=True)
class SummaryPage(_Numbered, prefix="up"):
    """Another page of ``/summary`` (0: the newest sessions)."""

    below = 10_000


@dataclass(frozen=True)
class HelpedRated(_Numbered, prefix="uh"):
    """The answer to "Did this help?" for the summary shown (by its place in HELPED)."""

    below = len(HELPED)


# -- the weekly outcome check-in ---------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeSkip(Press, prefix="oi"):
    """Skip this item of the weekly check-in (its 0–10 answers are :class:`Rating` buttons)."""


@dataclass(frozen=True)
class OutcomeNotThisWeek(Press, prefix="ow"):
    """"Not this week": skip the whole weekly check-in."""
