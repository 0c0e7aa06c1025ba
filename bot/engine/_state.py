"""Client state: everything the engine remembers about one client between events.

The state is plain data (pydantic models) so the store can keep it as JSON. What a client
typed is kept in it only as a script variable of the session under way, and only with their
opt-in; the connection log's note lives with the stored answers (retention, opt-out and
erasure cover it there) and is handed in by the service for each event, never stored here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

#: The disclosure levels a contract can allow: 1 light … 5 core (as in the script language).
LEVELS = range(1, 6)


class _Model(BaseModel):
    # Unknown keys are ignored so that a state stored by an older or newer release still
    # loads (a field removed in an upgrade must not reset a client's consent or progress).
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class Opt(StrEnum):
    """The separate, versioned opt-ins a client can give."""

    CORE = "core"
    STORE_FREE_TEXT = "store_free_text"
    SHARE_WITH_THERAPIST = "share_with_therapist"
    REMINDERS = "reminders"


class AdvanceRule(_Model):
    """When the engine may *propose* a step up a level (it never moves without a yes)."""

    completed_at_level: int = Field(default=3, ge=1, le=50)
    max_after_distress: int = Field(default=4, ge=0, le=10)
    require_actual_not_harder_than_expected: bool = True


class Contract(_Model):
    """The per-client agreement: limits the engine never crosses."""

    max_level: int = Field(default=3, ge=LEVELS[0], le=LEVELS[-1])
    off_limit_topics: list[str] = Field(default_factory=list)
    pace: str = "gentle"
    distress_threshold: int = Field(default=7, ge=1, le=10)
    session_minutes: int = Field(default=15, ge=1, le=240)
    roleplay_turns: int = Field(default=8, ge=1, le=50)
    sessions_per_day: int = Field(default=3, ge=1, le=50)
    advance: AdvanceRule = Field(default_factory=AdvanceRule)
    scripts: list[str] = Field(default_factory=list)


class ReminderTime(_Model):
    """A weekly reminder: weekdays (0 = Monday) at a local ``HH:MM``."""

    days: list[int] = Field(default_factory=lambda: list(range(7)))
    time: str = "19:00"


class Settings(_Model):
    """What the client chose in ``/settings``."""

    timezone: str | None = None
    reminders: list[ReminderTime] = Field(default_factory=list)
    pace: str | None = None
    #: The region whose crisis lines the client sees (None: the practice's region).
    region: str | None = None
    #: The region the client's Telegram language suggests, offered first in ``/settings``.
    suggested_region: str | None = None


class Frame(_Model):
    """Where the client is inside the current step.

    Attributes:
        step: The step id.
        sub: The part of the step awaiting input (``rating``, ``expected``, ``turn``, …).
        calm_round: De-escalation rounds run since the last low rating.
        calm_exercise: The de-escalation exercise running, if any.
        page: The exercise page shown.
        turn: The role-play turn shown.
        turns_since_checkin: Role-play turns answered since the last check-in.
        cues: Body cues ticked so far.
        prompt: The prompt shown by a prompt step.
        smaller: Whether the smaller alternative is showing.
        closing: The step is being closed because a cap was reached.
    """

    step: str
    sub: str = ""
    calm_round: int = 0
    calm_exercise: str | None = None
    page: int = 0
    turn: int = 0
    turns_since_checkin: int = 0
    cues: list[str] = Field(default_factory=list)
    prompt: str | None = None
    smaller: bool = False
    closing: bool = False


class Session(_Model):
    """One run of a script, from start to end, pause or stop."""

    script: str
    script_version: int
    started_at: datetime
    frame: Frame
    vars: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    level: int = 1
    distress_before: int | None = None
    distress: int | None = None
    expected: int | None = None
    actual: int | None = None
    relief: str | None = None
    paused: bool = False
    calmed: bool = False  # de-escalation ran: the session does not count towards a level up
    #: A rating at or above the distress threshold was given in this session: no level up is
    #: offered at its end, whatever came after.
    high_distress: bool = False


class Progress(_Model):
    """Small steps worth celebrating; never failure counts."""

    exercises_done: int = 0
    completed_at_level: dict[str, int] = Field(default_factory=dict)
    smaller_steps: int = 0
    prompts_shared: int = 0
    connections: int = 0
    last_connection: str | None = Field(
        default=None, exclude=True,
        description="The newest connection-log note, from the stored answers; never stored "
                    "with the state.")
    used_prompts: list[str] = Field(default_factory=list)


class ClientState(_Model):
    """Everything the engine keeps about one client."""

    client_id: str
    consents: dict[str, int] = Field(
        default_factory=dict, description="Opt-in name -> consent text version agreed to."
    )
    consent_declined: bool = False
    adult: bool | None = None
    guardian_consent: bool = False
    pending: str | None = Field(
        default=None, description="A question outside the script awaiting an answer."
    )
    halted: bool = False
    level: int = 1
    contract: Contract = Field(default_factory=Contract)
    settings: Settings = Field(default_factory=Settings)
    progress: Progress = Field(default_factory=Progress)
    session: Session | None = None
    crisis_hold_since: datetime | None = None
    crisis_hold_cleared_by_therapist: bool = False
    last_active: datetime | None = None
    session_days: dict[str, int] = Field(default_factory=dict)
    reminders_unanswered: int = 0
    keyboard: int = 0
    offered: list[str] = Field(default_factory=list)
    silence_armed: bool = False

    def has(self, opt: Opt, version: int) -> bool:
        """Whether the client gave this opt-in for the current consent version."""
        return self.consents.get(opt.value) == version
