"""Outcome: what the engine decided, for the edges to carry out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.engine._plan import PlanChange
    from bot.engine._state import ClientState


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One inline button: a label and its compact callback data (≤ 64 bytes)."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class Message:
    """A message to the client.

    Attributes:
        text: Telegram-HTML text (variables already escaped).
        buttons: Rows of buttons; empty for none.
        replace_keyboard: Edit the previous keyboard message instead of sending a new one
            (used when ticking body cues).
        urgent: Part of a crisis response: never held back by per-chat pacing (only by
            Telegram's overall limit), so all of it arrives at once.
    """

    text: str
    buttons: tuple[tuple[ButtonSpec, ...], ...] = ()
    replace_keyboard: bool = False
    urgent: bool = False

    def to_payload(self) -> dict[str, object]:
        """The JSON form stored in the outbox."""
        return {
            "text": self.text,
            "buttons": [[[b.label, b.data] for b in row] for row in self.buttons],
            "replace_keyboard": self.replace_keyboard,
            "urgent": self.urgent,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One append-only ledger row: consent, pacing, check-in or safety event."""

    kind: str
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A free-text answer the client opted in to storing.

    `kind` is ``"answer"`` (to a step) or ``"connection"`` (a note in the connection log).
    """

    step: str
    text: str
    kind: str = "answer"


@dataclass(frozen=True, slots=True)
class TimerRequest:
    """Ask the edge to fire :class:`~bot.engine.TimerFired` at ``due`` (UTC)."""

    kind: str
    due: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """A note for the client's therapist after a risk signal (only with the client's opt-in).

    The edge queues it in the outbox, addressed to the client's own therapist (or the
    practice's admins), as part of the event's commit.

    Attributes:
        text: Telegram-HTML text: which client, when, the kind of risk, the answer to the
            safety question; never anything the client wrote.
    """

    text: str


class Effect(StrEnum):
    """Actions only an edge can do, asked for by the engine."""

    EXPORT = "export"  # send the client their data (/mydata)
    ERASE = "erase"  # delete all of the client's data, then confirm (/delete)
    CANCEL_OUTBOX = "cancel_outbox"  # drop messages not yet sent (halt, block)
    DROP_ANSWERS = "drop_answers"  # delete every stored answer (keep-what-I-type switched off)


@dataclass(slots=True)
class Outcome:
    """The result of handling one event.

    Attributes:
        state: The client's new state.
        messages: Messages to send, in order.
        ledger: Ledger rows to append.
        answers: Free-text answers to store (only ever with the client's opt-in).
        timers_set: Timers to (re)schedule, one per kind.
        timers_cancel: Timer kinds to cancel; ``"*"`` cancels all.
        effects: Edge actions.
        plans: Versions of the client's safety plan to save (the client's, or a therapist's
            suggestion).
        alerts: Notes for the client's therapist (see :class:`Alert`).
    """

    state: ClientState
    messages: list[Message] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    timers_set: list[TimerRequest] = field(default_factory=list)
    timers_cancel: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    plans: list[PlanChange] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
