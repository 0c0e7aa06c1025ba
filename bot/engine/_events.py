"""Events: everything that can happen to a client, whatever the edge it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.engine._agreement import ContractChange


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events.

    Attributes:
        display_name: The client's first name as the edge knows it; used for greetings and
            never stored by the engine.
        language: The client's language code as Telegram reports it (``en``, ``de``), which
            suggests a region for crisis lines.
    """

    display_name: str | None = field(default=None, kw_only=True)
    language: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class Start(Event):
    """``/start``, optionally with an invite payload (``/start CODE``)."""

    payload: str | None = None


@dataclass(frozen=True, slots=True)
class Text(Event):
    """A free-text message (already known not to be a command)."""

    text: str


@dataclass(frozen=True, slots=True)
class Command(Event):
    """A slash command other than ``/start``, e.g. ``/stop`` or ``/skip``."""

    name: str
    args: str = ""


@dataclass(frozen=True, slots=True)
class Button(Event):
    """A button press carrying its callback data."""

    data: str


@dataclass(frozen=True, slots=True)
class NonText(Event):
    """A message the bot does not take as an answer: photo, sticker, voice, document, edit.

    Attributes:
        kind: What it is (``photo``, ``edit``, …).
        text: A photo's caption or an edited message's new text: never an answer, but
            scanned for crisis language like every free text.
    """

    kind: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class TimerFired(Event):
    """A timer the engine asked for earlier has come due."""

    kind: str
    due_iso: str


@dataclass(frozen=True, slots=True)
class Blocked(Event):
    """The client blocked the bot (or removed it): counts as a halt."""


@dataclass(frozen=True, slots=True)
class Clinician(Event):
    """An action the therapist takes for this client (checked against the admin list).

    Attributes:
        action: ``clear-hold`` (lift a crisis hold at the next fresh check-in),
            ``guardian-consent`` (a parent's or guardian's consent was recorded in person) or
            ``suggest-plan`` (wording for the client's safety plan, which they accept or not)
            or ``propose-contract`` (a change to the contract, which takes effect only once
            the client agrees) or ``outcomes-on`` / ``outcomes-off`` (the weekly outcome
            check-in).
        by: Who took it, for the ledger.
        parts: For ``suggest-plan``: the suggested parts, ``(part, text)``, checked by
            :func:`bot.engine.plan_from`.
        change: For ``propose-contract``: the change, checked by
            :func:`bot.engine.change_from`.
    """

    action: str
    by: str
    parts: tuple[tuple[str, str], ...] = ()
    change: ContractChange | None = None


@dataclass(frozen=True, slots=True)
class Redeemed(Event):
    """An invite was redeemed by the edge (which checks codes against the store).

    Attributes:
        script_id: The script the invite assigns.
        max_level: The contract's max level the invite sets, if any.
    """

    script_id: str
    max_level: int | None = None
