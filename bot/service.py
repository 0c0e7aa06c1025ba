"""The service: one event in, engine decision, one atomic commit, messages queued.

Both edges (Telegram and the terminal) go through :class:`Rehearsal`. Events of one client
are handled strictly in order (a lock per client); different clients run concurrently and
their commits share transactions through the store's group commit.

Several processes may share one store (workers on PostgreSQL, an operator command next to
the bot): each commit names the version of the state it was computed from, and when another
process changed the client in between, the store refuses it and the event is computed
again from the new state. So no commit ever overwrites a change it did not see.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from bot._locks import KeyedLocks
from bot.config import RetentionConfig
from bot.engine import (
    HISTORY_KINDS,
    SESSION_KINDS,
    Blocked,
    ClientState,
    Clinician,
    ContractChange,
    Effect,
    Engine,
    Event,
    Kept,
    Message,
    Opt,
    Outcome,
    Row,
    SafetyPlan,
    Suggestion,
    TimerFired,
    history,
)
from bot.store import (
    CaseloadEntry,
    Commit,
    LedgerRecord,
    LedgerRow,
    OutgoingMessage,
    PlanRecord,
    StaleState,
    Store,
    StoredAnswer,
    StoreError,
    Timer,
)

log = logging.getLogger(__name__)
#: Telegram lets a bot delete its own messages for 48 hours; keep a margin.
RECENT_ENOUGH_TO_DELETE = timedelta(hours=47)
#: A timer committed together with the event that asks for erasure: a durable note that
#: the erasure is due (its payload names the event). The erasure itself deletes it; if the
#: process dies between the commit and the erasure (the redelivered update is a duplicate
#: and changes nothing), the timer loop finds it after the restart and finishes the erasure.
ERASE_TIMER = "erase-pending"
ERASE_RETRY_AFTER = timedelta(minutes=1)
#: Events that act on a client the bot keeps a state for. For someone without one (erased
#: meanwhile, by another worker say, or never admitted) they would create a state, and so
#: store a person who is not a client: they are dropped.
NEEDS_A_STATE = (TimerFired, Blocked, Clinician)
#: A client's stored state and its version, as `Store.load_versioned` returns them.
Versioned = tuple[dict[str, object] | None, int]
#: How often an event is computed again because another process changed its client meanwhile.
STALE_RETRIES = 20
#: The reader of every client's data: the operator, at the command line. Any other reader is
#: a therapist's id (``tg:9000``), who reads only the clients in their caseload.
OPERATOR = "operator"


def current_plan(versions: Sequence[PlanRecord], *, reviewed: int
                 ) -> tuple[SafetyPlan | None, Suggestion | None]:
    """The client's safety plan and a suggestion waiting for them, from the stored versions.

    Args:
        versions: Every version, oldest first (`Store.safety_plans`).
        reviewed: The newest suggestion the client has been through already.

    Returns:
        The newest accepted version (None: none yet), and the newest suggested one if the
        client has not been through it (None otherwise).
    """
    accepted = [v for v in versions if v.status == "accepted"]
    suggested = [v for v in versions if v.status == "suggested" and v.version > reviewed]
    plan = SafetyPlan.model_validate(dict(accepted[-1].parts)) if accepted else None
    waiting = (Suggestion(version=suggested[-1].version, by=suggested[-1].author,
                          plan=SafetyPlan.model_validate(dict(suggested[-1].parts)))
               if suggested else None)
    return plan, waiting


class NotTheirClient(Exception):
    """A therapist asked for a client who is not theirs, or for no client at all.

    Both look the same to the therapist. A refusal about an existing client is an
    ``access_refused`` row in that client's ledger.
    """


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What a therapist or the operator reads of one client, for a report or an overview.

    Attributes:
        client_id: The client.
        state: Their state (a new client's when none is stored).
        ledger: Their ledger rows, in order.
        therapist: Their place in a therapist's caseload, if they have a therapist.
    """

    client_id: str
    state: ClientState
    ledger: list[LedgerRow]
    therapist: CaseloadEntry | None


@dataclass(slots=True)
class Handled:
    """What happened to one event.

    Attributes:
        applied: False when the event was a duplicate and changed nothing.
        export: The client's data, when they asked for it (``/mydata``).
        erased: The client's data was erased (``/delete``); nothing of them is left.
        deletable: Chat messages the bot sent recently enough to delete them after erasure,
            as ``(chat_id, message_id)``.
    """

    applied: bool
    export: dict[str, object] | None = None
    erased: bool = False
    deletable: list[tuple[int, int]] = field(default_factory=list)
    outcome: Outcome | None = field(default=None, repr=False)


class Rehearsal:
    """Runs events through the engine and commits each outcome atomically.

    Args:
        engine: The pure engine.
        store: Durable storage.
        clock: Returns the current UTC time (injected so tests control it).
        chat_of: The chat a client's messages go to (None: the edge has no chats).
        retention: How long ledger rows and stored answers are kept (``storage.retention``;
            the configuration's defaults without it).
        alert_chats: Where a therapist alert goes for a client without a therapist of their
            own (``telegram.admins``); a client's own therapist gets it at their chat
            (`chat_of` their id).
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        clock: Callable[[], datetime],
        chat_of: Callable[[str], int | None] = lambda _: None,
        retention: RetentionConfig | None = None,
        alert_chats: Sequence[int] = (),
    ) -> None:
        self.engine = engine
        self.alert_chats = tuple(alert_chats)
        self.retention = retention or RetentionConfig()
        self.store = store
        self.clock = clock
        self.chat_of = chat_of
        self._locks = KeyedLocks()
        #: Clients erased while more of their events waited for them: those are dropped.
        self._erased_with_waiters: set[str] = set()

    async def state_of(self, client_id: str) -> ClientState:
        """The client's state, or a new client's state, with their newest connection-log note.

        The note is a stored answer (kept only with the opt-in, for ``answers_days``); the
        engine gets it in the state, which never stores it.
        """
        return await self._state_from(client_id, await self.store.load_state(client_id))

    async def _state_from(self, client_id: str, raw: dict[str, object] | None) -> ClientState:
        if raw is None:
            return self.engine.new_state(client_id)
        try:
            state = ClientState.model_validate(raw)
        except ValidationError:
            log.error("stored state of a client did not validate; starting them afresh")
            return self.engine.new_state(client_id)
        note = None
        if Opt.STORE_FREE_TEXT.value in state.consents:
            note = await self.store.latest_answer(client_id, "connection")
            state.kept = [Kept(step=a.step, text=a.text, at=a.at, kind=a.kind)
                          for a in await self.store.answers(client_id)]
        state.progress.last_connection = None if note is None else note.text
        state.safety_plan, state.plan_suggestion = current_plan(
            await self.store.safety_plans(client_id, newest=True), reviewed=state.plan_reviewed)
        # one read of the ledger: the sessions (summaries) and, once the therapist has proposed
        # a change, the agreement's history (for /contract)
        kinds = SESSION_KINDS | set(HISTORY_KINDS) if state.proposals else SESSION_KINDS
        rows = [Row(kind=r.kind, data=r.data, at=r.at)
                for r in await self.store.ledger(client_id, kinds)]
        if state.proposals:
            state.contract_history = history(rows)  # other kinds are ignored there
        state.history = [row for row in rows if row.kind in SESSION_KINDS]
        return state

    @asynccontextmanager
    async def turn(self, client_id: str) -> AsyncIterator[None]:
        """The client's turn: their events are handled one at a time, in arrival order.

        `handle` takes it; an edge that must also check the client in order (access, say)
        takes it around the whole update, and `handle` inside then runs in the same turn.
        """
        async with self._locks.hold(client_id):
            yield
        if client_id not in self._locks:  # nobody else waits: a later event is a new start
            self._erased_with_waiters.discard(client_id)

    async def handle(self, client_id: str, event_id: str, event: Event,
                     stored: Versioned | None = None) -> Handled:
        """Handle one event for one client, in order with the client's other events.

        Args:
            client_id: The store key of the client.
            event_id: A unique id of the event, for dedup (a repeat changes nothing).
            event: The event.
            stored: The client's stored state and version, read in this turn already
                (`Store.load_versioned`), so it is not read again.
        """
        async with self.turn(client_id):
            if client_id in self._erased_with_waiters:
                # It was let in before the erasure and waited behind it: handled now, it
                # would store a fresh state and so let the erased client in again.
                log.info("dropped an event that arrived while its client was being erased")
                return Handled(applied=False)
            handled = await self._handle_locked(client_id, event_id, event, stored)
            if handled.erased:
                self._erased_with_waiters.add(client_id)
            return handled

    async def _handle_locked(self, client_id: str, event_id: str, event: Event,
                             stored: Versioned | None) -> Handled:
        now = self.clock()
        for _ in range(STALE_RETRIES):
            raw, version = stored or await self.store.load_versioned(client_id)
            stored = None  # a stale state is read afresh
            if raw is None and isinstance(event, NEEDS_A_STATE):
                log.info("dropped a %s event for a client without a state",
                         type(event).__name__)
                return Handled(applied=False)
            state = await self._state_from(client_id, raw)
            try:
                return await self._apply(client_id, event_id, event, now, state, version)
            except StaleState:
                log.info("another process changed a client meanwhile; computing the event again")
        raise StoreError(f"the state of a client kept changing while event {event_id!r} was "
                         "computed; it is tried again later")

    async def _apply(self, client_id: str, event_id: str, event: Event, now: datetime,
                     state: ClientState, version: int) -> Handled:
        """Run the engine on one state and commit the outcome, based on that state's version.

        Raises:
            StaleState: The client's state is no longer `version`: nothing was applied.
        """
        outcome = self.engine.handle(state, event, now)
        chat_id = self.chat_of(client_id)
        cancel = list(outcome.timers_cancel)
        if isinstance(event, TimerFired):
            cancel.insert(0, event.kind)
        erase = Effect.ERASE in outcome.effects
        timers = [Timer(t.kind, t.due, {}) for t in outcome.timers_set]
        if erase:
            timers.append(Timer(ERASE_TIMER, now + ERASE_RETRY_AFTER, {"event_id": event_id}))
        ledger = [LedgerRecord(e.kind, e.data, now) for e in outcome.ledger]
        outbox = [OutgoingMessage(client_id, chat_id, m.to_payload()) for m in outcome.messages]
        if outcome.alerts:
            ledger, alerts = await self._address_alerts(client_id, outcome, ledger)
            outbox += alerts
        commit = Commit(
            event_id=event_id,
            client_id=client_id,
            at=now,
            state=outcome.state.model_dump(mode="json"),
            ledger=ledger,
            outbox=outbox,
            answers=[StoredAnswer(a.step, a.text, now, a.kind) for a in outcome.answers],
            plans=[PlanRecord(parts=p.plan.parts(), author=p.author, status=p.status, at=now,
                              changed=p.changed, suggestion=p.suggestion)
                   for p in outcome.plans],
            timers_set=timers,
            timers_cancel=cancel,
            cancel_outbox=Effect.CANCEL_OUTBOX in outcome.effects,
            drop_answers=Effect.DROP_ANSWERS in outcome.effects,
            based_on=version,
        )
        if not await self.store.commit(commit):
            return Handled(applied=False)
        handled = Handled(applied=True, outcome=outcome)
        if Effect.EXPORT in outcome.effects:
            handled.export = await self.store.export(client_id)
        if erase:
            since = now - RECENT_ENOUGH_TO_DELETE
            handled.deletable = await self.store.recent_sent_messages(client_id, since)
            await self.store.erase(client_id, keep_event=event_id)
            handled.erased = True
        return handled

    async def _address_alerts(
        self, client_id: str, outcome: Outcome, ledger: list[LedgerRecord]
    ) -> tuple[list[LedgerRecord], list[OutgoingMessage]]:
        """The outbox rows of the outcome's therapist alerts, and the ledger saying who got them.

        An alert goes to the client's own therapist (the invite, or ``rehearse assign``,
        recorded them), else to every `alert_chats`. The rows are the client's, so erasure
        removes any not yet sent; they are urgent (never held back by a chat's pace) and
        marked ``alert`` (a halt does not cancel them; a therapist who blocked the bot does
        not halt the client). Without anyone to send to, the ledger row says so.
        """
        entry = await self.store.therapist_of(client_id)
        own = None if entry is None else self.chat_of(entry.therapist)
        chats = (own,) if own is not None else self.alert_chats
        to = None if not chats else "therapist" if own is not None else "admins"
        rows = [OutgoingMessage(client_id, chat, {"text": alert.text, "urgent": True,
                                                  "alert": True})
                for alert in outcome.alerts for chat in chats]
        addressed = [LedgerRecord(r.kind, {**r.data, "to": to} if to else
                                  {**r.data, "sent": False, "reason": "no-recipient"}, r.at)
                     if r.kind == "therapist_alert" and r.data.get("sent") else r
                     for r in ledger]
        return addressed, rows

    async def reply_to_stranger(
        self, client_id: str, event_id: str, messages: Sequence[Message]
    ) -> bool:
        """Queue messages to someone the bot keeps no state for (crisis lines to a stranger).

        They go through the outbox like every other message — durable, retried on 429s and
        5xx, sent once — but no client state, ledger row or answer is written.

        Returns:
            False when the event was a duplicate (already answered).
        """
        return await self._queue(client_id, event_id,
                                 [{**m.to_payload(), "stranger": True} for m in messages])

    async def send_file(self, client_id: str, event_id: str, name: str, content: str) -> bool:
        """Queue a file for a client (their ``/mydata`` export) after what is queued already.

        It goes through the outbox — durable, retried, sent once, after the messages before
        it — as ``{"file": {"name": ..., "content": ...}}``; erasure deletes it unsent.

        Args:
            client_id: The client.
            event_id: The event that asked for it (the file's own id is derived from it).
            name: The file name the client sees.
            content: The file's text (UTF-8).

        Returns:
            False when the file was queued already.
        """
        return await self._queue(client_id, f"{event_id}:file",
                                 [{"file": {"name": name, "content": content}}])

    async def _queue(self, client_id: str, event_id: str,
                     payloads: Sequence[dict[str, object]]) -> bool:
        """Commit outbox rows alone: no state, ledger row or answer is written."""
        chat_id = self.chat_of(client_id)
        return await self.store.commit(Commit(
            event_id=event_id, client_id=client_id, at=self.clock(), state=None,
            outbox=[OutgoingMessage(client_id, chat_id, payload) for payload in payloads],
        ))

    async def fire_due_timers(self) -> int:
        """Hand every due timer to its client as an event; returns how many fired."""
        due = await self.store.due_timers(self.clock())
        for timer in due:
            if timer.kind == ERASE_TIMER:
                event_id = timer.payload.get("event_id")
                await self._finish_erasure(timer.client_id,
                                           event_id if isinstance(event_id, str) else None)
                continue
            event = TimerFired(kind=timer.kind, due_iso=timer.due.isoformat())
            await self.handle(timer.client_id, f"timer:{timer.kind}:{timer.due.isoformat()}",
                              event)
        return len(due)

    async def purge(self) -> int:
        """Enforce the retention periods; returns how many rows were deleted."""
        retention = self.retention
        return await self.store.purge(self.clock(), ledger_days=retention.ledger_days,
                                      answers_days=retention.answers_days)

    async def _finish_erasure(self, client_id: str, event_id: str | None) -> None:
        """Erase a client whose erasure was committed but cut short (a crash, a failure)."""
        async with self.turn(client_id):
            log.warning("finishing an erasure that was interrupted")
            await self.store.erase(client_id, keep_event=event_id)

    async def read_for(self, client_id: str, reader: str, what: str) -> dict[str, object]:
        """Export a client's data for a therapist or the operator, logging the read.

        The ledger row is written first, so the client sees in ``/mydata`` that it happened.

        Args:
            client_id: The client.
            reader: `OPERATOR`, or the id of a therapist, who reads only their own clients.
            what: What is read (``export``, ``ledger``), for the ledger row.

        Raises:
            NotTheirClient: The reader is a therapist and the client is not theirs.
        """
        await self._allow(client_id, reader, what)
        return await self.store.export(client_id)

    async def read_record(self, client_id: str, reader: str, what: str = "report", *,
                          kinds: Collection[str] | None = None,
                          look: bool = True) -> ClientRecord:
        """Read a client's state and ledger for a report, logging the read as `read_for` does.

        A therapist reading their client's report is noted as their last look (what is new
        since then is flagged in their caseload).

        Args:
            client_id: The client.
            reader: `OPERATOR`, or a therapist's id.
            what: What is read, for the ledger row.
            kinds: Only the ledger rows of these kinds (all by default).
            look: Whether the read counts as the therapist's look (a glance at the
                agreement does not: what is flagged stays flagged).

        Raises:
            NotTheirClient: The reader is a therapist and the client is not theirs.
        """
        entry = await self._allow(client_id, reader, what)
        record = ClientRecord(client_id, await self.state_of(client_id),
                              await self.store.ledger(client_id, kinds), entry)
        if reader != OPERATOR and look:
            await self.store.mark_looked(client_id, reader, self.clock())
        return record

    async def read_caseload(self, reader: str, therapist: str | None = None, *,
                            kinds: Collection[str] | None = None) -> list[ClientRecord]:
        """Read every client of a caseload, each read logged in that client's ledger.

        Args:
            reader: A therapist (their own clients) or `OPERATOR`.
            therapist: For the operator: only this therapist's clients (default: every
                client, with a therapist or not).
            kinds: Only the ledger rows of these kinds (all by default).
        """
        mine = reader if reader != OPERATOR else therapist
        entries = {e.client_id: e for e in await self.store.caseload(mine)}
        known = set(await self.store.client_ids())
        ids = sorted(known & set(entries) if mine is not None else known)
        now = self.clock()
        await asyncio.gather(*(self._log_read(client_id, reader, "caseload", now)
                               for client_id in ids))  # one group commit for all
        return [ClientRecord(client_id, await self.state_of(client_id),
                             await self.store.ledger(client_id, kinds), entries.get(client_id))
                for client_id in ids]

    async def propose_contract(self, client_id: str, by: str, change: ContractChange,
                               event_id: str) -> bool:
        """Propose a change to the client's contract; it takes effect once they agree.

        Args:
            client_id: The client.
            by: `OPERATOR` or a therapist's id (their own clients only).
            change: The change (:func:`bot.engine.change_from`).
            event_id: A unique id, so that a redelivered command proposes nothing twice.

        Returns:
            False when the contract says all of it already (nothing is proposed).

        Raises:
            NotTheirClient: `by` is a therapist and the client is not theirs.
        """
        await self.authorise(client_id, by, "contract")
        if not change.changes((await self.state_of(client_id)).contract):
            return False
        await self.handle(client_id, event_id,
                          Clinician(action="propose-contract", by=by, change=change))
        return True

    async def switch_outcomes(self, client_id: str, by: str, on: bool, event_id: str) -> None:
        """Switch the client's weekly outcome check-in on or off (a ledger row they see).

        Args:
            client_id: The client.
            by: `OPERATOR` or a therapist's id (their own clients only).
            on: On (asked at their next session start) or off.
            event_id: A unique id, so that a redelivered command switches nothing twice.

        Raises:
            NotTheirClient: `by` is a therapist and the client is not theirs.
        """
        await self.authorise(client_id, by, "outcomes")
        await self.handle(client_id, event_id, Clinician(
            action="outcomes-on" if on else "outcomes-off", by=by))

    async def assign(self, client_id: str, therapist: str | None, by: str) -> None:
        """Make `therapist` the client's therapist (None: none), noted in the client's ledger."""
        now = self.clock()
        await self._log(client_id, "therapist_assigned", {"therapist": therapist, "by": by}, now)
        await self.store.assign_therapist(client_id, therapist, now)

    async def authorise(self, client_id: str, reader: str, what: str) -> CaseloadEntry | None:
        """Check that `reader` may read or change the client's data; return their entry.

        Args:
            client_id: The client.
            reader: `OPERATOR` (every client) or a therapist's id (their own clients only).
            what: What they asked for (``report``, ``clear-hold``, …), for a refusal's row.

        Raises:
            NotTheirClient: Refused; the refusal is in the client's ledger if they exist.
        """
        entry = await self.store.therapist_of(client_id)
        if reader != OPERATOR and (entry is None or entry.therapist != reader):
            log.warning("refused a therapist's %s for a client who is not theirs", what)
            if await self.store.load_state(client_id) is not None:
                await self._log(client_id, "access_refused", {"reader": reader, "what": what},
                                self.clock())
            raise NotTheirClient(client_id)
        return entry

    async def _allow(self, client_id: str, reader: str, what: str) -> CaseloadEntry | None:
        """`authorise` the read and log it; return the client's caseload entry."""
        entry = await self.authorise(client_id, reader, what)
        await self._log_read(client_id, reader, what, self.clock())
        return entry

    async def _log_read(self, client_id: str, reader: str, what: str, now: datetime) -> None:
        await self._log(client_id, "data_read", {"reader": reader, "what": what}, now)

    async def _log(self, client_id: str, kind: str, data: dict[str, object],
                   now: datetime) -> None:
        """Append one ledger row outside any event (a read, a refusal, an assignment)."""
        await self.store.commit(Commit(
            event_id=f"{kind}:{uuid.uuid4().hex}",  # every one is logged, even two at once
            client_id=client_id,
            at=now,
            state=None,
            ledger=[LedgerRecord(kind, data, now)],
        ))
