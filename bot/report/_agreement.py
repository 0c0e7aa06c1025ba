"""The agreement's history for the therapist: each proposal, who made it, what became of it.

Read from the ledger rows of the proposals and answers (:func:`bot.engine.history`), for the
report's table and for ``rehearse contract`` and ``/contract CLIENT``, which print the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from bot.engine import ClientState, ContractChange, Term, current_terms, history
from bot.report._status import client_zone
from bot.store import LedgerRow

#: How the therapist's views name each term of a proposal.
TERM_NAMES: dict[Term, str] = {
    "max_level": "Max level",
    "off_limits": "Topics left out",
    "assign": "Exercises assigned",
    "session_minutes": "Session length",
    "sessions_per_day": "Sessions per day",
}
HISTORY_COLUMNS = ("Proposed", "By", "Change", "What became of it")
_ANSWERS = {"agreed": "agreed", "talk_first": "asked to talk about it first",
            "replaced": "replaced by a newer proposal before an answer",
            "waiting": "waiting for the client's answer"}


def term_value(term: Term, value: int | list[str], titles: Mapping[str, str]) -> str:
    """One term's value in words (``up to 15 minutes``; scripts by their titles)."""
    if isinstance(value, list):
        names = [titles.get(v, v) for v in value] if term == "assign" else value
        return ", ".join(names) or ("every exercise" if term == "assign" else "none")
    if term == "session_minutes":
        return f"up to {value} minutes"
    return str(value) if term == "max_level" else f"up to {value}"


def change_words(change: ContractChange, titles: Mapping[str, str]) -> str:
    """A proposed change in words: ``Max level: 4; Session length: up to 10 minutes``."""
    return "; ".join(f"{TERM_NAMES[term]}: {term_value(term, value, titles)}"
                     for term, value in change.terms().items())


def history_rows(ledger: Sequence[LedgerRow], zone: ZoneInfo,
                 titles: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """Each proposal, oldest first: when, by whom, the change, and what became of it."""
    rows = []
    for agreed in history(ledger):
        answer = _ANSWERS[agreed.status]
        if agreed.answered_at is not None:
            answer += f" ({agreed.answered_at.astimezone(zone):%Y-%m-%d %H:%M})"
        rows.append((f"{agreed.at.astimezone(zone):%Y-%m-%d %H:%M}", agreed.by,
                     change_words(agreed.change, titles), answer))
    return rows


def agreement_text(state: ClientState, ledger: Sequence[LedgerRow], *, default_zone: str,
                   titles: Mapping[str, str]) -> str:
    """The current agreement and its history as plain text (the command line, Telegram)."""
    lines = [f"The agreement of {state.client_id} (level {state.level} now):"]
    lines += [f"  {TERM_NAMES[t]}: {term_value(t, v, titles)}"
              for t, v in current_terms(state.contract).items()]
    rows = history_rows(ledger, client_zone(state, default_zone), titles)
    lines.append("Proposals:" if rows else "No proposals so far.")
    lines += [f"  {at} by {by}: {change} — {answer}" for at, by, change, answer in rows]
    return "\n".join(lines)
