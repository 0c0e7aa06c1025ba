"""What a session's summary holds, read from the client's ledger rows (pure).

One place reads sessions out of the ledger: the client's summary (``/summary`` and the end of
a session) and the therapist's report (:mod:`bot.report`) both use :func:`sessions`.

The client's choices are ledger rows, never edits of older rows:

* ``summary_shared`` ``{"session": ID, "items": [ITEM, …]}`` — these items of the session
  reach the therapist;
* ``summary_withdrawn`` ``{"session": ID, "items": [ITEM, …]}`` — these no longer do;
* ``session_rated`` ``{"session": ID, "script": SCRIPT, "helped": HELPED}`` — the client's
  answer to "Did this help?" (one of :data:`HELPED`; a later answer replaces an earlier one).

``ID`` is the session's start time in ISO 8601 (``Session.started_at``, equal to the ``at``
of its ``session_started`` row); ``ITEM`` is one of :data:`SHARE_ITEMS`. Rows apply in ledger
order; rows naming no session of the ledger, or malformed ones, change nothing, and unknown
items are ignored (a newer flow may share more than this release shows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import Field

from bot.engine._terms import Model

#: What one session can show, each shared (and withdrawn) on its own:
#: ``exercise`` which exercise, when, at which level, finished or not; ``ratings`` the
#: distress check-ins (0–10); ``difficulty`` expected vs actual difficulty; ``relief`` the
#: relief that followed; ``pacing`` smaller steps and skips, as the client's choices;
#: ``connections`` how many moments of connection were noted (never the note's words);
#: ``helped`` the client's answer to "Did this help?".
SHARE_ITEMS = ("exercise", "ratings", "difficulty", "relief", "pacing", "connections",
               "helped")
SHARED = "summary_shared"
WITHDRAWN = "summary_withdrawn"
RATED = "session_rated"
#: The answers to "Did this help?", in the order of their buttons.
HELPED = ("yes", "a-little", "not-really")
#: The ledger rows a session is read from (the rest of a ledger plays no part in it).
SESSION_KINDS = frozenset({"session_started", "session_ended", "checkin", "relief", "pacing",
                           "connection_noted", SHARED, WITHDRAWN, RATED})


class LedgerLike(Protocol):
    """A ledger row as the store reads it back, or as an outcome is about to write it."""

    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> dict[str, object]: ...
    @property
    def at(self) -> datetime: ...


class Row(Model):
    """One ledger row of :data:`SESSION_KINDS`, handed to the engine with the state."""

    kind: str
    data: dict[str, object] = Field(default_factory=dict)
    at: datetime


@dataclass(slots=True)
class Summary:
    """One session as its ledger rows tell it (nothing typed is ever in them).

    Attributes:
        id: Its start time (the session id of the share rows).
        script: The script's id.
        ended_at: When it ended (None while it runs).
        completed: Whether it ran to its end.
        level: The level it ran at.
        distress_before: The first rating.
        distress_after: The last rating.
        ratings: Every distress rating, in order.
        expected: How hard the client expected it to be (0–10).
        actual: How hard it was (0–10).
        relief: ``yes``, ``a-little`` or ``no``.
        smaller_steps: Smaller steps the client chose.
        skips: Steps the client chose to skip.
        connections: Moments of connection noted.
        helped: The answer to "Did this help?" (one of :data:`HELPED`), if given.
        items: What the client shares of it now.
        shared_at: When the client last shared something of it.
    """

    id: datetime
    script: str
    ended_at: datetime | None = None
    completed: bool = False
    level: int | None = None
    distress_before: int | None = None
    distress_after: int | None = None
    ratings: list[int] = field(default_factory=list)
    expected: int | None = None
    actual: int | None = None
    relief: str | None = None
    smaller_steps: int = 0
    skips: int = 0
    connections: int = 0
    helped: str | None = None
    items: set[str] = field(default_factory=set)
    shared_at: datetime | None = None

    def shares(self, item: str) -> bool:
        """Whether the client shares this item of the session."""
        return item in self.items

    def holds(self) -> tuple[str, ...]:
        """The items this session has something to show for, in :data:`SHARE_ITEMS` order."""
        has = {"exercise": True, "ratings": bool(self.ratings),
               "difficulty": self.expected is not None or self.actual is not None,
               "relief": self.relief is not None,
               "pacing": bool(self.smaller_steps or self.skips),
               "connections": bool(self.connections), "helped": self.helped is not None}
        return tuple(item for item in SHARE_ITEMS if has[item])


def sessions(ledger: Iterable[LedgerLike]) -> list[Summary]:
    """Every session of the ledger, oldest first, with the share rows applied."""
    found: dict[datetime, Summary] = {}
    current: Summary | None = None
    for row in ledger:
        data, kind = row.data, row.kind
        if kind == "session_started":
            current = Summary(id=row.at, script=str(data.get("script", "")))
            found.setdefault(row.at, current)
        elif kind in (SHARED, WITHDRAWN, RATED):
            _apply_choice(found, row)
        elif current is not None and _session_row(current, kind, data):
            current.ended_at = row.at
            current = None
    return list(found.values())


def _session_row(session: Summary, kind: str, data: dict[str, object]) -> bool:
    """Add one row to the running session; True when it is the row that ends it."""
    if kind == "checkin":
        rating = _int(data.get("distress"))
        if rating is not None:
            session.ratings.append(rating)
    elif kind == "relief":
        session.relief = str(data.get("relief"))
    elif kind == "pacing":
        choice = data.get("choice")
        session.smaller_steps += choice == "smaller"
        session.skips += choice == "skip"
    elif kind == "connection_noted":
        session.connections += 1
    elif kind == "session_ended":
        session.completed = data.get("completed") is True
        session.level = _int(data.get("level"))
        session.distress_before = _int(data.get("distress_before"))
        session.distress_after = _int(data.get("distress_after"))
        session.expected = _int(data.get("expected"))
        session.actual = _int(data.get("actual"))
        return True
    return False


def _apply_choice(found: dict[datetime, Summary], row: LedgerLike) -> None:
    """A share, withdrawal or rating of an ended session (by its id), if well formed."""
    ident = row.data.get("session")
    if not isinstance(ident, str):
        return
    try:
        started = datetime.fromisoformat(ident)
    except ValueError:
        return
    session = found.get(started) if started.tzinfo is not None else None
    if session is None:
        return
    if row.kind == RATED:
        helped = row.data.get("helped")
        if helped in HELPED:
            session.helped = str(helped)
        return
    items = row.data.get("items")
    if not isinstance(items, list):
        return
    chosen = {item for item in items if item in SHARE_ITEMS}
    if row.kind == SHARED:
        session.items |= chosen
        if chosen:
            session.shared_at = row.at
    else:
        session.items -= chosen


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
