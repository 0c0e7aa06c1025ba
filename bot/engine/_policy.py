"""Policy: the practice-wide settings the engine follows, handed in by the edges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from bot.engine._state import Contract


@dataclass(frozen=True)
class CrisisResource:
    """A crisis line or service for the configured region."""

    name: str
    contact: str
    note: str = ""


@dataclass(frozen=True)
class Policy:
    """Settings from the practice's configuration that shape the engine's decisions.

    Attributes:
        consent_version: Version of the consent texts; a change asks every client again.
        retention_days: How long ledger rows are kept (told to clients in consent texts).
        answers_days: How long stored free-text answers are kept (told to clients, too).
        therapist_delay: When the therapist reads shared summaries, in plain words.
        allow_minors: Whether clients under 18 may use the bot (with guardian consent).
        resources: Crisis resources for the region, shown first after any safety plan.
        emergency: The region's emergency number.
        silence_followup: Delay before the one follow-up after a high rating and silence.
        crisis_hold_needs_therapist: Whether only the therapist can lift a crisis hold.
        contract: The default contract of a new client.
        quiet_start: Start of quiet hours (local ``HH:MM``): no reminders from then.
        quiet_end: End of quiet hours (local ``HH:MM``).
        reminders_max_unanswered: Reminders stop after this many go unanswered.
        default_timezone: Used for reminders until the client chooses a time zone.
        long_pause: A pause longer than this restarts one level lower.
        long_absence: Time away after which a session restarts one level lower.
        late_reminder: A reminder later than this is skipped, not sent late.
        safety_plans: Personal crisis safety plans by client id, written with the therapist
            (warning signs, coping steps, people and places, professionals, safe surroundings).
    """

    consent_version: int = 1
    retention_days: int = 730
    answers_days: int = 90
    therapist_delay: str = "before your next session"
    allow_minors: bool = False
    resources: tuple[CrisisResource, ...] = (
        CrisisResource("988 Suicide & Crisis Lifeline", "Call or text 988", "24/7, free"),
    )
    emergency: str = "911"
    silence_followup: timedelta = timedelta(minutes=10)
    crisis_hold_needs_therapist: bool = False
    contract: Contract = field(default_factory=Contract)
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    reminders_max_unanswered: int = 2
    default_timezone: str = "UTC"
    long_pause: timedelta = timedelta(days=1)
    long_absence: timedelta = timedelta(days=14)
    late_reminder: timedelta = timedelta(hours=1)
    safety_plans: Mapping[str, Mapping[str, list[str]]] = field(default_factory=dict)
