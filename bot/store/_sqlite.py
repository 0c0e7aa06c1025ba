"""SQLite backend: one connection on its own thread, one writer task, group commit.

Every SQL statement of the store lives here or in `_migrations`. Each database job (a
whole transaction) runs as one call on the store's single database thread, which owns the
connection (`sqlite3` blocks, so the event loop never waits on it).

Group commit: `commit` and `mark_sent` queue their writes; the writer task takes everything
queued (up to `MAX_GROUP`), applies it in one ``BEGIN IMMEDIATE`` transaction with each write
in its own savepoint, and resolves the callers' futures only after ``COMMIT`` returned. With
``journal_mode=WAL`` and ``synchronous=FULL`` that ``COMMIT`` is fsync'd, so one fsync
serves the whole group. A duplicate event or a failing commit rolls back only its own
savepoint. The queue is FIFO, so each client's commits apply in submission order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from bot.store import _migrations
from bot.store._base import (
    CaseloadEntry,
    Commit,
    DueTimer,
    Invite,
    LedgerRow,
    OutboxRow,
    PlanRecord,
    QueuedUpdate,
    StaleState,
    Store,
    StoredAnswer,
    StoreError,
)
from bot.store._cleanup import Cleanup

MAX_GROUP = 256
"""Most commits applied in one transaction."""

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

_BUSY_TIMEOUT_MS = 5000
_PRAGMAS = (
    "PRAGMA synchronous = FULL",
    "PRAGMA secure_delete = ON",
    f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",  # savepoint journals and sorts never touch the disk
)
_CLIENT_TABLES = (
    "clients",
    "inbox",
    "ledger",
    "outbox",
    "answers",
    "timers",
    "sent_messages",
    "failed_codes",
    "caseload",
    "safety_plans",
)
_MIN_SQLITE = (3, 37, 0)  # STRICT tables


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A `Commit` turned into SQL parameters (validated and JSON-encoded up front)."""

    event_id: str
    client_id: str
    at: str
    state: str | None
    ledger: list[tuple[str, str, str, str]]
    outbox: list[tuple[str, int | None, str, str]]
    answers: list[tuple[str, str, str, str, str]]
    plans: list[tuple[str, str, str, str, str, int | None, str]]
    timers_set: list[tuple[str, str, str, str]]
    timers_cancel: list[str]
    cancel_outbox: bool
    drop_answers: bool
    based_on: int | None


@dataclass(frozen=True, slots=True)
class _Sent:
    """A sent outbox row, to delete and remember in the next group (`mark_sent`)."""

    outbox_id: int
    sent_at: str
    message_ids: Sequence[int]


@dataclass(frozen=True, slots=True)
class _Pending:
    write: _Encoded | _Sent
    future: asyncio.Future[bool]


class SqliteStore(Store):
    """`Store` on one SQLite file (WAL, fsync'd commits, secure delete, owner-only files).

    Deleted rows (an erasure, the purge, dropped answers) and sent messages leave old copies
    in the files' free space and in old WAL frames; a clean-up pass (`VACUUM` where rows were
    deleted, then a checkpoint that truncates the WAL) removes them. It runs right after an
    erasure or purge, `sent_cleanup_delay` seconds after messages were sent, and at open; while
    another connection's read transaction holds it off it is retried every `cleanup_retry`
    seconds. A durable note in the database keeps a `VACUUM` owed across a crash.

    Args:
        path: The database file; it and its parent directory are created if missing.
        cleanup_retry: Seconds between clean-up passes while they are held off.
        sent_cleanup_delay: Seconds after a message was sent (or dropped) before the pass
            that removes its old copies; sends within that time share one pass.
    """

    def __init__(
        self, path: str | Path, *, cleanup_retry: float = 5.0, sent_cleanup_delay: float = 1.0
    ) -> None:
        self._path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._data_version: int | None = None
        self._cleanup = Cleanup(self._clean_files, cleanup_retry)
        self._sent_cleanup_delay = sent_cleanup_delay

    async def open(self) -> None:
        if self._db is not None:
            raise StoreError("the store is already open")
        path = self._path
        try:
            _create_private(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create or open the database ({exc.strerror}); "
                             "check the path and the permissions of its folder") from exc
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        try:
            self._db = await self._on_thread(
                lambda: sqlite3.connect(path, isolation_level=None))
            before = await self._run(lambda conn: _setup(conn, path))
        except BaseException:
            await self._disconnect()
            raise
        if before != len(_migrations.MIGRATIONS):
            _LOG.info(
                "migrated %s from schema version %d to %d",
                self._path,
                before,
                len(_migrations.MIGRATIONS),
            )
        self._closing = False
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")
        self._cleanup.start()
        self._cleanup.request()  # what a crash may have left, and a VACUUM still owed

    async def close(self) -> None:
        if self._db is None:
            return
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self._cleanup.stop()
        if self._cleanup.owed:
            await self._cleanup.now()  # a last try; a VACUUM still owed is noted in the file
        await self._disconnect()

    async def _disconnect(self) -> None:
        """Close the connection on its thread, then the thread."""
        db, thread = self._db, self._thread
        self._db = self._thread = None
        if db is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, db.close)
        if thread is not None:
            thread.shutdown()  # idle by now: returns at once

    async def commit(self, commit: Commit) -> bool:
        return await self._queue(_encode(commit))

    async def _queue(self, write: _Encoded | _Sent) -> bool:
        """Queue a write for the next group and wait until its group is durable."""
        if self._writer is None or self._closing:
            raise StoreError("the store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(write, future))
        self._wake.set()
        return await future

    async def load_state(self, client_id: str) -> dict[str, object] | None:
        row = await self._fetchone("SELECT state FROM clients WHERE client_id = ?", (client_id,))
        return None if row is None else _object(row[0])

    async def load_versioned(self, client_id: str) -> tuple[dict[str, object] | None, int]:
        row = await self._fetchone("SELECT state, version FROM clients WHERE client_id = ?",
                                   (client_id,))
        return (None, 0) if row is None else (_object(row[0]), int(row[1]))

    async def client_ids(self) -> list[str]:
        rows = await self._fetchall("SELECT client_id FROM clients ORDER BY client_id", ())
        return [str(row[0]) for row in rows]

    async def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        rows = await self._fetchall(
            """SELECT id, client_id, chat_id, payload, attempts, not_before FROM outbox AS o
               WHERE (not_before IS NULL OR not_before <= :now)
                 AND NOT EXISTS (
                     SELECT 1 FROM outbox AS earlier
                     WHERE earlier.client_id = o.client_id AND earlier.chat_id IS o.chat_id
                       AND earlier.id < o.id AND earlier.not_before > :now)
               ORDER BY id LIMIT :limit""",
            {"now": _ts(now), "limit": limit},
        )
        return [
            OutboxRow(
                id=row[0],
                client_id=row[1],
                chat_id=row[2],
                payload=_object(row[3]),
                attempts=row[4],
                not_before=None if row[5] is None else _dt(row[5]),
            )
            for row in rows
        ]

    async def mark_sent(
        self, outbox_id: int, sent_at: datetime, message_ids: Sequence[int] = ()
    ) -> None:
        await self._queue(_Sent(outbox_id, _ts(sent_at), tuple(message_ids)))
        self._cleanup.request(self._sent_cleanup_delay)

    async def changed_elsewhere(self) -> bool:
        # data_version changes when another connection commits, never for this one's own.
        version = (await self._fetchone("PRAGMA data_version", ()))[0]
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        if changed:  # e.g. `rehearse erase` held off by a reader: its clean-up is owed here
            self._cleanup.request()
        return bool(changed)

    async def record_sent(
        self, client_id: str, chat_id: int, message_ids: Sequence[int], sent_at: datetime
    ) -> None:
        at = _ts(sent_at)

        def job(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _remember_sent(conn, client_id, chat_id, message_ids, at)

        await self._run(job)

    async def defer_outbox(self, outbox_id: int, not_before: datetime, attempts: int) -> None:
        await self._write(
            "UPDATE outbox SET not_before = ?, attempts = ? WHERE id = ?",
            (_ts(not_before), attempts, outbox_id),
        )

    async def recent_sent_messages(self, client_id: str, since: datetime) -> list[tuple[int, int]]:
        rows = await self._fetchall(
            """SELECT chat_id, message_id FROM sent_messages
               WHERE client_id = ? AND sent_at >= ? ORDER BY sent_at, message_id""",
            (client_id, _ts(since)),
        )
        return [(int(row[0]), int(row[1])) for row in rows]

    async def due_timers(self, now: datetime) -> list[DueTimer]:
        rows = await self._fetchall(
            """SELECT client_id, kind, due, payload FROM timers
               WHERE due <= ? ORDER BY due, client_id, kind""",
            (_ts(now),),
        )
        return [DueTimer(row[0], row[1], _dt(row[2]), _object(row[3])) for row in rows]

    async def ledger(
        self, client_id: str, kinds: Collection[str] | None = None
    ) -> list[LedgerRow]:
        rows = await self._fetchall(
            """SELECT seq, at, kind, data FROM ledger
               WHERE client_id = :client AND (:kinds IS NULL
                     OR kind IN (SELECT value FROM json_each(:kinds)))
               ORDER BY seq""",
            {"client": client_id, "kinds": None if kinds is None else json.dumps(list(kinds))},
        )
        return [LedgerRow(row[0], client_id, _dt(row[1]), row[2], _object(row[3])) for row in rows]

    async def answers(self, client_id: str) -> list[StoredAnswer]:
        rows = await self._fetchall(
            "SELECT step, text, at, kind FROM answers WHERE client_id = ? ORDER BY at, id",
            (client_id,),
        )
        return [StoredAnswer(row[0], row[1], _dt(row[2]), row[3]) for row in rows]

    async def latest_answer(self, client_id: str, kind: str) -> StoredAnswer | None:
        row = await self._fetchone(
            """SELECT step, text, at, kind FROM answers WHERE client_id = ? AND kind = ?
               ORDER BY at DESC, id DESC LIMIT 1""",
            (client_id, kind),
        )
        return None if row is None else StoredAnswer(row[0], row[1], _dt(row[2]), row[3])

    async def safety_plans(self, client_id: str, *, newest: bool = False) -> list[PlanRecord]:
        rows = await self._fetchall(
            f"SELECT {_PLAN_COLUMNS} FROM safety_plans WHERE client_id = ?1"
            + (_NEWEST_PLANS.replace("%s", "?1") if newest else "") + " ORDER BY version",
            (client_id,),
        )
        return [PlanRecord(parts=json.loads(row[6]), author=row[2], status=row[3],
                           at=_dt(row[1]), changed=json.loads(row[4]), suggestion=row[5],
                           version=row[0]) for row in rows]

    async def export(self, client_id: str) -> dict[str, object]:
        return await self._run(lambda conn: _export(conn, client_id))

    async def erase(self, client_id: str, keep_event: str | None = None) -> None:
        await self._run(lambda conn: _erase(conn, client_id, keep_event))
        await self._cleanup.now()

    async def cleaned(self, timeout: float = 0.0) -> bool:  # noqa: ASYNC109
        return await self._cleanup.settled(timeout)

    async def purge(
        self,
        now: datetime,
        *,
        ledger_days: int,
        answers_days: int,
        technical_days: int = 2,
    ) -> int:
        if min(ledger_days, answers_days, technical_days) < 0:
            raise ValueError("retention periods must not be negative")
        ledger_before = _ts(now - timedelta(days=ledger_days))
        answers_before = _ts(now - timedelta(days=answers_days))
        technical_before = _ts(now - timedelta(days=technical_days))
        deleted = await self._run(
            lambda conn: _purge(conn, ledger_before, answers_before, technical_before)
        )
        if deleted:
            await self._cleanup.now()
        return deleted

    async def add_invite(self, invite: Invite) -> None:
        await self._write(
            f"INSERT INTO invites ({_INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                invite.code_hash,
                invite.script_id,
                invite.max_level,
                _ts(invite.expires_at),
                _ts(invite.created_at),
                invite.redeemed_by,
                None if invite.redeemed_at is None else _ts(invite.redeemed_at),
                invite.therapist,
            ),
        )

    async def redeem_invite(self, code_hash: str, client_id: str, now: datetime) -> Invite | None:
        at = _ts(now)
        return await self._run(lambda conn: _redeem_invite(conn, code_hash, client_id, at))

    async def list_invites(self) -> list[Invite]:
        rows = await self._fetchall(
            f"SELECT {_INVITE_COLUMNS} FROM invites ORDER BY created_at, code_hash", ()
        )
        return [_invite(row) for row in rows]

    async def therapist_of(self, client_id: str) -> CaseloadEntry | None:
        row = await self._fetchone(
            f"SELECT {_CASELOAD_COLUMNS} FROM caseload WHERE client_id = ?", (client_id,))
        return None if row is None else _caseload_entry(row)

    async def caseload(self, therapist: str | None = None) -> list[CaseloadEntry]:
        rows = await self._fetchall(
            f"""SELECT {_CASELOAD_COLUMNS} FROM caseload
                WHERE :therapist IS NULL OR therapist = :therapist ORDER BY client_id""",
            {"therapist": therapist},
        )
        return [_caseload_entry(row) for row in rows]

    async def assign_therapist(
        self, client_id: str, therapist: str | None, now: datetime
    ) -> None:
        if therapist is None:
            await self._write("DELETE FROM caseload WHERE client_id = ?", (client_id,))
            return
        if not therapist:
            raise ValueError("a therapist id must not be empty")
        at = _ts(now)
        await self._run(lambda conn: _assign(conn, client_id, therapist, at))

    async def mark_looked(self, client_id: str, therapist: str, at: datetime) -> None:
        await self._write(
            "UPDATE caseload SET looked_at = ? WHERE client_id = ? AND therapist = ?",
            (_ts(at), client_id, therapist),
        )

    async def failed_codes(self, client_id: str, now: datetime, window: timedelta) -> int:
        row = await self._fetchone(
            "SELECT count(*) FROM failed_codes WHERE client_id = ? AND at > ?",
            (client_id, _ts(now - window)),
        )
        return int(row[0])

    async def record_failed_code(self, client_id: str, now: datetime, window: timedelta) -> int:
        now_text, window_start = _ts(now), _ts(now - window)
        return await self._run(
            lambda conn: _record_failed_code(conn, client_id, now_text, window_start)
        )

    async def refuse_group(self, chat_id: int) -> bool:
        return bool(await self._write(
            "INSERT INTO refused_groups (chat_id) VALUES (?) ON CONFLICT DO NOTHING", (chat_id,)))

    async def enqueue_update(
        self, update_id: int, client_id: str, body: Mapping[str, object], at: datetime,
        *, readable: bool = True,
    ) -> bool:
        return bool(await self._write(
            """INSERT INTO updates (update_id, client_id, body, readable, received_at)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (update_id, client_id, _json(body), int(readable), _ts(at))))

    async def claim_updates(self, owner: str, limit: int, lease: timedelta) -> list[QueuedUpdate]:
        days = lease / timedelta(days=1)
        rows = await self._run(lambda conn: _claim_updates(conn, owner, limit, days))
        return [QueuedUpdate(row[0], _object(row[1]), bool(row[2])) for row in rows]

    async def renew_claims(self, owner: str, lease: timedelta) -> None:
        await self._write(
            "UPDATE updates SET lease_until = julianday('now') + ? "
            "WHERE lease_owner = ? AND NOT handled", (lease / timedelta(days=1), owner))

    async def finish_updates(self, update_ids: Sequence[int]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    """UPDATE updates SET handled = 1, body = NULL, lease_owner = NULL,
                       lease_until = NULL WHERE update_id = ?""",
                    [(update_id,) for update_id in update_ids])

        await self._run(job)
        self._cleanup.request(self._sent_cleanup_delay)  # the bodies' old copies

    async def release_updates(self, owner: str, update_ids: Sequence[int]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    """UPDATE updates SET lease_owner = NULL, lease_until = NULL
                       WHERE update_id = ? AND lease_owner = ?""",
                    [(update_id, owner) for update_id in update_ids])

        await self._run(job)

    async def queued_updates(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM updates WHERE NOT handled", ())
        return int(row[0])

    async def hold_lease(self, name: str, owner: str, lease: timedelta) -> bool:
        row = await self._fetchone(
            """INSERT INTO leases (name, owner, until) VALUES (?, ?, julianday('now') + ?)
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
               WHERE leases.owner = excluded.owner OR leases.until < julianday('now')
               RETURNING owner""", (name, owner, lease / timedelta(days=1)))
        return row is not None

    async def drop_lease(self, name: str, owner: str) -> None:
        await self._write("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    # -- plumbing -------------------------------------------------------------------------

    async def _clean_files(self) -> bool:
        """One clean-up pass; False when it is held off (or failed) and must be retried."""
        try:
            return await self._run(_clean)
        except StoreError as exc:
            _LOG.warning("could not clean up the database files yet (%s); trying again", exc)
            return False

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `job` on the connection's thread as one call; wrap SQLite errors.

        A whole transaction is one call: a thread hop per statement (~80 µs) would cost more
        than the fsync that group commit saves.
        """
        db = self._db
        if db is None:
            raise StoreError("the store is not open")
        return await self._on_thread(lambda: job(db))

    async def _on_thread(self, call: Callable[[], _T]) -> _T:
        """Run `call` on the database thread; wrap SQLite errors."""
        if self._thread is None:
            raise StoreError("the store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def _fetchone(self, sql: str, params: Sequence[object]) -> Any:
        return await self._run(lambda conn: conn.execute(sql, params).fetchone())

    async def _fetchall(
        self, sql: str, params: Sequence[object] | Mapping[str, object]
    ) -> list[Any]:
        return await self._run(lambda conn: conn.execute(sql, params).fetchall())

    async def _write(self, sql: str, params: Sequence[object]) -> int:
        """Run one statement as its own transaction; return the number of changed rows."""
        return await self._run(lambda conn: conn.execute(sql, params).rowcount)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    size = min(len(self._pending), MAX_GROUP)
                    await self._write_group([self._pending.popleft() for _ in range(size)])
                if self._closing:
                    return
        finally:
            while self._pending:  # only left over if this task was cancelled
                _fail(self._pending.popleft().future, StoreError("the store was closed"))

    async def _write_group(self, group: list[_Pending]) -> None:
        try:
            batch = [pending.write for pending in group]
            outcomes = await self._run(lambda conn: _apply_group(conn, batch))
        except asyncio.CancelledError:
            for pending in group:
                _fail(pending.future, StoreError("cancelled; the commit may or may not be durable"))
            raise
        except Exception as exc:
            for pending in group:
                _fail(pending.future, _error(f"group commit failed: {exc}", exc))
            return
        commits = [p.write for p in group if isinstance(p.write, _Encoded)]
        if any(encoded.drop_answers for encoded in commits):
            self._cleanup.request()  # the dropped answers' old copies (a VACUUM is owed)
        elif any(encoded.cancel_outbox for encoded in commits):
            self._cleanup.request(self._sent_cleanup_delay)  # dropped messages' old copies
        for pending, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, StoreError):
                _fail(pending.future, outcome)
            elif not pending.future.done():
                pending.future.set_result(outcome)


# -- jobs run on the connection's thread ---------------------------------------------------

_INVITE_COLUMNS = (
    "code_hash, script_id, max_level, expires_at, created_at, redeemed_by, redeemed_at, "
    "therapist"
)
_CASELOAD_COLUMNS = "client_id, therapist, since, looked_at"


def _setup(conn: sqlite3.Connection, path: Path) -> int:
    """Check the file, set the PRAGMAs, make sure WAL is on, migrate; return the version found.

    Raises:
        StoreError: The file is not a usable database; the message names it and says what to
            do. Nothing is written to a file that is refused.
    """
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old; 3.37 or newer is needed")
    try:
        problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise StoreError(_damaged(path, str(problem)))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot use WAL on this database (journal_mode is {mode})")
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        return _migrations.migrate(conn, _migrations.MIGRATIONS)
    except _migrations.NewerSchema as exc:
        raise StoreError(
            f"{path} was written by a newer release of Rehearse (schema version {exc.found}; "
            f"this one knows up to {exc.known}): upgrade Rehearse, or restore a backup made "
            "by this release (docs/operations.md, section 9)") from exc
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise StoreError(
                f"{path} is not a SQLite database (or its first page is damaged): check that "
                "storage.database (or --db) names Rehearse's database file, or restore it "
                "from a backup (docs/operations.md, section 7)") from exc
        if exc.sqlite_errorcode == sqlite3.SQLITE_CORRUPT:
            raise StoreError(_damaged(path, str(exc))) from exc
        raise StoreError(f"{path}: cannot use the database ({exc})") from exc


def _damaged(path: Path, problem: str) -> str:
    problem = " ".join(problem.replace("*** in database main ***", "").split())
    return (f"{path} is damaged ({problem}): stop the bot, keep a copy of the file, and "
            "restore the latest backup (docs/operations.md, section 7)")


@contextmanager
def _transaction(
    conn: sqlite3.Connection, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE"
) -> Iterator[None]:
    """Wrap a block in a transaction: IMMEDIATE takes the write lock up front."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _apply_group(
    conn: sqlite3.Connection, group: Sequence[_Encoded | _Sent]
) -> list[bool | StoreError]:
    """Apply writes in one transaction, each in a savepoint; return each outcome."""
    outcomes: list[bool | StoreError] = []
    with _transaction(conn):
        for write in group:
            conn.execute("SAVEPOINT one_commit")
            try:
                outcomes.append(_apply(conn, write) if isinstance(write, _Encoded)
                                else _mark_sent(conn, write))
            except Exception as exc:
                if not conn.in_transaction:  # SQLite rolled back everything (I/O error, full)
                    raise
                conn.execute("ROLLBACK TO one_commit")
                what = (f"commit {write.event_id!r}" if isinstance(write, _Encoded)
                        else f"marking outbox row {write.outbox_id} sent")
                outcomes.append(exc if isinstance(exc, StaleState) else
                                _error(f"{what} failed: {exc}", exc))
            conn.execute("RELEASE one_commit")
    return outcomes


def _apply(conn: sqlite3.Connection, c: _Encoded) -> bool:
    """Apply one commit in the order `Commit` documents; False if its event was seen."""
    new = conn.execute(
        "INSERT INTO inbox (event_id, client_id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (c.event_id, c.client_id, c.at),
    ).rowcount
    if not new:
        return False
    if c.based_on is not None:
        row = conn.execute("SELECT version FROM clients WHERE client_id = ?",
                           (c.client_id,)).fetchone()
        if (0 if row is None else row[0]) != c.based_on:
            raise StaleState(f"the state of the client of {c.event_id!r} changed meanwhile")
    if c.cancel_outbox:
        conn.execute("DELETE FROM outbox WHERE client_id = ? AND json_extract(payload, '$.alert')"
                     " IS NULL", (c.client_id,))
    if c.drop_answers and conn.execute(
        "DELETE FROM answers WHERE client_id = ?", (c.client_id,)
    ).rowcount:
        _owe_vacuum(conn)
    if c.state is not None:
        conn.execute("UPDATE state_versions SET n = n + 1")
        conn.execute(
            """INSERT INTO clients (client_id, state, updated_at, version)
               VALUES (?, ?, ?, (SELECT n FROM state_versions))
               ON CONFLICT (client_id) DO UPDATE
               SET state = excluded.state, updated_at = excluded.updated_at,
                   version = excluded.version""",
            (c.client_id, c.state, c.at),
        )
    if c.ledger:
        conn.executemany(
            "INSERT INTO ledger (client_id, at, kind, data) VALUES (?, ?, ?, ?)", c.ledger
        )
    if c.outbox:
        conn.executemany(
            "INSERT INTO outbox (client_id, chat_id, payload, created_at) VALUES (?, ?, ?, ?)",
            c.outbox,
        )
    if c.answers:
        conn.executemany(
            "INSERT INTO answers (client_id, step, text, at, kind) VALUES (?, ?, ?, ?, ?)",
            c.answers,
        )
    if c.plans:
        conn.executemany(
            """INSERT INTO safety_plans
                   (client_id, version, at, author, status, changed, suggestion, parts)
               VALUES (?1, (SELECT coalesce(max(version), 0) + 1 FROM safety_plans
                            WHERE client_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)""",
            c.plans,
        )
    for kind in c.timers_cancel:
        if kind == "*":
            conn.execute("DELETE FROM timers WHERE client_id = ?", (c.client_id,))
        else:
            conn.execute("DELETE FROM timers WHERE client_id = ? AND kind = ?", (c.client_id, kind))
    if c.timers_set:
        conn.executemany(
            """INSERT INTO timers (client_id, kind, due, payload) VALUES (?, ?, ?, ?)
               ON CONFLICT (client_id, kind) DO UPDATE
               SET due = excluded.due, payload = excluded.payload""",
            c.timers_set,
        )
    return True


def _mark_sent(conn: sqlite3.Connection, sent: _Sent) -> bool:
    """Delete a sent outbox row and remember its messages; False if it was gone already."""
    rows = conn.execute(
        "DELETE FROM outbox WHERE id = ? RETURNING client_id, chat_id", (sent.outbox_id,)
    ).fetchall()
    if rows and rows[0][1] is not None:
        client_id, chat_id = rows[0]
        _remember_sent(conn, client_id, chat_id, sent.message_ids, sent.sent_at)
    return bool(rows)


def _remember_sent(
    conn: sqlite3.Connection, client_id: str, chat_id: int, message_ids: Sequence[int],
    sent_at: str,
) -> None:
    conn.executemany(
        """INSERT OR REPLACE INTO sent_messages (chat_id, message_id, client_id, sent_at)
           VALUES (?, ?, ?, ?)""",
        [(chat_id, message_id, client_id, sent_at) for message_id in message_ids],
    )


def _export(conn: sqlite3.Connection, client_id: str) -> dict[str, object]:
    def rows(sql: str) -> list[Any]:
        return conn.execute(sql, (client_id,)).fetchall()

    with _transaction(conn, "DEFERRED"):
        client = rows("SELECT state, updated_at FROM clients WHERE client_id = ?")
        return {
            "client_id": client_id,
            "state": _object(client[0][0]) if client else None,
            "updated_at": client[0][1] if client else None,
            "ledger": [
                {"seq": seq, "at": at, "kind": kind, "data": _object(data)}
                for seq, at, kind, data in rows(
                    "SELECT seq, at, kind, data FROM ledger WHERE client_id = ? ORDER BY seq"
                )
            ],
            "answers": [
                {"step": step, "text": text, "at": at, "kind": kind}
                for step, text, at, kind in rows(
                    "SELECT step, text, at, kind FROM answers WHERE client_id = ? ORDER BY at, id"
                )
            ],
            "safety_plans": [
                {"version": version, "at": at, "author": author, "status": status,
                 "changed": json.loads(changed), "suggestion": suggestion,
                 "parts": json.loads(parts)}
                for version, at, author, status, changed, suggestion, parts in rows(
                    f"SELECT {_PLAN_COLUMNS} FROM safety_plans WHERE client_id = ? "
                    "ORDER BY version"
                )
            ],
            "timers": [
                {"kind": kind, "due": due, "payload": _object(payload)}
                for kind, due, payload in rows(
                    "SELECT kind, due, payload FROM timers WHERE client_id = ? ORDER BY due, kind"
                )
            ],
            "outbox": [
                {
                    "id": id_,
                    "chat_id": chat_id,
                    "payload": _object(payload),
                    "attempts": attempts,
                    "not_before": not_before,
                    "created_at": created_at,
                }
                for id_, chat_id, payload, attempts, not_before, created_at in rows(
                    """SELECT id, chat_id, payload, attempts, not_before, created_at
                       FROM outbox WHERE client_id = ? ORDER BY id"""
                )
            ],
            "sent_messages": [
                {"chat_id": chat_id, "message_id": message_id, "sent_at": sent_at}
                for chat_id, message_id, sent_at in rows(
                    """SELECT chat_id, message_id, sent_at FROM sent_messages
                       WHERE client_id = ? ORDER BY sent_at, message_id"""
                )
            ],
            "events": [
                {"event_id": event_id, "at": at}
                for event_id, at in rows(
                    "SELECT event_id, at FROM inbox WHERE client_id = ? ORDER BY at, event_id"
                )
            ],
            "failed_codes": [
                at
                for (at,) in rows("SELECT at FROM failed_codes WHERE client_id = ? ORDER BY at, id")
            ],
            "invites": [
                {
                    "script_id": script_id,
                    "max_level": max_level,
                    "created_at": created_at,
                    "expires_at": expires_at,
                    "redeemed_at": redeemed_at,
                    "therapist": therapist,
                }
                for script_id, max_level, created_at, expires_at, redeemed_at, therapist in rows(
                    """SELECT script_id, max_level, created_at, expires_at, redeemed_at,
                              therapist
                       FROM invites WHERE redeemed_by = ? ORDER BY redeemed_at"""
                )
            ],
            "therapist": next(
                ({"therapist": therapist, "since": since, "looked_at": looked_at}
                 for therapist, since, looked_at in rows(
                     "SELECT therapist, since, looked_at FROM caseload WHERE client_id = ?")),
                None,
            ),
        }


def _erase(conn: sqlite3.Connection, client_id: str, keep_event: str | None) -> None:
    with _transaction(conn):
        if keep_event is not None:  # stays handled, as nobody's: a redelivery changes nothing
            conn.execute("UPDATE inbox SET client_id = '' WHERE event_id = ? AND client_id = ?",
                         (keep_event, client_id))
        for table in _CLIENT_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))
        conn.execute("UPDATE invites SET redeemed_by = NULL WHERE redeemed_by = ?", (client_id,))
        # Handled updates stay, as nobody's, for dedup; unhandled ones (written after the
        # erasure was asked for) are handled as a stranger's.
        conn.execute("UPDATE updates SET client_id = '' WHERE client_id = ? AND handled",
                     (client_id,))
        _owe_vacuum(conn)


def _purge(
    conn: sqlite3.Connection, ledger_before: str, answers_before: str, technical_before: str
) -> int:
    deleted = 0
    with _transaction(conn):
        for sql, before in (
            ("DELETE FROM ledger WHERE at < ?", ledger_before),
            ("DELETE FROM answers WHERE at < ?", answers_before),
            ("DELETE FROM inbox WHERE at < ?", technical_before),
            ("DELETE FROM updates WHERE handled AND received_at < ?", technical_before),
            ("DELETE FROM sent_messages WHERE sent_at < ?", technical_before),
            ("DELETE FROM failed_codes WHERE at < ?", technical_before),
        ):
            deleted += conn.execute(sql, (before,)).rowcount
        if deleted:
            _owe_vacuum(conn)
    return deleted


def _owe_vacuum(conn: sqlite3.Connection) -> None:
    """Note, in the transaction that deletes rows, that a `VACUUM` is owed (see `_clean`)."""
    conn.execute("INSERT OR REPLACE INTO cleanup_due (id, task) VALUES (1, 'vacuum')")


def _clean(conn: sqlite3.Connection) -> bool:
    """Remove old copies of deleted rows and sent messages from the files.

    secure_delete zeroes freed cells and pages, but when SQLite rebalances a b-tree page
    it can leave stale cell bytes in the page's unused gap, which deleting the rows does
    not touch. VACUUM (when rows were deleted) rebuilds every page from the live rows only;
    the TRUNCATE checkpoint then writes the newest pages over the database file and empties
    the WAL, whose frames still hold old page images. The checkpoint does not wait: while
    another connection's read transaction needs the old frames it fails, and the note in
    ``cleanup_due`` (``truncate`` once the VACUUM is done) keeps the rest owed.

    Returns:
        True when nothing is owed any more; False when a reader held the checkpoint off.
    """
    owed = conn.execute("SELECT task FROM cleanup_due").fetchone()
    if owed is not None and owed[0] == "vacuum":
        conn.execute("VACUUM")
        conn.execute("UPDATE cleanup_due SET task = 'truncate'")
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if busy:
        return False
    if owed is not None:
        conn.execute("DELETE FROM cleanup_due")  # writes only this table's own, empty page
    return True


def _redeem_invite(
    conn: sqlite3.Connection, code_hash: str, client_id: str, now: str
) -> Invite | None:
    with _transaction(conn):
        fresh = conn.execute(
            """UPDATE invites SET redeemed_by = ?, redeemed_at = ?
               WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?""",
            (client_id, now, code_hash, now),
        ).rowcount
        row = conn.execute(
            f"SELECT {_INVITE_COLUMNS} FROM invites WHERE code_hash = ? AND redeemed_by = ?",
            (code_hash, client_id),
        ).fetchone()
        invite = None if row is None else _invite(row)
        if fresh and invite is not None and invite.therapist is not None:
            _assign(conn, client_id, invite.therapist, now)
    return invite


def _assign(conn: sqlite3.Connection, client_id: str, therapist: str, now: str) -> None:
    """Put the client in the therapist's caseload (inside the caller's transaction, if any)."""
    conn.execute(
        """INSERT INTO caseload (client_id, therapist, since, looked_at) VALUES (?, ?, ?, NULL)
           ON CONFLICT (client_id) DO UPDATE
           SET therapist = excluded.therapist, since = excluded.since, looked_at = NULL
           WHERE caseload.therapist <> excluded.therapist""",
        (client_id, therapist, now),
    )


def _claim_updates(conn: sqlite3.Connection, owner: str, limit: int, days: float) -> list[Any]:
    with _transaction(conn):
        rows = conn.execute(
            """SELECT u.update_id, u.body, u.readable FROM updates AS u
               WHERE NOT u.handled
                 AND u.update_id = (SELECT min(h.update_id) FROM updates AS h
                                    WHERE h.client_id = u.client_id AND NOT h.handled)
                 AND (u.lease_until IS NULL OR u.lease_until < julianday('now'))
               ORDER BY u.update_id LIMIT ?""", (limit,)).fetchall()
        conn.executemany(
            """UPDATE updates SET lease_owner = ?, lease_until = julianday('now') + ?
               WHERE update_id = ?""", [(owner, days, row[0]) for row in rows])
    return rows


def _record_failed_code(
    conn: sqlite3.Connection, client_id: str, now: str, window_start: str
) -> int:
    with _transaction(conn):
        conn.execute(
            "DELETE FROM failed_codes WHERE client_id = ? AND at <= ?", (client_id, window_start)
        )
        conn.execute("INSERT INTO failed_codes (client_id, at) VALUES (?, ?)", (client_id, now))
        count = conn.execute(
            "SELECT count(*) FROM failed_codes WHERE client_id = ?", (client_id,)
        ).fetchone()[0]
    return int(count)


# -- encoding --------------------------------------------------------------------------------


def _encode(c: Commit) -> _Encoded:
    """Validate and encode a commit before it is queued, so bad input fails the caller."""
    if not c.event_id or not c.client_id:
        raise ValueError("a commit needs an event_id and a client_id")
    at = _ts(c.at)
    return _Encoded(
        event_id=c.event_id,
        client_id=c.client_id,
        at=at,
        state=None if c.state is None else _json(c.state),
        ledger=[(c.client_id, _ts(r.at), r.kind, _json(r.data)) for r in c.ledger],
        outbox=[(m.client_id, m.chat_id, _json(m.payload), at) for m in c.outbox],
        answers=[(c.client_id, a.step, a.text, _ts(a.at), a.kind) for a in c.answers],
        plans=[_plan_row(c.client_id, p) for p in c.plans],
        timers_set=[(c.client_id, t.kind, _ts(t.due), _json(t.payload)) for t in c.timers_set],
        timers_cancel=list(c.timers_cancel),
        cancel_outbox=c.cancel_outbox,
        drop_answers=c.drop_answers,
        based_on=c.based_on,
    )


#: The columns of a safety plan's version, in the order `PlanRecord` is read from them.
_PLAN_COLUMNS = "version, at, author, status, changed, suggestion, parts"
#: Only the newest version of each status (``%s``: the client), for `Store.safety_plans`.
_NEWEST_PLANS = (" AND version IN (SELECT max(version) FROM safety_plans WHERE client_id = %s"
                 " GROUP BY status)")


def _plan_row(
    client_id: str, plan: PlanRecord
) -> tuple[str, str, str, str, str, int | None, str]:
    """A plan version as the parameters of its row (the version number comes from SQL)."""
    if plan.status not in ("accepted", "suggested") or not plan.author:
        raise ValueError(f"a plan version needs an author and a status, not {plan!r}")
    return (client_id, _ts(plan.at), plan.author, plan.status, _json_list(plan.changed),
            plan.suggestion, _json(plan.parts))


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _ts(value: datetime) -> str:
    """Encode an aware datetime as fixed-width UTC ISO 8601 text (sorts as time)."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value!r}; pass a timezone-aware time")
    utc = (value - offset).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _json(value: Mapping[str, object]) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object (a mapping), got {type(value).__name__}")
    return json.dumps(
        value, default=_plain, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _object(text: str) -> dict[str, object]:
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise StoreError("stored JSON is not an object")
    return value


def _invite(row: Any) -> Invite:
    (code_hash, script_id, max_level, expires_at, created_at, redeemed_by, redeemed_at,
     therapist) = row
    return Invite(
        code_hash=code_hash,
        script_id=script_id,
        max_level=max_level,
        expires_at=_dt(expires_at),
        created_at=_dt(created_at),
        redeemed_by=redeemed_by,
        redeemed_at=None if redeemed_at is None else _dt(redeemed_at),
        therapist=therapist,
    )


def _caseload_entry(row: Any) -> CaseloadEntry:
    client_id, therapist, since, looked_at = row
    return CaseloadEntry(client_id, therapist, _dt(since),
                         None if looked_at is None else _dt(looked_at))


def _error(message: str, cause: BaseException) -> StoreError:
    error = StoreError(message)
    error.__cause__ = cause
    return error


def _fail(future: asyncio.Future[bool], error: StoreError) -> None:
    if not future.done():
        future.set_exception(error)


def _create_private(path: Path) -> None:
    """Create the database file owner-only (0600) and tighten an existing one.

    SQLite gives the -wal and -shm files the database file's permissions.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            file.chmod(0o600)
