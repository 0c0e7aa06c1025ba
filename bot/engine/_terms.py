"""The client's terms: the contract their therapist set, the opt-ins they gave, their settings.

Plain data (pydantic models) kept in the client's state (:mod:`bot.engine._state`); unknown
keys are ignored, so that a state stored by an older or newer release still loads (a field
removed in an upgrade must not reset a client's consent or progress).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: The disclosure levels a contract can allow: 1 light … 5 core (as in the script language).
LEVELS = range(1, 6)
#: The longest free text a step (or an edit of a typed answer) takes, unless the step says
#: otherwise.
MAX_TEXT = 4000

# The bounds of a contract's terms: the configuration's defaults (``contract_defaults``) are
# checked against the same ones.
Level = Annotated[int, Field(ge=LEVELS[0], le=LEVELS[-1])]
#: A 0–10 rating at or above which distress counts as high.
Threshold = Annotated[int, Field(ge=1, le=10)]
SessionMinutes = Annotated[int, Field(ge=2, le=60)]
RoleplayTurns = Annotated[int, Field(ge=1, le=30)]
CheckinEvery = Annotated[int, Field(ge=1, le=10)]
SessionsPerDay = Annotated[int, Field(ge=1, le=10)]
CompletedAtLevel = Annotated[int, Field(ge=1, le=50)]
MaxAfterDistress = Annotated[int, Field(ge=0, le=10)]


class Model(BaseModel):
    """Base of the stored models: unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class Opt(StrEnum):
    """The separate, versioned opt-ins a client can give."""

    CORE = "core"
    STORE_FREE_TEXT = "store_free_text"
    SHARE_WITH_THERAPIST = "share_with_therapist"
    REMINDERS = "reminders"
    #: A short note to the therapist after a risk signal or "not safe" (never the words).
    ALERT_THERAPIST = "alert_therapist"


class Pace(StrEnum):
    """How much a session offers at once (the client chooses in ``/settings``).

    ``gentle``: one small step at a time. A role-play scene waits for "Start" after its
    frame, and after two prompts in a row the client is asked "one more, or enough for
    today?". ``steady``: a little more in each session. Scenes start at once, and the question
    comes after four prompts in a row. A question of the script's own (an ``ask`` step)
    between prompts counts as asking.
    """

    GENTLE = "gentle"
    STEADY = "steady"

    @property
    def prompts_in_a_row(self) -> int:
        """Prompts in a row at this pace before asking "one more, or enough for today?"."""
        return 2 if self is Pace.GENTLE else 4

    @property
    def waits_before_scenes(self) -> bool:
        """Whether a role-play scene waits for "Start" after its frame."""
        return self is Pace.GENTLE


class AdvanceRule(Model):
    """When the engine may *propose* a step up a level (it never moves without a yes)."""

    completed_at_level: CompletedAtLevel = 3
    max_after_distress: MaxAfterDistress = 4
    require_actual_not_harder_than_expected: bool = True


class Contract(Model):
    """The per-client agreement: limits the engine never crosses."""

    max_level: Level = 3
    off_limit_topics: list[str] = Field(default_factory=list)
    pace: Pace = Pace.GENTLE
    distress_threshold: Threshold = 7
    session_minutes: SessionMinutes = 15
    roleplay_turns: RoleplayTurns = 8
    #: A check-in at least every this many role-play turns (a scene may ask more often).
    checkin_every_turns: CheckinEvery = 2
    sessions_per_day: SessionsPerDay = 3
    advance: AdvanceRule = Field(default_factory=AdvanceRule)
    scripts: list[str] = Field(default_factory=list)


class ReminderTime(Model):
    """A weekly reminder: weekdays (0 = Monday) at a local ``HH:MM``."""

    days: list[int] = Field(default_factory=lambda: list(range(7)))
    time: str = "19:00"


class Settings(Model):
    """What the client chose in ``/settings``."""

    timezone: str | None = None
    reminders: list[ReminderTime] = Field(default_factory=list)
    pace: Pace | None = None
    #: The region whose crisis lines the client sees (None: the practice's region).
    region: str | None = None
    #: The region the client's Telegram language suggests, offered first in ``/settings``.
    suggested_region: str | None = None
