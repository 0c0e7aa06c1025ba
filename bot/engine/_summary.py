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
of its ``session_started`` row); ``ITEM`` is one of :data:`SHARE_ITEMS`, or ``answer:N``
for the client's N-th typed answer of that session, from 0 (:func:`answer_item`). Rows
apply in ledger order; rows naming no session of the ledger, or malformed ones, change
nothing, and unknown items are ignored (a newer flow may share more than this release shows).

Typed answers are never in the ledger: they are the stored answers (kept only with the
free-text opt-in) whose time falls within the session, in the order typed. An edit is a
stored answer of kind :data:`EDIT` whose step is :func:`edit_key` (the session and place):
the newest edit is the answer's shown version, the original stays as it was, and the ledger
row ``answer_edited`` ``{"session": ID, "item": ITEM}`` records the fact, never the words.
A comment on "Did this help?" is a stored answer of kind :data:`COMMENT` whose step is ``ID``
(the newest one counts); its ledger row is ``session_commented`` ``{"session": ID}``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
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
#: ``helped`` the client's answer to "Did this help?"; ``comment`` their comment on it, in
#: words (a stored answer of kind :data:`COMMENT`, kept only with the free-text opt-in).
SHARE_ITEMS = ("exercise", "ratings", "difficulty", "relief", "pacing", "connections",
               "helped", "comment")
SHARED = "summary_shared"
WITHDRAWN = "summary_withdrawn"
RATED = "session_rated"
#: The answers to "Did this help?", in the order of their buttons.
HELPED = ("yes", "a-little", "not-really")
#: A typed answer's share item: this prefix and its place among the session's answers.
ANSWER = "answer:"
#: The stored answer kind of an edit of a typed answer (its step: :func:`edit_key`).
EDIT = "edit"
#: The ledger row of an edit (the fact, never the text).
EDITED = "answer_edited"
#: The stored answer kind of a comment on "Did this help?" (its step: the session's id).
COMMENT = "comment"
#: The ledger row of a comment written or changed (the fact, never the text).
COMMENTED = "session_commented"
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


class Kept(Model):
    """A stored free-text answer (or an edit of one), handed to the engine with the state."""

    step: str
    text: str
    at: datetime
    kind: str = "answer"


@dataclass(frozen=True, slots=True)
class Typed:
    """One typed answer of a session, as the client sees it now.

    Attributes:
        place: Its place among the session's typed answers (0: the first typed).
        text: Its shown version: the client's newest edit, else what they typed.
        edited: Whether the client edited it.
    """

    place: int
    text: str
    edited: bool = False

    @property
    def item(self) -> str:
        """Its share item."""
        return answer_item(self.place)


def answer_item(place: int) -> str:
    """The share item of the session's typed answer at `place`."""
    return f"{ANSWER}{place}"


def edit_key(session: datetime, place: int) -> str:
    """The stored step of an edit: which session's answer it replaces."""
    return f"{session.isoformat()}/{place}"


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
        comment: The client's comment on "Did this help?", if they wrote one (and keep it).
        answers: The client's typed answers, in the order typed (only those they kept).
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
    comment: str | None = None
    answers: list[Typed] = field(default_factory=list)
    items: set[str] = field(default_factory=set)
    shared_at: datetime | None = None

    def shares(self, item: str) -> bool:
        """Whether the client shares this item of the session."""
        return item in self.items

    def holds(self) -> tuple[str, ...]:
        """The items this session has something to show for, in :data:`SHARE_ITEMS` order,
        then its typed answers."""
        has = {"exercise": True, "ratings": bool(self.ratings),
               "difficulty": self.expected is not None or self.actual is not None,
               "relief": self.relief is not None,
               "pacing": bool(self.smaller_steps or self.skips),
               "connections": bool(self.connections), "helped": self.helped is not None,
               "comment": self.comment is not None}
        return (*(item for item in SHARE_ITEMS if has[item]),
                *(typed.item for typed in self.answers))


def sessions(ledger: Iterable[LedgerLike], kept: Sequence[Kept] = ()) -> list[Summary]:
    """Every session of the ledger, oldest first, with the share rows applied and the typed
    answers of `kept` (stored answers and edits, oldest first) in their sessions."""
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
    ordered = list(found.values())
    _add_answers(ordered, kept)
    return ordered


def _add_answers(ordered: list[Summary], kept: Sequence[Kept]) -> None:
    """Put each typed answer in the session it was typed in, with its newest edit, and each
    comment in its session; shares of answers no longer kept (deleted, or past their
    retention) drop out."""
    if kept:
        starts = [s.id for s in ordered]
        by_key: dict[str, list[Typed]] = {}
        by_id = {s.id.isoformat(): s for s in ordered}
        for answer in kept:
            if answer.kind == "answer":
                place = bisect_right(starts, answer.at) - 1
                session = ordered[place] if place >= 0 else None
                if session is not None and (session.ended_at is None
                                            or answer.at <= session.ended_at):
                    typed = by_key.setdefault(session.id.isoformat(), [])
                    typed.append(Typed(len(typed), answer.text))
            elif answer.kind == EDIT:
                ident, _, number = answer.step.partition("/")
                typed = by_key.get(ident, [])
                if number.isdigit() and int(number) < len(typed):
                    typed[int(number)] = Typed(int(number), answer.text, edited=True)
            elif answer.kind == COMMENT and answer.step in by_id:
                by_id[answer.step].comment = answer.text
        for session in ordered:
            session.answers = by_key.get(session.id.isoformat(), [])
    for session in ordered:
        held = {typed.item for typed in session.answers}
        session.items = {i for i in session.items if not i.startswith(ANSWER) or i in held}


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
    chosen = {item for item in items
              if item in SHARE_ITEMS or (isinstance(item, str) and item.startswith(ANSWER))}
    if row.kind == SHARED:
        session.items |= chosen
        if chosen:
            session.shared_at = row.at
    else:
        session.items -= chosen


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
