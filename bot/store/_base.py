"""The store interface: records and the abstract `Store` that every backend implements.

Keys are client ids such as ``"tg:123456789"`` or ``"term:ada"``. Every time is a
timezone-aware `datetime` passed in by the caller; a store never reads the clock.
Client state and all payloads are opaque JSON objects to the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self


class StoreError(Exception):
    """The backend failed; the operation may not have taken effect."""


class DataRefused(StoreError, ValueError):
    """The backend refused the data itself (a constraint, a value it cannot hold).

    Unlike other store failures (a full disk, a lost connection) it is no outage: the same
    data fails again however long one waits, so callers give it up instead of retrying.
    """


class StaleState(StoreError):
    """A commit's `Commit.based_on` no longer matches: another process changed (or erased)
    the client's state since it was read. Nothing was applied; read it again and recompute."""


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """A ledger row to append: consent, pacing, check-in or safety event."""

    kind: str
    data: Mapping[str, object]
    at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A ledger row read back; `seq` grows with every append and is never reused."""

    seq: int
    client_id: str
    at: datetime
    kind: str
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to send after the commit that queued it is durable.

    `chat_id` is None for adapters without chats (the terminal). `payload` is the
    adapter's JSON description of the message (text, buttons, send/edit/delete).
    """

    client_id: str
    chat_id: int | None
    payload: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A queued message not yet sent."""

    id: int
    client_id: str
    chat_id: int | None
    payload: dict[str, object]
    attempts: int
    not_before: datetime | None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A free-text answer the client opted in to store.

    `kind` is ``"answer"`` for an answer to a step, ``"connection"`` for a note in the
    connection log. Every kind is kept for the answers' retention, exported and erased alike.
    """

    step: str
    text: str
    at: datetime
    kind: str = "answer"


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One version of a client's safety plan; every version is kept until erasure.

    Attributes:
        parts: The whole plan of this version: part name -> text ("" not written).
        author: ``client``, or the therapist (or ``operator``) who wrote a suggestion.
        status: ``accepted`` (the client's plan; the newest one is current) or
            ``suggested`` (a therapist's wording, waiting for the client's yes).
        at: When it was saved.
        changed: The parts this version changed.
        suggestion: The suggested version whose wording the client accepted here, if any.
        version: Its number, counting the client's versions from 1 (given by the store).
    """

    parts: Mapping[str, str]
    author: str
    status: str
    at: datetime
    changed: Sequence[str] = ()
    suggestion: int | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer to set (reminder, silence follow-up); unique per client and kind."""

    kind: str
    due: datetime
    payload: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A timer whose time has come. It stays until a commit cancels or replaces it."""

    client_id: str
    kind: str
    due: datetime
    payload: dict[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """Everything one event changes, applied atomically or not at all.

    The parts are applied in this order: dedup by `event_id`, `cancel_outbox`,
    `drop_answers`, `state`, `ledger`, `outbox`, `answers`, `plans`, `timers_cancel`,
    `timers_set`.

    Attributes:
        event_id: Dedup key, e.g. ``"tg:update:12345"``; a second commit with the same key
            changes nothing.
        client_id: The client the event belongs to.
        at: When the event happened (kept for dedup retention and `updated_at`).
        state: The client's new state; None leaves it unchanged.
        ledger: Ledger rows to append, in order.
        outbox: Messages to queue, in order.
        answers: Free-text answers to store.
        plans: Versions of the client's safety plan to add, in order (numbered by the store).
        timers_set: Timers to create or replace, keyed by kind.
        timers_cancel: Timer kinds to delete; ``"*"`` deletes all of the client's timers.
        cancel_outbox: Drop the client's unsent messages before queuing `outbox`, all but
            therapist alerts (payload ``alert``): a halt never holds back a safety alert.
        drop_answers: Delete every answer stored for the client (and, as after an
            erasure, their old copies in the files) before storing `answers`.
        based_on: The state version (`Store.load_versioned`) the commit was computed from:
            unless the client's state still has it (0: still none), `commit` raises
            `StaleState` and applies nothing (a duplicate event still returns False).
            None applies regardless.
    """

    event_id: str
    client_id: str
    at: datetime
    state: Mapping[str, object] | None
    ledger: Sequence[LedgerRecord] = ()
    outbox: Sequence[OutgoingMessage] = ()
    answers: Sequence[StoredAnswer] = ()
    plans: Sequence[PlanRecord] = ()
    timers_set: Sequence[Timer] = ()
    timers_cancel: Sequence[str] = ()
    cancel_outbox: bool = False
    drop_answers: bool = False
    based_on: int | None = None


@dataclass(frozen=True, slots=True)
class QueuedUpdate:
    """A Telegram update received and stored, not handled yet (webhook mode, or workers).

    Attributes:
        update_id: Telegram's id, the dedup key.
        body: The update as received (decoded JSON).
        readable: False when it could not be decoded whole: `body` then holds only its first
            levels (enough for the id and the chat).
    """

    update_id: int
    body: dict[str, object]
    readable: bool = True


@dataclass(frozen=True, slots=True)
class Invite:
    """A single-use invite code, stored only as a hash.

    `max_level` None means the contract's default. `therapist` is the id of the therapist
    who made it (e.g. ``"tg:9000"``), None for an invite made by the operator for no one in
    particular. After the redeeming client's data is erased, `redeemed_by` is None while
    `redeemed_at` still marks the code as used.
    """

    code_hash: str
    script_id: str
    max_level: int | None
    expires_at: datetime
    created_at: datetime
    redeemed_by: str | None = None
    redeemed_at: datetime | None = None
    therapist: str | None = None


@dataclass(frozen=True, slots=True)
class CaseloadEntry:
    """A client in a therapist's caseload: the therapist may read and change their data.

    Attributes:
        client_id: The client.
        therapist: The therapist's id, e.g. ``"tg:9000"``.
        since: When the client became this therapist's.
        looked_at: When the therapist last read the client's progress report (None: never).
    """

    client_id: str
    therapist: str
    since: datetime
    looked_at: datetime | None = None


class Store(ABC):
    """Durable storage for clients' state, ledger, outbox, timers and invites.

    Use as ``async with store: ...`` or call `open` and `close`. Methods raise
    `StoreError` when the backend fails and `ValueError`/`TypeError` for bad input
    (naive datetimes, values that are not JSON).
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect, apply pending migrations and start accepting commits."""

    @abstractmethod
    async def close(self) -> None:
        """Finish every commit already submitted, then disconnect."""

    @abstractmethod
    async def commit(self, commit: Commit) -> bool:
        """Apply `commit` atomically; return only once it is durable.

        Returns:
            True if applied, False if its `event_id` was seen before (nothing changed).
        """

    @abstractmethod
    async def load_state(self, client_id: str) -> dict[str, object] | None:
        """Return the client's state, or None if none was ever stored."""

    @abstractmethod
    async def load_versioned(self, client_id: str) -> tuple[dict[str, object] | None, int]:
        """Return the client's state and its version, read together (0 when none is stored).

        Every commit that writes the state gives it a new version, never one used before in
        this database (not even for a client erased and come back), so `Commit.based_on`
        detects any change in between.
        """

    @abstractmethod
    async def client_ids(self) -> list[str]:
        """Return the ids of all clients with a stored state, sorted."""

    @abstractmethod
    async def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        """Return up to `limit` messages ready to send, in queue order.

        A message is ready when its `not_before` has passed and no earlier message of the
        same client to the same chat is still deferred, so each client's messages go out in
        order (and a therapist alert being retried never holds back the client's own chat).
        """

    @abstractmethod
    async def mark_sent(
        self, outbox_id: int, sent_at: datetime, message_ids: Sequence[int] = ()
    ) -> None:
        """Remove a sent message from the outbox and remember the chat message ids.

        The ids are kept (for `recent_sent_messages`) only for messages with a chat.
        An unknown `outbox_id` (e.g. cancelled meanwhile) is ignored.
        """

    @abstractmethod
    async def record_sent(
        self, client_id: str, chat_id: int, message_ids: Sequence[int], sent_at: datetime
    ) -> None:
        """Remember messages sent outside the outbox (a file), for `recent_sent_messages`."""

    @abstractmethod
    async def defer_outbox(self, outbox_id: int, not_before: datetime, attempts: int) -> None:
        """Hold a message back until `not_before` and record the attempts so far."""

    @abstractmethod
    async def recent_sent_messages(self, client_id: str, since: datetime) -> list[tuple[int, int]]:
        """Return ``(chat_id, message_id)`` of messages sent to the client since `since`."""

    @abstractmethod
    async def due_timers(self, now: datetime) -> list[DueTimer]:
        """Return all timers due at `now`, earliest first."""

    @abstractmethod
    async def ledger(
        self, client_id: str, kinds: Collection[str] | None = None
    ) -> list[LedgerRow]:
        """Return the client's ledger rows in append order (only rows of `kinds` if given)."""

    @abstractmethod
    async def answers(self, client_id: str) -> list[StoredAnswer]:
        """Return the client's stored free-text answers, oldest first."""

    @abstractmethod
    async def latest_answer(self, client_id: str, kind: str) -> StoredAnswer | None:
        """Return the client's newest stored answer of this kind, or None."""

    @abstractmethod
    async def safety_plans(self, client_id: str, *, newest: bool = False) -> list[PlanRecord]:
        """Return every version of the client's safety plan, oldest first; with `newest`,
        only the newest version of each status (at most two: what every event reads)."""

    @abstractmethod
    async def export(self, client_id: str) -> dict[str, object]:
        """Return everything stored about the client as a JSON-ready dict.

        Datetimes are ISO 8601 strings. Keys: client_id, state, updated_at, ledger,
        answers, safety_plans (every version: version, at, author, status, changed,
        suggestion, parts), timers, outbox, sent_messages, events, failed_codes, invites, therapist
        (the caseload entry: therapist, since, looked_at; None without a therapist).
        """

    @abstractmethod
    async def changed_elsewhere(self) -> bool:
        """Whether another process wrote to the store since last asked: on SQLite any write
        (an operator command), on PostgreSQL, shared by several workers, an erasure.

        The first call answers False. Callers holding caches of stored facts drop them.
        """

    @abstractmethod
    async def erase(self, client_id: str, keep_event: str | None = None) -> None:
        """Delete everything stored about the client, leaving no trace in the files.

        The erasure is done once this returns: no read shows anything of the client. Old
        copies in the backend's files are removed at once, or, while another connection
        holds them (a backup, an export), in the background as soon as it lets go (see
        `cleaned`). Read `recent_sent_messages` first if the chat messages are to be deleted
        too. Invites the client redeemed stay used but lose the client's id.

        Args:
            client_id: The client.
            keep_event: The dedup key of the event that asked for the erasure: it stays
                (without the client's id, for the technical retention) so that the event
                delivered again changes nothing.
        """

    @abstractmethod
    async def cleaned(self, timeout: float = 0.0) -> bool:  # noqa: ASYNC109
        """Wait up to `timeout` seconds until no old copy of deleted or sent data is left in
        the backend's files; return whether none is."""

    @abstractmethod
    async def purge(
        self,
        now: datetime,
        *,
        ledger_days: int,
        answers_days: int,
        technical_days: int = 2,
    ) -> int:
        """Delete rows older than their retention period; return how many were deleted.

        Args:
            now: The current time.
            ledger_days: Retention of ledger rows.
            answers_days: Retention of stored free-text answers.
            technical_days: Retention of dedup keys, sent message ids and failed invite
                code attempts. Keep it above a day: Telegram redelivers unconfirmed
                updates for up to 24 hours.
        """

    @abstractmethod
    async def add_invite(self, invite: Invite) -> None:
        """Store a new invite; raise `StoreError` if its hash already exists."""

    @abstractmethod
    async def redeem_invite(self, code_hash: str, client_id: str, now: datetime) -> Invite | None:
        """Atomically redeem an invite for `client_id`.

        An invite naming a therapist puts the client in that therapist's caseload in the same
        transaction (a client of another therapist moves, with `looked_at` afresh).

        Returns:
            The redeemed invite; the same invite again if this client already redeemed it;
            None if the code is unknown, expired or used by someone else.
        """

    @abstractmethod
    async def list_invites(self) -> list[Invite]:
        """Return all invites, oldest first."""

    @abstractmethod
    async def therapist_of(self, client_id: str) -> CaseloadEntry | None:
        """Return the client's place in a therapist's caseload, or None if they have none."""

    @abstractmethod
    async def caseload(self, therapist: str | None = None) -> list[CaseloadEntry]:
        """Return the therapist's clients (every therapist's when None), by client id."""

    @abstractmethod
    async def assign_therapist(
        self, client_id: str, therapist: str | None, now: datetime
    ) -> None:
        """Make `therapist` the client's therapist (None: no therapist any more).

        Assigning the therapist the client already has changes nothing; another therapist
        starts with `looked_at` None.
        """

    @abstractmethod
    async def mark_looked(self, client_id: str, therapist: str, at: datetime) -> None:
        """Note that `therapist` read the client's report at `at` (if the client is theirs)."""

    @abstractmethod
    async def failed_codes(self, client_id: str, now: datetime, window: timedelta) -> int:
        """Return the client's wrong invite codes within `window`, recording nothing."""

    @abstractmethod
    async def record_failed_code(self, client_id: str, now: datetime, window: timedelta) -> int:
        """Record a wrong invite code; return the client's failures within `window`."""

    @abstractmethod
    async def refuse_group(self, chat_id: int) -> bool:
        """Note that a group or channel was refused; return whether it was new (atomically:
        of several workers at once, exactly one is told True, and only once ever).

        Only the chat id is kept, for good and in no client's data, so that the bot refuses
        each group once, not once per start.
        """

    # -- the update queue and leases: webhook mode and several workers ---------------------
    #
    # Updates are stored before Telegram is answered and handled from here, by any worker.
    # Each client's updates form a lane: only the oldest unhandled update of a lane can be
    # claimed, and only while no live claim holds it, so a client's updates are handled
    # one at a time, in update_id order, whichever worker takes them. Claims and leases are
    # timed by the database's own clock, the one every worker shares (the one exception to
    # "a store never reads the clock").

    @abstractmethod
    async def enqueue_update(
        self, update_id: int, client_id: str, body: Mapping[str, object], at: datetime,
        *, readable: bool = True,
    ) -> bool:
        """Store a received update durably in the client's lane (`client_id`, or "" for an
        update of no client); return False if its id was stored before (a redelivery).

        Its body (what the client wrote) is deleted once it is handled; its id is kept for
        the technical retention, so that a redelivery is recognised.
        """

    @abstractmethod
    async def claim_updates(self, owner: str, limit: int, lease: timedelta) -> list[QueuedUpdate]:
        """Claim, for `lease`, the oldest unhandled update of up to `limit` free lanes, in
        update_id order. A claim whose owner died runs out and the update is claimed again."""

    @abstractmethod
    async def renew_claims(self, owner: str, lease: timedelta) -> None:
        """Extend every claim of `owner` by `lease` from now (while it is still handling)."""

    @abstractmethod
    async def finish_updates(self, update_ids: Sequence[int]) -> None:
        """Mark updates handled: their bodies are deleted, the next update of each lane can be
        claimed."""

    @abstractmethod
    async def release_updates(self, owner: str, update_ids: Sequence[int]) -> None:
        """Give up `owner`'s claims on these updates unhandled: they are claimed again."""

    @abstractmethod
    async def queued_updates(self) -> int:
        """Return how many stored updates are not handled yet."""

    @abstractmethod
    async def hold_lease(self, name: str, owner: str, lease: timedelta) -> bool:
        """Take or renew the lease `name` (e.g. a role only one worker may play) for `lease`;
        return whether `owner` holds it now. A lease whose owner stopped renewing runs out."""

    @abstractmethod
    async def drop_lease(self, name: str, owner: str) -> None:
        """Give up the lease `name` if `owner` holds it."""

    async def notifications(self) -> AsyncIterator[str]:
        """Yield ``"outbox"`` when any process queued messages and ``"updates"`` when any
        stored an update, for as long as the caller iterates; both at the start and after a
        lost connection, when some may have been missed.

        Only a hint, to wake up early: a backend that cannot tell (SQLite, one process)
        yields nothing and returns, and callers look from time to time anyway.
        """
        nothing: tuple[str, ...] = ()
        for kind in nothing:
            yield kind
