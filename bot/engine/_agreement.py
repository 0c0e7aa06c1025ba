"""The contract as a living agreement: a change the therapist proposes, and its history.

A therapist proposes a :class:`ContractChange` (some of max level, topics left out, assigned
scripts, session length, sessions per day); the client agrees to it or asks to talk about it
first, and only an agreed change takes effect (:meth:`ContractChange.applied_to`). A newer
proposal replaces one still waiting. Every proposal and answer is a ledger row, and the
history both sides see is read back from those rows (:func:`history`). Pure: no I/O, no clock.

Typical use::

    change = change_from({"max_level": "4", "off_limits": "family"}, scripts=known)
    contract = change.applied_to(contract)      # only after the client's "Agree"
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol, cast, get_args

from pydantic import ConfigDict, ValidationError

from bot.engine._terms import Contract, Level, Model, SessionMinutes, SessionsPerDay
from bot.script import _model as m

#: The terms a therapist can propose, as they are written (``/contract CLIENT max_level: 4``;
#: ``--max-level 4`` on the command line), in the order they are shown.
Term = Literal["max_level", "off_limits", "assign", "session_minutes", "sessions_per_day"]
TERMS: tuple[Term, ...] = get_args(Term)
#: The ledger rows of the agreement's history.
PROPOSED, ANSWERED = "contract_proposed", "contract_answered"
HISTORY_KINDS = (PROPOSED, ANSWERED)
#: What an answer to a proposal was: agreed, or "let's talk about it first".
Answer = Literal["agreed", "talk_first"]
#: A list term written as this means "none" (``off_limits: none``).
NONE = "none"


class ContractChange(Model):
    """A change to a contract: each term set is proposed, each None left as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_level: Level | None = None
    off_limits: list[m.Slug] | None = None
    assign: list[m.Slug] | None = None
    session_minutes: SessionMinutes | None = None
    sessions_per_day: SessionsPerDay | None = None

    def terms(self) -> dict[Term, int | list[str]]:
        """The proposed terms, in :data:`TERMS` order."""
        values = self.model_dump()
        return {term: values[term] for term in TERMS if values[term] is not None}

    def applied_to(self, contract: Contract) -> Contract:
        """The contract with this change made."""
        terms = self.terms()
        update: dict[str, object] = {_FIELDS[term]: value for term, value in terms.items()}
        return contract.model_copy(update=update, deep=True)

    def changes(self, contract: Contract) -> bool:
        """Whether making it would change `contract` at all."""
        return self.applied_to(contract) != contract


#: Each term's field of :class:`~bot.engine._terms.Contract`.
_FIELDS: dict[Term, str] = {"max_level": "max_level", "off_limits": "off_limit_topics",
                            "assign": "scripts", "session_minutes": "session_minutes",
                            "sessions_per_day": "sessions_per_day"}


def current_terms(contract: Contract) -> dict[Term, int | list[str]]:
    """A contract's terms as a proposal would name them, in :data:`TERMS` order."""
    values = contract.model_dump()
    return {term: values[_FIELDS[term]] for term in TERMS}


def change_from(written: Mapping[str, str], *, scripts: Collection[str]) -> ContractChange:
    """The change a therapist wrote, one ``term: value`` each (lists comma-separated).

    Args:
        written: Term -> value as written (``{"max_level": "4", "assign": "a, b"}``).
        scripts: The scripts a client can be assigned.

    Raises:
        ValueError: An unknown term, a value out of bounds, an unknown script, or no term
            at all; the message says which and what is allowed.
    """
    unknown = sorted(set(written) - set(TERMS))
    if unknown:
        raise ValueError(f"unknown term {unknown[0]!r}; terms: {', '.join(TERMS)}")
    if not written:
        raise ValueError(f"no term given; terms: {', '.join(TERMS)}")
    values: dict[str, object] = {
        term: _items(text) if term in ("off_limits", "assign") else text.strip()
        for term, text in written.items()}
    if "assign" in written:
        assigned = _items(written["assign"])
        if not assigned:
            raise ValueError("assign needs at least one script")
        missing = sorted(set(assigned) - set(scripts))
        if missing:
            raise ValueError(f"no script {missing[0]!r}; scripts: {', '.join(sorted(scripts))}")
    try:
        return ContractChange.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def _items(text: str) -> list[str]:
    """A list term as written: comma-separated, or ``none``."""
    value = text.strip()
    return [] if value.lower() == NONE else [v.strip() for v in value.split(",") if v.strip()]


class Proposal(Model):
    """A proposed change waiting for the client's answer.

    Attributes:
        number: Its number among the client's proposals (1, 2, …): a button answers only
            the proposal it was shown with.
        by: The therapist who proposed it.
        change: What would change.
    """

    number: int
    by: str
    change: ContractChange


@dataclass(frozen=True, slots=True)
class Agreed:
    """One proposal in the history, with what became of it.

    Attributes:
        number: Its number.
        at: When it was proposed.
        by: Who proposed it.
        change: What it proposed.
        answer: The client's answer (None: no answer, still waiting or replaced).
        answered_at: When they answered.
        replaced: A newer proposal came before any answer.
    """

    number: int
    at: datetime
    by: str
    change: ContractChange
    answer: Answer | None = None
    answered_at: datetime | None = None
    replaced: bool = False

    @property
    def status(self) -> str:
        """``agreed``, ``talk_first``, ``replaced`` or ``waiting``."""
        return self.answer or ("replaced" if self.replaced else "waiting")


class Row(Protocol):
    """A ledger row as the history reads it (the store's rows are these)."""

    @property
    def at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Mapping[str, object]: ...


def history(rows: Iterable[Row]) -> list[Agreed]:
    """Every proposal in the ledger rows, oldest first, each with what became of it.

    Rows of other kinds are ignored; a proposal whose row no longer validates (written by
    another release) is left out rather than shown wrong.
    """
    found: dict[int, Agreed] = {}
    for row in rows:
        number = row.data.get("number")
        if not isinstance(number, int):
            continue
        if row.kind == PROPOSED:
            try:
                change = ContractChange.model_validate(row.data.get("change"))
            except ValidationError:
                continue
            for older, agreed in found.items():
                if agreed.status == "waiting" and older < number:
                    found[older] = replace(agreed, replaced=True)
            found[number] = Agreed(number, row.at, str(row.data.get("by", "")), change)
        elif row.kind == ANSWERED and number in found:
            answer = row.data.get("answer")
            if answer in get_args(Answer):
                found[number] = replace(found[number], answer=cast("Answer", answer),
                                        answered_at=row.at)
    return [found[n] for n in sorted(found)]

