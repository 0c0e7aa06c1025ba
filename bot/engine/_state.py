"""Client state: everything the engine remembers about one client between events.

The state is plain data (pydantic models) so the store can keep it as JSON. What a client
typed is kept in it only as a script variable of the session under way, and only with their
opt-in; the connection log's note lives with the stored answers (retention, opt-out and
erasure cover it there) and is handed in by the service for each event, never stored here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from bot.engine._agreement import Agreed, Proposal
from bot.engine._buttons import Cue, Relief
from bot.engine._plan import SafetyPlan, Suggestion
from bot.engine._questions import Pending
from bot.engine._summary import Kept, Row
from bot.engine._terms import Contract, Model, Opt, Pace, Settings
from bot.engine._upgrade import VERSION, upgrade


class Part(StrEnum):
    """The part of a step that awaits the client's answer.

    Every step kind that waits has parts of its own (a ``say`` has one, a prompt two); the
    check-in's parts also close every role-play, and a session cap's closing rating can come
    at any step.
    """

    SAY = "say"
    ASK = "ask"
    #: A check-in's rating, then what it asks for its moment: before, how hard the client
    #: expects it to be; after, how hard it was and whether relief followed; then body cues.
    RATING = "rating"
    EXPECTED = "expected"
    ACTUAL = "actual"
    RELIEF = "relief"
    CUES = "cues"
    #: De-escalation: a page of a calming exercise, then the re-rating after it.
    CALM = "calm"
    RECHECK = "recheck"
    PROMPT = "prompt"
    SKIP_REASON = "skip_reason"
    #: The client's pace was reached: "one more, or enough for today?" before the next prompt.
    ENOUGH = "enough"
    #: Before a partner scene: "do you feel safe with your partner?".
    SCREEN = "screen"
    #: A role-play scene's frame, waiting for "Start" (at a gentle pace).
    READY = "ready"
    TURN = "turn"
    PAGE = "page"
    CONNECTION = "connection"


class Frame(Model):
    """Where the client is inside the current step.

    Attributes:
        step: The step id.
        part: The part of the step awaiting the client's answer (None while the step is
            entered: every step that waits sets its part).
        calm_round: De-escalation rounds run since the last low rating.
        calm_exercise: The de-escalation exercise running, if any.
        page: The exercise page shown.
        turn: The role-play turn shown.
        turns_since_checkin: Role-play turns answered since the last check-in.
        cues: Body cues ticked so far.
        prompt: The prompt shown by a prompt step.
        smaller: Whether the smaller alternative is showing.
        closing: The step is being closed because a cap was reached.
        under: De-escalation for under-arousal is under way (grounding in every round).
    """

    step: str
    part: Part | None = None
    calm_round: int = 0
    calm_exercise: str | None = None
    page: int = 0
    turn: int = 0
    turns_since_checkin: int = 0
    cues: list[Cue] = Field(default_factory=list)
    prompt: str | None = None
    smaller: bool = False
    closing: bool = False
    #: The de-escalation under way is for under-arousal (a ticked cue, or typed words):
    #: grounding, not breathing, in every round.
    under: bool = False

    @property
    def calming(self) -> bool:
        """Whether a calming exercise, or the re-rating after it, is under way."""
        return self.part in (Part.CALM, Part.RECHECK)


class Session(Model):
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
    relief: Relief | None = None
    paused: bool = False
    #: Prompts answered (shared, or in words) since the client was last asked anything, for
    #: their pace; and whether they said that was enough for today (no more prompts).
    prompts_in_a_row: int = 0
    enough: bool = False
    calmed: bool = False  # de-escalation ran: the session does not count towards a level up
    #: The client shared something in this session (a prompt, a line of a scene): only then
    #: is relief after sharing asked about. None: a session stored before this was kept.
    shared: bool | None = None
    #: A rating at or above the distress threshold was given in this session: no level up is
    #: offered at its end, whatever came after.
    high_distress: bool = False
    #: A crisis hold was on at some point of this session: no level up is offered at its end.
    held: bool = False


class Progress(Model):
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
    #: Level -> completions at that level when the client last said "Not yet" to a level up:
    #: the next offer waits for the contract's count of completions after it.
    level_declined_at: dict[str, int] = Field(default_factory=dict)


class ClientState(Model):
    """Everything the engine keeps about one client."""

    client_id: str
    consents: dict[str, int] = Field(
        default_factory=dict, description="Opt-in name -> consent text version agreed to."
    )
    consent_declined: bool = False
    adult: bool | None = None
    guardian_consent: bool = False
    #: The form of the stored state (:mod:`bot.engine._upgrade` brings older ones up to it).
    state_version: int = VERSION
    pending: Pending | None = Field(
        default=None, description="A question outside the script awaiting an answer."
    )
    halted: bool = False
    level: int = 1
    contract: Contract = Field(default_factory=Contract)
    #: A change to the contract the therapist proposed, waiting for the client's answer, and
    #: how many proposals there have been (the number of the newest).
    proposal: Proposal | None = None
    proposals: int = 0
    #: Every proposal and what became of it, from the ledger: handed in by the service for
    #: each event of a client who had one, never stored with the state.
    contract_history: list[Agreed] = Field(default_factory=list, exclude=True)
    settings: Settings = Field(default_factory=Settings)
    progress: Progress = Field(default_factory=Progress)
    session: Session | None = None
    #: When the crisis hold began (the latest risk signal, /sos mid-exercise or "not safe").
    crisis_hold_since: datetime | None = None
    crisis_hold_cleared_by_therapist: bool = False
    #: The kinds of risk of the latest signal (empty: /sos, every kind's lines).
    crisis_kinds: list[str] = Field(default_factory=list)
    #: The client answered "not safe" or "not sure" during this hold: only support, no
    #: exercise, until the hold's time has passed (or the therapist clears it).
    not_safe: bool = False
    #: When the latest alert went to the therapist (the rate limit's window starts there),
    #: and whether the answer to its safety question is still owed to them as a follow-up.
    alert_sent_at: datetime | None = None
    alert_follow_up: bool = False
    #: The therapist switched the weekly outcome check-in on, and when it was last asked
    #: (None: not since it was switched on).
    outcomes: bool = False
    outcomes_asked_at: datetime | None = None
    #: A session closed because distress stayed high: the menu waits for ``/start``.
    resting: bool = False
    last_active: datetime | None = None
    #: The client's safety plan (the newest version they accepted, from the store) and a
    #: therapist's suggestion they have not reviewed yet: handed in by the service for each
    #: event, never stored with the state (the store keeps every version).
    safety_plan: SafetyPlan | None = Field(default=None, exclude=True)
    plan_suggestion: Suggestion | None = Field(default=None, exclude=True)
    #: The client's ledger rows its session summaries are read from (``SESSION_KINDS``):
    #: handed in by the service for each event, never stored with the state (the ledger
    #: keeps them, and a state that held them would be new after every session).
    history: list[Row] = Field(default_factory=list, exclude=True)
    #: The client's stored typed answers and their edits, oldest first, for the summaries:
    #: handed in by the service only while the client holds the free-text opt-in, never
    #: stored with the state.
    kept: list[Kept] = Field(default_factory=list, exclude=True)
    #: The version of the newest suggestion the client has been through (used or not).
    plan_reviewed: int = 0
    session_days: dict[str, int] = Field(default_factory=dict)
    reminders_unanswered: int = 0
    keyboard: int = 0
    offered: list[str] = Field(default_factory=list)
    silence_armed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _upgraded(cls, data: Any) -> Any:
        """A state stored by an earlier release, brought up to this one's form."""
        return upgrade(data) if isinstance(data, dict) else data

    @property
    def pace(self) -> Pace:
        """The client's pace: their own choice in ``/settings``, else their contract's."""
        return self.settings.pace or self.contract.pace

    def has(self, opt: Opt, version: int) -> bool:
        """Whether the client gave this opt-in for the current consent version."""
        return self.consents.get(opt.value) == version
