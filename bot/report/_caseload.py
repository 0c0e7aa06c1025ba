"""The caseload overview: one line per client, with what is new since the therapist looked.

Status and level are the agreement and always show. The last session and the sessions
this week count shared sessions only (and show as not shared without the opt-in). A flag
marks a crisis hold that began, or a shared session with a rating at or above the client's
threshold that was shared, since the therapist last read the client's report. Beneath the
lines, each exercise's "Did this help?" answers across the clients who share them, so that
scripts can be refined.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.engine import HELPED, RATED, ClientState
from bot.report._shares import SHARED, WITHDRAWN, shared_sessions, sharing
from bot.report._status import client_status, client_zone
from bot.store import CaseloadEntry, LedgerRow

CRISIS_FLAG = "crisis hold"
RATING_FLAG = "high rating"
#: The ledger rows an overview line reads: a read of these alone gives the same line.
CASELOAD_KINDS = frozenset({"session_started", "session_ended", "checkin", SHARED, WITHDRAWN,
                            RATED})
_HELPED_WORDS = {"yes": "helped", "a-little": "a little", "not-really": "not really"}


@dataclass(frozen=True, slots=True)
class CaseloadLine:
    """One client in the overview.

    Attributes:
        client_id: The client.
        therapist: Their therapist, if any.
        status: active, paused, halted, crisis hold or not consented.
        last_session: The date of the latest shared session (None: none shared).
        this_week: Shared sessions this week, Monday to now (None: not sharing).
        level: Their current level.
        max_level: Their contract's max level.
        flags: What is new since the therapist last looked (``crisis hold``, ``high rating``).
        helped: ``(script, answer)`` for each shared answer to "Did this help?".
    """

    client_id: str
    therapist: str | None
    status: str
    last_session: str | None
    this_week: int | None
    level: int
    max_level: int
    flags: tuple[str, ...]
    helped: tuple[tuple[str, str], ...] = ()


def caseload_line(
    state: ClientState,
    ledger: Sequence[LedgerRow],
    *,
    now: datetime,
    default_zone: str,
    therapist: CaseloadEntry | None = None,
) -> CaseloadLine:
    """One client's line of the overview (``now`` decides which week is this week)."""
    zone = client_zone(state, default_zone)
    shared = shared_sessions(state, ledger)
    sessions = [s for s in shared if s.shares("exercise")]
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    looked = therapist.looked_at if therapist else None
    flags = []
    hold = state.crisis_hold_since
    if hold is not None and (looked is None or hold > looked):
        flags.append(CRISIS_FLAG)
    threshold = state.contract.distress_threshold
    if any(s.shares("ratings") and s.shared_at is not None
           and (looked is None or s.shared_at > looked)
           and any(r >= threshold for r in s.ratings)
           for s in shared):
        flags.append(RATING_FLAG)
    return CaseloadLine(
        client_id=state.client_id,
        therapist=therapist.therapist if therapist else None,
        status=client_status(state),
        last_session=sessions[-1].id.astimezone(zone).date().isoformat() if sessions else None,
        this_week=(sum(1 for s in sessions if s.id.astimezone(zone).date() >= monday)
                   if sharing(state) else None),
        level=state.level,
        max_level=state.contract.max_level,
        flags=tuple(flags),
        helped=tuple((s.script, s.helped) for s in shared
                     if s.shares("helped") and s.helped is not None),
    )


def script_ratings(lines: Sequence[CaseloadLine]) -> list[str]:
    """Each exercise's shared "Did this help?" answers across the clients, one line each
    (``first-steps: helped 3 · a little 1 · not really 0 (2 clients)``), by script id."""
    answers: dict[str, Counter[str]] = {}
    clients: Counter[str] = Counter()
    for line in lines:
        for script in {script for script, _ in line.helped}:
            clients[script] += 1
        for script, helped in line.helped:
            answers.setdefault(script, Counter())[helped] += 1
    return [f"{script}: " + " · ".join(f"{_HELPED_WORDS[h]} {answers[script][h]}"
                                        for h in HELPED)
            + f" ({clients[script]} client{'s' if clients[script] != 1 else ''})"
            for script in sorted(answers)]


def caseload_messages(lines: Sequence[CaseloadLine], limit: int = 4000) -> list[str]:
    """The overview as Telegram HTML messages of at most `limit` characters each: flagged
    clients first, then by client id."""
    if not lines:
        return ["No clients yet. /invite SCRIPT makes an invite link for a new client."]
    blocks = [f"<b>Your clients ({len(lines)})</b>"]
    for line in sorted(lines, key=lambda item: (not item.flags, item.client_id)):
        flag = f" ⚑ new: {', '.join(line.flags)}" if line.flags else ""
        blocks.append(
            f"<b>{html.escape(line.client_id)}</b> · {line.status} · "
            f"level {line.level}/{line.max_level}{flag}\n"
            f"last shared session: {line.last_session or 'none'} · this week: "
            f"{'not shared' if line.this_week is None else line.this_week}")
    ratings = script_ratings(lines)
    if ratings:
        blocks.append("<b>Did it help? Shared answers, by exercise</b>\n"
                      + "\n".join(html.escape(r) for r in ratings))
    blocks.append("/report CLIENT sends a client's progress report.")
    messages = [blocks[0]]
    for block in blocks[1:]:
        if len(messages[-1]) + 2 + len(block) > limit:
            messages.append(block)
        else:
            messages[-1] += "\n\n" + block
    return messages


def caseload_table(lines: Sequence[CaseloadLine]) -> str:
    """The overview as tab-separated text for the terminal, with a heading row."""
    rows = ["client\ttherapist\tstatus\tlast session\tthis week\tlevel\tnew since looked"]
    for line in lines:
        rows.append("\t".join((
            line.client_id, line.therapist or "-", line.status, line.last_session or "-",
            "not shared" if line.this_week is None else str(line.this_week),
            f"{line.level}/{line.max_level}", ", ".join(line.flags) or "-")))
    ratings = script_ratings(lines)
    if ratings:
        rows += ["", "Did it help? Shared answers, by exercise", *ratings]
    return "\n".join(rows)
