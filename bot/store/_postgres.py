"""PostgreSQL backend: psycopg 3 (asyncio) with a connection pool.

Every SQL statement of this backend lives here or in `_postgres_schema`. Each commit is one
transaction on a pooled connection; commits of different clients run concurrently on
different connections (PostgreSQL flushes the WAL of transactions committing together in
one go, so they share the fsync the way the SQLite store's group commit does). Commits of
one client are applied one at a time, in submission order.

Errors: PostgreSQL's messages can quote the data of the row at fault (a constraint's
``DETAIL``, a JSON error's ``CONTEXT``), and what clients type must never reach a log, so a
`StoreError` carries only the primary message and the SQLSTATE, and never chains the driver's
exception. A failure caused by the data (SQLSTATE classes 22 and 23, or text PostgreSQL
cannot hold) is a `DataRefused`: trying again cannot help.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bot._locks import KeyedLocks
from bot.store import _postgres_schema as schema
from bot.store._base import (
    CaseloadEntry,
    Commit,
    DataRefused,
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
from bot.store._migrations import NewerSchema
from bot.store._sqlite import _NEWEST_PLANS, _PLAN_COLUMNS, _encode, _Encoded, _json, _ts

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
Connection = psycopg.AsyncConnection[Any]

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
#: Tables a clean-up pass may vacuum (their names are put into SQL: only these).
_VACUUMED = frozenset({*_CLIENT_TABLES, "invites", "updates"})
#: Seconds to wait for a free pooled connection before an operation fails.
POOL_TIMEOUT = 10.0
#: Seconds before listening for other workers again after the connection was lost.
LISTEN_RETRY = 2.0
#: The channels other workers are told on (delivered when the transaction commits).
_NOTIFY_OUTBOX = "rehearse_outbox"
_NOTIFY_UPDATES = "rehearse_updates"
_DATA_CLASSES = ("22", "23")  # data exception, integrity constraint violation


class PostgresStore(Store):
    """`Store` on a PostgreSQL database (14 or newer), shared by any number of processes.

    Deleted rows stay in the table files as dead row versions until ``VACUUM`` removes them,
    and their bytes until new rows overwrite them. The transaction that deletes rows (an
    erasure, dropped answers, the purge) also writes a durable note (``vacuum_due``); a
    clean-up pass then rewrites the tables an erasure touched (``VACUUM FULL``) and vacuums
    those the purge did, once no other session's snapshot can still see the rows (see
    `_clean`). Sent messages are vacuumed from the outbox `sent_cleanup_delay` seconds after
    sending. What no ``VACUUM`` reaches — the WAL, archives, backups, replicas — is the
    operator's to handle (docs/privacy.md, docs/operations.md).

    Args:
        url: ``postgresql://user@host:port/database`` (no password; see `password`).
        password: The password, if the server asks for one (from the environment; libpq's
            own ``PGPASSWORD`` and ``~/.pgpass`` work too).
        pool_size: Most connections this process opens.
        prepared_statements: Let psycopg prepare frequent statements; switch off behind a
            PgBouncer in transaction mode without ``max_prepared_statements``.
        cleanup_retry: Seconds between clean-up passes while they are held off.
        sent_cleanup_delay: Seconds after a message was sent before the outbox is vacuumed.
        connect_timeout: Seconds to wait for the server when opening.
    """

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        pool_size: int = 10,
        prepared_statements: bool = True,
        cleanup_retry: float = 5.0,
        sent_cleanup_delay: float = 1.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._shown = shown_url(url)
        self._connect: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": 5 if prepared_statements else None,
            "connect_timeout": max(1, round(connect_timeout)),
        }
        if password is not None:
            self._connect["password"] = password
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._closing = False
        self._client_locks = KeyedLocks()
        self._commits = 0
        self._no_commits = asyncio.Event()
        self._cleanup = Cleanup(self._clean_tables, cleanup_retry)
        self._sent_cleanup_delay = sent_cleanup_delay
        #: Tables rows were deleted from that hold sent or handled texts (outbox, updates).
        self._emptied: set[str] = set()
        self._erasures: int | None = None

    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("the store is already open")
        try:  # one connection first: its error says what is wrong (the pool's only "timeout")
            conn = await psycopg.AsyncConnection.connect(self._url, **self._connect)
        except psycopg.Error as exc:
            raise StoreError(f"{self._shown}: cannot connect to PostgreSQL "
                             f"({_one_line(exc)}); check storage.database, the password in "
                             "the environment, and that the server is running") from None
        try:
            before = await _migrate(conn, self._shown)
        finally:
            await conn.close()
        if before != len(schema.MIGRATIONS):
            _LOG.info("migrated %s from schema version %d to %d", self._shown, before,
                      len(schema.MIGRATIONS))
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self._url, kwargs=self._connect, min_size=1, max_size=self._pool_size,
            open=False, timeout=POOL_TIMEOUT, name="rehearse")
        try:
            await pool.open(wait=True, timeout=self._connect["connect_timeout"] + 5)
        except PoolTimeout:
            await pool.close()
            raise StoreError(f"{self._shown}: PostgreSQL accepted one connection but not "
                             "the pool's; check max_connections") from None
        self._pool = pool
        self._closing = False
        self._no_commits = asyncio.Event()
        self._no_commits.set()
        self._cleanup.start()
        self._cleanup.request()  # a VACUUM a crash left owed

    async def close(self) -> None:
        pool = self._pool
        if pool is None:
            return
        self._closing = True
        await self._no_commits.wait()
        await self._cleanup.stop()
        if self._cleanup.owed:
            await self._cleanup.now()  # a last try; a VACUUM still owed stays noted
        self._pool = None
        await pool.close()

    async def commit(self, commit: Commit) -> bool:
        encoded = _encode(commit)
        if self._pool is None or self._closing:
            raise StoreError("the store is not open")
        self._commits += 1
        self._no_commits.clear()
        try:
            async with self._client_locks.hold(encoded.client_id):
                applied = await self._run(lambda conn: _apply(conn, encoded),
                                          f"commit {encoded.event_id!r} failed")
        finally:
            self._commits -= 1
            if not self._commits:
                self._no_commits.set()
        if encoded.drop_answers:
            self._cleanup.request()
        elif encoded.cancel_outbox:
            self._request_vacuum("outbox")
        return applied

    async def load_state(self, client_id: str) -> dict[str, object] | None:
        row = await self._one("SELECT state FROM clients WHERE client_id = %s", (client_id,))
        return None if row is None else _object(row[0])

    async def load_versioned(self, client_id: str) -> tuple[dict[str, object] | None, int]:
        row = await self._one("SELECT state, version FROM clients WHERE client_id = %s",
                              (client_id,))
        return (None, 0) if row is None else (_object(row[0]), int(row[1]))

    async def client_ids(self) -> list[str]:
        rows = await self._all("SELECT client_id FROM clients ORDER BY client_id", ())
        return [str(row[0]) for row in rows]

    async def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        rows = await self._all(
            """SELECT id, client_id, chat_id, payload, attempts, not_before FROM outbox AS o
               WHERE (not_before IS NULL OR not_before <= %(now)s)
                 AND NOT EXISTS (
                     SELECT 1 FROM outbox AS earlier
                     WHERE earlier.client_id = o.client_id
                       AND earlier.chat_id IS NOT DISTINCT FROM o.chat_id
                       AND earlier.id < o.id AND earlier.not_before > %(now)s)
               ORDER BY id LIMIT %(limit)s""",
            {"now": _ts(now), "limit": limit},
        )
        return [
            OutboxRow(id=row[0], client_id=row[1], chat_id=row[2], payload=_object(row[3]),
                      attempts=row[4], not_before=_utc(row[5]))
            for row in rows
        ]

    async def mark_sent(
        self, outbox_id: int, sent_at: datetime, message_ids: Sequence[int] = ()
    ) -> None:
        at = _ts(sent_at)

        async def job(conn: Connection) -> None:
            async with conn.transaction():
                cursor = await conn.execute(
                    "DELETE FROM outbox WHERE id = %s RETURNING client_id, chat_id",
                    (outbox_id,))
                row = await cursor.fetchone()
                if row is not None and row[1] is not None:
                    await _remember_sent(conn, row[0], row[1], message_ids, at)

        await self._run(job)
        self._request_vacuum("outbox")

    async def record_sent(
        self, client_id: str, chat_id: int, message_ids: Sequence[int], sent_at: datetime
    ) -> None:
        at = _ts(sent_at)
        await self._run(lambda conn: _remember_sent(conn, client_id, chat_id, message_ids, at))

    async def defer_outbox(self, outbox_id: int, not_before: datetime, attempts: int) -> None:
        await self._write("UPDATE outbox SET not_before = %s, attempts = %s WHERE id = %s",
                          (_ts(not_before), attempts, outbox_id))

    async def drop_outbox(self, client_id: str) -> int:
        dropped = await self._write("DELETE FROM outbox WHERE client_id = %s", (client_id,))
        if dropped:
            self._request_vacuum("outbox")
        return dropped

    async def recent_sent_messages(self, client_id: str, since: datetime) -> list[tuple[int, int]]:
        rows = await self._all(
            """SELECT chat_id, message_id FROM sent_messages
               WHERE client_id = %s AND sent_at >= %s ORDER BY sent_at, message_id""",
            (client_id, _ts(since)),
        )
        return [(int(row[0]), int(row[1])) for row in rows]

    async def due_timers(self, now: datetime) -> list[DueTimer]:
        rows = await self._all(
            """SELECT client_id, kind, due, payload FROM timers
               WHERE due <= %s ORDER BY due, client_id, kind""",
            (_ts(now),),
        )
        return [DueTimer(row[0], row[1], _at(row[2]), _object(row[3])) for row in rows]

    async def ledger(
        self, client_id: str, kinds: Collection[str] | None = None
    ) -> list[LedgerRow]:
        rows = await self._all(
            """SELECT seq, at, kind, data FROM ledger
               WHERE client_id = %(client)s
                 AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
               ORDER BY seq""",
            {"client": client_id, "kinds": None if kinds is None else list(kinds)},
        )
        return [LedgerRow(row[0], client_id, _at(row[1]), row[2], _object(row[3]))
                for row in rows]

    async def answers(self, client_id: str) -> list[StoredAnswer]:
        rows = await self._all(
            "SELECT step, text, at, kind FROM answers WHERE client_id = %s ORDER BY at, id",
            (client_id,),
        )
        return [StoredAnswer(row[0], row[1], _at(row[2]), row[3]) for row in rows]

    async def latest_answer(self, client_id: str, kind: str) -> StoredAnswer | None:
        row = await self._one(
            """SELECT step, text, at, kind FROM answers WHERE client_id = %s AND kind = %s
               ORDER BY at DESC, id DESC LIMIT 1""",
            (client_id, kind),
        )
        return None if row is None else StoredAnswer(row[0], row[1], _at(row[2]), row[3])

    async def safety_plans(self, client_id: str, *, newest: bool = False) -> list[PlanRecord]:
        rows = await self._all(
            f"SELECT {_PLAN_COLUMNS} FROM safety_plans WHERE client_id = %(client)s"
            + (_NEWEST_PLANS.replace("%s", "%(client)s") if newest else "")
            + " ORDER BY version",
            {"client": client_id},
        )
        return [PlanRecord(parts=row[6], author=row[2], status=row[3], at=_at(row[1]),
                           changed=row[4], suggestion=row[5], version=row[0]) for row in rows]

    async def export(self, client_id: str) -> dict[str, object]:
        return await self._run(lambda conn: _export(conn, client_id))

    async def changed_elsewhere(self) -> bool:
        row = await self._one("SELECT erasures FROM changes WHERE id = 1", ())
        erasures = int(row[0]) if row is not None else 0
        changed = self._erasures is not None and erasures != self._erasures
        self._erasures = erasures
        if changed:  # an erasure elsewhere whose process may have died before its VACUUM
            self._cleanup.request()
        return changed

    async def erase(self, client_id: str, keep_event: str | None = None) -> None:
        erasures = await self._run(lambda conn: _erase(conn, client_id, keep_event))
        if self._erasures is not None and erasures == self._erasures + 1:
            self._erasures = erasures  # this store's own erasure is no news to it
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
            lambda conn: _purge(conn, ledger_before, answers_before, technical_before))
        if deleted:
            await self._cleanup.now()
        return deleted

    async def add_invite(self, invite: Invite) -> None:
        await self._write(
            f"INSERT INTO invites ({_INVITE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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

        async def job(conn: Connection) -> Invite | None:
            async with conn.transaction():
                cursor = await conn.execute(
                    """UPDATE invites SET redeemed_by = %(client)s, redeemed_at = %(now)s
                       WHERE code_hash = %(hash)s AND redeemed_at IS NULL
                         AND expires_at > %(now)s""",
                    {"client": client_id, "now": at, "hash": code_hash})
                fresh = cursor.rowcount
                cursor = await conn.execute(
                    f"SELECT {_INVITE_COLUMNS} FROM invites "
                    "WHERE code_hash = %s AND redeemed_by = %s", (code_hash, client_id))
                row = await cursor.fetchone()
                invite = None if row is None else _invite(row)
                if fresh and invite is not None and invite.therapist is not None:
                    await _assign(conn, client_id, invite.therapist, at)
            return invite

        return await self._run(job)

    async def list_invites(self) -> list[Invite]:
        rows = await self._all(
            f"SELECT {_INVITE_COLUMNS} FROM invites ORDER BY created_at, code_hash", ())
        return [_invite(row) for row in rows]

    async def therapist_of(self, client_id: str) -> CaseloadEntry | None:
        row = await self._one(
            f"SELECT {_CASELOAD_COLUMNS} FROM caseload WHERE client_id = %s", (client_id,))
        return None if row is None else _caseload_entry(row)

    async def caseload(self, therapist: str | None = None) -> list[CaseloadEntry]:
        rows = await self._all(
            f"""SELECT {_CASELOAD_COLUMNS} FROM caseload
                WHERE %(therapist)s::text IS NULL OR therapist = %(therapist)s
                ORDER BY client_id""",
            {"therapist": therapist},
        )
        return [_caseload_entry(row) for row in rows]

    async def assign_therapist(
        self, client_id: str, therapist: str | None, now: datetime
    ) -> None:
        if therapist is None:
            await self._write("DELETE FROM caseload WHERE client_id = %s", (client_id,))
            return
        if not therapist:
            raise ValueError("a therapist id must not be empty")
        at = _ts(now)
        await self._run(lambda conn: _assign(conn, client_id, therapist, at))

    async def mark_looked(self, client_id: str, therapist: str, at: datetime) -> None:
        await self._write(
            "UPDATE caseload SET looked_at = %s WHERE client_id = %s AND therapist = %s",
            (_ts(at), client_id, therapist),
        )

    async def failed_codes(self, client_id: str, now: datetime, window: timedelta) -> int:
        row = await self._one(
            "SELECT count(*) FROM failed_codes WHERE client_id = %s AND at > %s",
            (client_id, _ts(now - window)))
        return int(row[0]) if row is not None else 0

    async def record_failed_code(self, client_id: str, now: datetime, window: timedelta) -> int:
        now_text, window_start = _ts(now), _ts(now - window)

        async def job(conn: Connection) -> int:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM failed_codes WHERE client_id = %s AND at <= %s",
                    (client_id, window_start))
                await conn.execute("INSERT INTO failed_codes (client_id, at) VALUES (%s, %s)",
                                   (client_id, now_text))
                cursor = await conn.execute(
                    "SELECT count(*) FROM failed_codes WHERE client_id = %s", (client_id,))
                row = await cursor.fetchone()
            return int(row[0]) if row is not None else 0

        return await self._run(job)

    async def refuse_group(self, chat_id: int) -> bool:
        return bool(await self._write(
            "INSERT INTO refused_groups (chat_id) VALUES (%s) ON CONFLICT DO NOTHING",
            (chat_id,)))

    async def enqueue_update(
        self, update_id: int, client_id: str, body: Mapping[str, object], at: datetime,
        *, readable: bool = True,
    ) -> bool:
        return bool(await self._write(
            f"""WITH stored AS (
                   INSERT INTO updates (update_id, client_id, body, readable, received_at)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1)
               SELECT pg_notify('{_NOTIFY_UPDATES}', '') FROM stored""",
            (update_id, client_id, _json(body), readable, _ts(at))))

    async def claim_updates(self, owner: str, limit: int, lease: timedelta) -> list[QueuedUpdate]:
        rows = await self._all(
            """WITH heads AS (
                   SELECT u.update_id FROM updates AS u
                   WHERE NOT u.handled
                     AND u.update_id = (SELECT min(h.update_id) FROM updates AS h
                                        WHERE h.client_id = u.client_id AND NOT h.handled)
                     AND (u.lease_until IS NULL OR u.lease_until < clock_timestamp())
                   ORDER BY u.update_id LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED)
               UPDATE updates SET lease_owner = %(owner)s,
                                  lease_until = clock_timestamp() + %(lease)s
               FROM heads WHERE updates.update_id = heads.update_id
               RETURNING updates.update_id, updates.body, updates.readable""",
            {"limit": limit, "owner": owner, "lease": lease})
        return sorted((QueuedUpdate(row[0], _object(row[1]), bool(row[2])) for row in rows),
                      key=lambda update: update.update_id)

    async def renew_claims(self, owner: str, lease: timedelta) -> None:
        await self._write(
            "UPDATE updates SET lease_until = clock_timestamp() + %s "
            "WHERE lease_owner = %s AND NOT handled", (lease, owner))

    async def finish_updates(self, update_ids: Sequence[int]) -> None:
        await self._write(
            """UPDATE updates SET handled = true, body = NULL, lease_owner = NULL,
               lease_until = NULL WHERE update_id = ANY(%s)""", (list(update_ids),))
        self._request_vacuum("updates")  # the bodies' old row versions

    async def release_updates(self, owner: str, update_ids: Sequence[int]) -> None:
        await self._write(
            """UPDATE updates SET lease_owner = NULL, lease_until = NULL
               WHERE update_id = ANY(%s) AND lease_owner = %s""", (list(update_ids), owner))

    async def queued_updates(self) -> int:
        row = await self._one("SELECT count(*) FROM updates WHERE NOT handled", ())
        return int(row[0]) if row is not None else 0

    async def hold_lease(self, name: str, owner: str, lease: timedelta) -> bool:
        row = await self._one(
            """INSERT INTO leases (name, owner, until)
               VALUES (%(name)s, %(owner)s, clock_timestamp() + %(lease)s)
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
               WHERE leases.owner = excluded.owner OR leases.until < clock_timestamp()
               RETURNING owner""", {"name": name, "owner": owner, "lease": lease})
        return row is not None

    async def drop_lease(self, name: str, owner: str) -> None:
        await self._write("DELETE FROM leases WHERE name = %s AND owner = %s", (name, owner))

    async def notifications(self) -> AsyncIterator[str]:
        """``LISTEN`` on a connection of its own (not from the pool), reconnecting when lost.

        Behind a PgBouncer in transaction mode no notification arrives; callers then fall
        back to looking from time to time.
        """
        channels = {_NOTIFY_OUTBOX: "outbox", _NOTIFY_UPDATES: "updates"}
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, **self._connect)
                async with conn:
                    for channel in channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    for kind in channels.values():  # what came before, or while it was lost
                        yield kind
                    async for notify in conn.notifies():
                        if notify.channel in channels:
                            yield channels[notify.channel]
            except psycopg.Error as exc:
                _LOG.warning("listening for other workers failed (%s); again in %.0f s",
                             _one_line(exc), LISTEN_RETRY)
            await asyncio.sleep(LISTEN_RETRY)

    # -- plumbing -------------------------------------------------------------------------

    def _request_vacuum(self, table: str) -> None:
        """Vacuum a table of sent or handled texts soon (sends within the delay share it)."""
        self._emptied.add(table)
        self._cleanup.request(self._sent_cleanup_delay)

    async def _clean_tables(self) -> bool:
        """One clean-up pass; False when it is held off (or failed) and must be retried."""
        emptied, self._emptied = self._emptied, set()
        try:
            done = await self._run(lambda conn: _clean(conn, emptied))
        except StoreError as exc:
            _LOG.warning("could not vacuum deleted rows yet (%s); trying again", exc)
            done = False
        if not done:
            self._emptied |= emptied
        return done

    async def _run(
        self, job: Callable[[Connection], Awaitable[_T]], failed: str | None = None
    ) -> _T:
        """Run `job` on a pooled connection; turn the driver's errors into `StoreError`."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        try:
            async with pool.connection() as conn:
                result = await job(conn)
        except PoolTimeout:
            raise StoreError(f"no connection to PostgreSQL within {POOL_TIMEOUT:.0f} s "
                             f"({self._shown})") from None
        except psycopg.Error as exc:
            raise _store_error(exc, failed) from None
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 spells it
            raise DataRefused(f"{failed or 'the write failed'}: text that is not valid "
                              f"Unicode ({exc.reason})") from None
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Python 3.11's asyncio.wait_for, which the pool waits with, can lose a
            # cancellation that comes as a connection is handed over: honour it here.
            raise asyncio.CancelledError
        return result

    async def _one(self, query: str, params: Any) -> Any:
        async def job(conn: Connection) -> Any:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

        return await self._run(job)

    async def _all(self, query: str, params: Any) -> list[Any]:
        async def job(conn: Connection) -> list[Any]:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

        return await self._run(job)

    async def _write(self, query: str, params: Any) -> int:
        """Run one statement as its own transaction; return the number of changed rows."""
        async def job(conn: Connection) -> int:
            cursor = await conn.execute(query, params)
            return cursor.rowcount

        return await self._run(job)


# -- jobs on one connection ----------------------------------------------------------------

_INVITE_COLUMNS = (
    "code_hash, script_id, max_level, expires_at, created_at, redeemed_by, redeemed_at, "
    "therapist"
)
_CASELOAD_COLUMNS = "client_id, therapist, since, looked_at"


async def _migrate(conn: Connection, shown: str) -> int:
    """Bring the schema up to date under the migration lock; return the version found."""
    known = len(schema.MIGRATIONS)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS rehearse_schema (
                       id integer PRIMARY KEY CHECK (id = 1),
                       version integer NOT NULL)""")
            await conn.execute("INSERT INTO rehearse_schema (id, version) VALUES (1, 0) "
                               "ON CONFLICT DO NOTHING")
            cursor = await conn.execute("SELECT version FROM rehearse_schema")
            row = await cursor.fetchone()
            before = int(row[0]) if row is not None else 0
            if before > known:
                raise NewerSchema(before, known)
        for version in range(before, known):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
                cursor = await conn.execute("SELECT version FROM rehearse_schema")
                row = await cursor.fetchone()
                if row is not None and row[0] == version:  # or another worker just did
                    for statement in schema.MIGRATIONS[version]:
                        await conn.execute(statement)
                    await conn.execute("UPDATE rehearse_schema SET version = %s",
                                       (version + 1,))
    except NewerSchema as exc:
        raise StoreError(
            f"{shown} was written by a newer release of Rehearse (schema version {exc.found}; "
            f"this one knows up to {exc.known}): upgrade Rehearse, or restore a backup made "
            "by this release (docs/operations.md, section 9)") from None
    except psycopg.Error as exc:
        raise _store_error(exc, f"{shown}: cannot set up the schema") from None
    return before


async def _apply(conn: Connection, c: _Encoded) -> bool:
    """Apply one commit in the order `Commit` documents; False if its event was seen."""
    async with conn.transaction():
        if c.based_on is None:
            cursor = await conn.execute(
                "INSERT INTO inbox (event_id, client_id, at) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING", (c.event_id, c.client_id, c.at))
        else:  # first the client's lock, held to the end: one such commit at a time
            cursor = await conn.execute(
                f"""INSERT INTO inbox (event_id, client_id, at)
                    SELECT %(event)s, %(client)s, %(at)s
                    FROM ({_CLIENT_LOCK.replace("%s", "%(client)s")}) AS held
                    ON CONFLICT DO NOTHING""",
                {"event": c.event_id, "client": c.client_id, "at": c.at})
        if not cursor.rowcount:
            return False
        if c.based_on is not None:  # a statement of its own: it sees what committed before
            cursor = await conn.execute(
                "SELECT version FROM clients WHERE client_id = %s", (c.client_id,))
            row = await cursor.fetchone()
            if (0 if row is None else row[0]) != c.based_on:
                raise StaleState(f"the state of the client of {c.event_id!r} changed meanwhile")
        async with conn.pipeline(), conn.cursor() as cur:
            if c.cancel_outbox:
                await cur.execute("DELETE FROM outbox WHERE client_id = %s"
                                  " AND payload->>'alert' IS NULL", (c.client_id,))
            if c.drop_answers:
                await cur.execute("DELETE FROM answers WHERE client_id = %s", (c.client_id,))
                await _note_vacuum(cur, ("answers", "clients"), rewrite=True)
            if c.state is not None:
                await cur.execute(
                    """INSERT INTO clients (client_id, state, updated_at, version)
                       VALUES (%s, %s, %s, nextval('state_versions'))
                       ON CONFLICT (client_id) DO UPDATE
                       SET state = excluded.state, updated_at = excluded.updated_at,
                           version = excluded.version""",
                    (c.client_id, c.state, c.at))
            if c.ledger:
                await cur.executemany(
                    "INSERT INTO ledger (client_id, at, kind, data) VALUES (%s, %s, %s, %s)",
                    c.ledger)
            if c.outbox:
                await cur.executemany(
                    "INSERT INTO outbox (client_id, chat_id, payload, created_at) "
                    "VALUES (%s, %s, %s, %s)", c.outbox)
                await cur.execute(f"SELECT pg_notify('{_NOTIFY_OUTBOX}', '')")
            if c.answers:
                await cur.executemany(
                    "INSERT INTO answers (client_id, step, text, at, kind) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [(client, step, _json_text(text), at, kind)
                     for client, step, text, at, kind in c.answers])
            if c.plans:  # one at a time: each version counts the ones before it
                for plan in c.plans:
                    await cur.execute(
                        """INSERT INTO safety_plans
                               (client_id, version, at, author, status, changed, suggestion,
                                parts)
                           SELECT %(client)s, coalesce(max(version), 0) + 1, %(at)s,
                                  %(author)s, %(status)s, %(changed)s, %(suggestion)s,
                                  %(parts)s
                           FROM safety_plans WHERE client_id = %(client)s""",
                        dict(zip(("client", "at", "author", "status", "changed",
                                  "suggestion", "parts"), plan, strict=True)))
            for kind in c.timers_cancel:
                if kind == "*":
                    await cur.execute("DELETE FROM timers WHERE client_id = %s", (c.client_id,))
                else:
                    await cur.execute("DELETE FROM timers WHERE client_id = %s AND kind = %s",
                                      (c.client_id, kind))
            if c.timers_set:
                await cur.executemany(
                    """INSERT INTO timers (client_id, kind, due, payload)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (client_id, kind) DO UPDATE
                       SET due = excluded.due, payload = excluded.payload""",
                    c.timers_set)
    return True


#: A client's lock, held to the end of the transaction: commits based on the client's state
#: and the client's erasure take it, so they never interleave.
_CLIENT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


async def _assign(conn: Connection, client_id: str, therapist: str, now: str) -> None:
    """Put the client in the therapist's caseload (inside the caller's transaction, if any)."""
    await conn.execute(
        """INSERT INTO caseload (client_id, therapist, since, looked_at)
           VALUES (%s, %s, %s, NULL)
           ON CONFLICT (client_id) DO UPDATE
           SET therapist = excluded.therapist, since = excluded.since, looked_at = NULL
           WHERE caseload.therapist <> excluded.therapist""",
        (client_id, therapist, now))


async def _remember_sent(
    conn: Connection, client_id: str, chat_id: int, message_ids: Sequence[int], sent_at: str
) -> None:
    if not message_ids:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO sent_messages (chat_id, message_id, client_id, sent_at)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (chat_id, message_id) DO UPDATE
               SET client_id = excluded.client_id, sent_at = excluded.sent_at""",
            [(chat_id, message_id, client_id, sent_at) for message_id in message_ids])


async def _export(conn: Connection, client_id: str) -> dict[str, object]:
    async def rows(query: str) -> list[Any]:
        cursor = await conn.execute(query, (client_id,))
        return await cursor.fetchall()

    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        client = await rows("SELECT state, updated_at FROM clients WHERE client_id = %s")
        return {
            "client_id": client_id,
            "state": _object(client[0][0]) if client else None,
            "updated_at": _ts(client[0][1]) if client else None,
            "ledger": [
                {"seq": seq, "at": _ts(at), "kind": kind, "data": _object(data)}
                for seq, at, kind, data in await rows(
                    "SELECT seq, at, kind, data FROM ledger WHERE client_id = %s ORDER BY seq")
            ],
            "answers": [
                {"step": step, "text": text, "at": _ts(at), "kind": kind}
                for step, text, at, kind in await rows(
                    "SELECT step, text, at, kind FROM answers WHERE client_id = %s "
                    "ORDER BY at, id")
            ],
            "safety_plans": [
                {"version": version, "at": _ts(at), "author": author, "status": status,
                 "changed": changed, "suggestion": suggestion, "parts": parts}
                for version, at, author, status, changed, suggestion, parts in await rows(
                    f"SELECT {_PLAN_COLUMNS} FROM safety_plans WHERE client_id = %s "
                    "ORDER BY version")
            ],
            "timers": [
                {"kind": kind, "due": _ts(due), "payload": _object(payload)}
                for kind, due, payload in await rows(
                    "SELECT kind, due, payload FROM timers WHERE client_id = %s "
                    "ORDER BY due, kind")
            ],
            "outbox": [
                {
                    "id": id_,
                    "chat_id": chat_id,
                    "payload": _object(payload),
                    "attempts": attempts,
                    "not_before": None if not_before is None else _ts(not_before),
                    "created_at": _ts(created_at),
                }
                for id_, chat_id, payload, attempts, not_before, created_at in await rows(
                    """SELECT id, chat_id, payload, attempts, not_before, created_at
                       FROM outbox WHERE client_id = %s ORDER BY id""")
            ],
            "sent_messages": [
                {"chat_id": chat_id, "message_id": message_id, "sent_at": _ts(sent_at)}
                for chat_id, message_id, sent_at in await rows(
                    """SELECT chat_id, message_id, sent_at FROM sent_messages
                       WHERE client_id = %s ORDER BY sent_at, message_id""")
            ],
            "events": [
                {"event_id": event_id, "at": _ts(at)}
                for event_id, at in await rows(
                    "SELECT event_id, at FROM inbox WHERE client_id = %s ORDER BY at, event_id")
            ],
            "failed_codes": [
                _ts(at) for (at,) in await rows(
                    "SELECT at FROM failed_codes WHERE client_id = %s ORDER BY at, id")
            ],
            "invites": [
                {
                    "script_id": script_id,
                    "max_level": max_level,
                    "created_at": _ts(created_at),
                    "expires_at": _ts(expires_at),
                    "redeemed_at": None if redeemed_at is None else _ts(redeemed_at),
                    "therapist": therapist,
                }
                for script_id, max_level, created_at, expires_at, redeemed_at, therapist
                in await rows(
                    """SELECT script_id, max_level, created_at, expires_at, redeemed_at,
                              therapist
                       FROM invites WHERE redeemed_by = %s ORDER BY redeemed_at""")
            ],
            "therapist": next(
                ({"therapist": therapist, "since": _ts(since),
                  "looked_at": None if looked_at is None else _ts(looked_at)}
                 for therapist, since, looked_at in await rows(
                     "SELECT therapist, since, looked_at FROM caseload WHERE client_id = %s")),
                None,
            ),
        }


async def _erase(conn: Connection, client_id: str, keep_event: str | None) -> int:
    """Delete the client's rows and note the VACUUM owed; return the erasure count."""
    async with conn.transaction(), conn.cursor() as cur:
        # The client's lock, as a commit based on their state takes it: such a commit either
        # applies before the erasure (and is erased with the rest) or finds no state after.
        await cur.execute(_CLIENT_LOCK, (client_id,))
        if keep_event is not None:  # stays handled, as nobody's: a redelivery changes nothing
            await cur.execute(
                "UPDATE inbox SET client_id = '' WHERE event_id = %s AND client_id = %s",
                (keep_event, client_id))
        for table in _CLIENT_TABLES:
            await cur.execute(sql.SQL("DELETE FROM {} WHERE client_id = %s").format(
                sql.Identifier(table)), (client_id,))
        await cur.execute("UPDATE invites SET redeemed_by = NULL WHERE redeemed_by = %s",
                          (client_id,))
        # Handled updates stay, as nobody's, for dedup; unhandled ones (written after the
        # erasure was asked for) are handled as a stranger's.
        await cur.execute("UPDATE updates SET client_id = '' WHERE client_id = %s AND handled",
                          (client_id,))
        await _note_vacuum(cur, sorted(_VACUUMED), rewrite=True)
        await cur.execute("UPDATE changes SET erasures = erasures + 1 WHERE id = 1 "
                          "RETURNING erasures")
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def _purge(
    conn: Connection, ledger_before: str, answers_before: str, technical_before: str
) -> int:
    deleted = 0
    touched: list[str] = []
    async with conn.transaction(), conn.cursor() as cur:
        for table, column, before in (
            ("ledger", "at", ledger_before),
            ("answers", "at", answers_before),
            ("inbox", "at", technical_before),
            ("updates", "received_at", technical_before),
            ("sent_messages", "sent_at", technical_before),
            ("failed_codes", "at", technical_before),
        ):
            await cur.execute(sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                sql.Identifier(table), sql.Identifier(column)), (before,))
            if cur.rowcount:
                deleted += cur.rowcount
                touched.append(table)
        if touched:
            await _note_vacuum(cur, touched, rewrite=False)
    return deleted


async def _note_vacuum(
    cur: psycopg.AsyncCursor[Any], tables: Iterable[str], *, rewrite: bool
) -> None:
    """Note, in the transaction that deletes rows, that these tables need a ``VACUUM`` (a
    ``VACUUM FULL`` with `rewrite`) once no snapshot older than this transaction is left."""
    await cur.execute(
        """INSERT INTO vacuum_due (table_name, after, rewrite)
           SELECT name, pg_current_xact_id(), %s FROM unnest(%s::text[]) AS name
           ON CONFLICT (table_name) DO UPDATE
           SET after = excluded.after, rewrite = vacuum_due.rewrite OR excluded.rewrite""",
        (rewrite, list(tables)))


async def _clean(conn: Connection, emptied: set[str]) -> bool:
    """Vacuum or rewrite the tables noted in ``vacuum_due``, and vacuum those `emptied` of sent
    messages or handled updates.

    A deleted row version stays in its table's pages until ``VACUUM`` removes it, and even
    then its bytes stay in the page's free space (and its index entries' in the index
    pages) until new rows overwrite them. After an erasure the noted tables are therefore
    rewritten (``VACUUM FULL``: new files holding only the live rows, the old files deleted);
    after the purge and sends they are vacuumed (``INDEX_CLEANUP ON``, so that the indexes,
    which hold client ids, are cleaned even when few rows went).

    Neither can drop a row version that a snapshot older than the deletion may still see (a
    ``pg_dump``, a long report, a replica with ``hot_standby_feedback``), and ``VACUUM FULL``
    waits for every other lock on its table: while either holds the pass off (a lock is
    waited for at most :data:`REWRITE_LOCK_TIMEOUT`, so that nobody queues behind it), it is
    retried later. A note goes only once its table is done.

    Returns:
        True when nothing is owed any more; False when the pass was held off.
    """
    cursor = await conn.execute("SELECT table_name, after, rewrite FROM vacuum_due")
    due = [(str(name), after, bool(rewrite)) for name, after, rewrite in await cursor.fetchall()
           if name in _VACUUMED]
    if due:
        cursor = await conn.execute(_HELD_OFF, {"after": max(after for _, after, _ in due)})
        row = await cursor.fetchone()
        if row is not None and row[0]:
            return False
    rewritten = {name for name, _, rewrite in due if rewrite}
    vacuumed = ({name for name, _, _ in due} | emptied) - rewritten
    if vacuumed:
        await conn.execute(sql.SQL("VACUUM (INDEX_CLEANUP ON) {}").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in sorted(vacuumed))))
    for name, after, rewrite in due:
        if rewrite:
            try:
                await conn.execute(sql.SQL("SET lock_timeout = {}").format(
                    sql.Literal(f"{REWRITE_LOCK_TIMEOUT * 1000:.0f}ms")))
                await conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(name)))
            except psycopg.errors.LockNotAvailable:
                return False
            finally:
                await conn.execute("RESET lock_timeout")
        await conn.execute("DELETE FROM vacuum_due WHERE table_name = %s AND after = %s",
                           (name, after))
    return True


#: Seconds a ``VACUUM FULL`` waits for the lock on its table before the pass is retried.
REWRITE_LOCK_TIMEOUT = 1.0

#: Whether a snapshot that may still see rows deleted by transaction ``after`` is alive: a
#: session (any database; another role's only with ``pg_read_all_stats``), a replication
#: slot, a prepared transaction.
_HELD_OFF = """
SELECT EXISTS (
           SELECT 1 FROM pg_stat_activity
           WHERE pid <> pg_backend_pid()
             AND (age(backend_xmin) >= age(xid(%(after)s::xid8))
                  OR age(backend_xid) >= age(xid(%(after)s::xid8))))
    OR EXISTS (
           SELECT 1 FROM pg_replication_slots
           WHERE age(xmin) >= age(xid(%(after)s::xid8))
              OR age(catalog_xmin) >= age(xid(%(after)s::xid8)))
    OR EXISTS (
           SELECT 1 FROM pg_prepared_xacts
           WHERE age(transaction) >= age(xid(%(after)s::xid8)))
"""


# -- encoding and errors --------------------------------------------------------------------


def _json_text(text: str) -> str:
    """An answer's text as a JSON string (PostgreSQL's ``text`` cannot hold U+0000)."""
    return json.dumps(text, ensure_ascii=False)


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise StoreError("stored JSON is not an object")
    return value


def _at(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _invite(row: Any) -> Invite:
    (code_hash, script_id, max_level, expires_at, created_at, redeemed_by, redeemed_at,
     therapist) = row
    return Invite(
        code_hash=code_hash,
        script_id=script_id,
        max_level=max_level,
        expires_at=_at(expires_at),
        created_at=_at(created_at),
        redeemed_by=redeemed_by,
        redeemed_at=_utc(redeemed_at),
        therapist=therapist,
    )


def _caseload_entry(row: Any) -> CaseloadEntry:
    client_id, therapist, since, looked_at = row
    return CaseloadEntry(client_id, therapist, _at(since), _utc(looked_at))


def _store_error(exc: psycopg.Error, failed: str | None) -> StoreError:
    """A `StoreError` that says what failed without the data PostgreSQL may quote."""
    diag = exc.diag
    primary = diag.message_primary if diag is not None else None
    code = exc.sqlstate
    text = primary or _one_line(exc)
    if code:
        text = f"{text} (SQLSTATE {code})"
    if failed:
        text = f"{failed}: {text}"
    data = isinstance(exc, psycopg.DataError) or (code or "")[:2] in _DATA_CLASSES
    return DataRefused(text) if data else StoreError(text)


def _one_line(exc: BaseException) -> str:
    """The first lines of a connection error, joined (libpq never quotes a password)."""
    text = str(exc).removeprefix("connection failed: ")
    return " ".join(line.strip() for line in text.splitlines()[:3] if line.strip())


def shown_url(url: str) -> str:
    """A database URL as it may be shown in messages: any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the PostgreSQL URL"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))

