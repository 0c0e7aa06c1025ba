"""Schema migrations for the SQLite store, tracked in ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a database from version n to n + 1. Each is a list of statements
applied in one transaction together with the version bump. Never edit a released
migration; append a new one.

Times are stored as fixed-width UTC text (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so comparing
them as text compares them as times. JSON columns hold UTF-8 JSON text.

Every index costs a page write per commit on the hot path (inbox, clients, ledger,
outbox), so those tables carry only the indexes their per-client reads need; the daily
purge and the rare erase scan them instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bot.store._base import StoreError

Migration = Sequence[str]

_V1: Migration = (
    """CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT""",
    """CREATE TABLE inbox (
        event_id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind <> ''),
        data TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX ledger_client ON ledger (client_id, seq)",
    """CREATE TRIGGER ledger_append_only BEFORE UPDATE ON ledger
       BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        chat_id INTEGER,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before TEXT,
        created_at TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX outbox_client ON outbox (client_id, id)",
    """CREATE TABLE answers (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        step TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX answers_client ON answers (client_id, at)",
    """CREATE TABLE timers (
        client_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind NOT IN ('', '*')),
        due TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (client_id, kind)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX timers_due ON timers (due)",
    """CREATE TABLE sent_messages (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX sent_messages_client ON sent_messages (client_id, sent_at)",
    """CREATE TABLE invites (
        code_hash TEXT PRIMARY KEY,
        script_id TEXT NOT NULL,
        max_level INTEGER,
        expires_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        redeemed_by TEXT,
        redeemed_at TEXT
    ) STRICT""",
    "CREATE INDEX invites_redeemed_by ON invites (redeemed_by)",
    """CREATE TABLE failed_codes (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        at TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX failed_codes_client ON failed_codes (client_id, at)",
)

#: A clean-up of the files still owed (see `_sqlite._clean`): ``vacuum`` after rows were
#: deleted, ``truncate`` once only the WAL is left to empty. One row at most.
_V2: Migration = (
    """CREATE TABLE cleanup_due (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        task TEXT NOT NULL CHECK (task IN ('vacuum', 'truncate'))
    ) STRICT""",
)

#: Free text lives only in ``answers``: the connection log's note moves out of the client's
#: state. Up to this version the engine kept the latest note twice, as an answer and (its
#: first 500 characters) in ``progress.last_connection``; the answer becomes the note
#: (``kind = 'connection'``). A note with no such answer left (the purge removed it past
#: ``answers_days``) is past its retention and goes. Old copies of the states are vacuumed.
_V3: Migration = (
    """ALTER TABLE answers ADD COLUMN kind TEXT NOT NULL DEFAULT 'answer'
       CHECK (kind IN ('answer', 'connection'))""",
    """UPDATE answers SET kind = 'connection' WHERE id IN (
           SELECT (SELECT a.id FROM answers AS a
                   WHERE a.client_id = c.client_id
                     AND substr(a.text, 1, 500)
                         = json_extract(c.state, '$.progress.last_connection')
                   ORDER BY a.at DESC, a.id DESC LIMIT 1)
           FROM clients AS c
           WHERE json_type(c.state, '$.progress.last_connection') = 'text')""",
    """UPDATE clients SET state = json_remove(state, '$.progress.last_connection')
       WHERE json_type(state, '$.progress.last_connection') IS NOT NULL""",
    """INSERT OR REPLACE INTO cleanup_due (id, task) SELECT 1, 'vacuum' WHERE changes() > 0""",
)

#: Therapists are a role: an invite records the therapist who made it (their id, e.g.
#: ``tg:9000``), and redeeming it puts the client in that therapist's caseload. A client has
#: at most one therapist; ``looked_at`` is when that therapist last read the client's
#: progress report (what is new since then is flagged in their caseload overview). The
#: row goes with the client's erasure; nothing older than this version had a therapist.
_V4: Migration = (
    "ALTER TABLE invites ADD COLUMN therapist TEXT CHECK (therapist <> '')",
    """CREATE TABLE caseload (
        client_id TEXT PRIMARY KEY,
        therapist TEXT NOT NULL CHECK (therapist <> ''),
        since TEXT NOT NULL,
        looked_at TEXT
    ) STRICT""",
    "CREATE INDEX caseload_therapist ON caseload (therapist, client_id)",
)

#: Webhook mode and several workers (the PostgreSQL store has the same from its version 1):
#: ``updates`` holds received Telegram updates until they are handled (then only their ids,
#: for dedup) in per-client lanes, claimed for a while (``lease_until``, a Julian day: the
#: database's own clock) by the worker handling them; ``leases`` holds roles only one worker
#: plays at a time. A client's state gets a version, new at every write and never reused
#: (``state_versions`` counts them), so that a commit computed from an older state is refused.
_V5: Migration = (
    """CREATE TABLE updates (
        update_id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        body TEXT,
        readable INTEGER NOT NULL DEFAULT 1,
        received_at TEXT NOT NULL,
        handled INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until REAL
    ) STRICT""",
    "CREATE INDEX updates_lanes ON updates (client_id, update_id) WHERE NOT handled",
    """CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL
    ) STRICT, WITHOUT ROWID""",
    "ALTER TABLE clients ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE state_versions (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n INTEGER NOT NULL
    ) STRICT""",
    "UPDATE clients SET version = rowid",
    "INSERT INTO state_versions (id, n) SELECT 1, coalesce(max(version), 0) FROM clients",
)

#: The client's own safety plan (issue 11 §7): every saved version is kept, numbered per
#: client from 1, with who wrote it (``client``, or the therapist who suggested wording) and
#: when; ``accepted`` versions are the client's (the newest is current), ``suggested`` ones
#: wait for the client's yes. ``parts`` is the whole plan of the version (JSON: part -> text),
#: ``changed`` the parts it changed (a JSON list). Plans written into the configuration
#: (``safety.safety_plans``) are moved here by ``rehearse safety-plan --import-config``.
_V6: Migration = (
    """CREATE TABLE safety_plans (
        client_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0),
        at TEXT NOT NULL,
        author TEXT NOT NULL CHECK (author <> ''),
        status TEXT NOT NULL CHECK (status IN ('accepted', 'suggested')),
        changed TEXT NOT NULL,
        suggestion INTEGER,
        parts TEXT NOT NULL,
        PRIMARY KEY (client_id, version)
    ) STRICT, WITHOUT ROWID""",
)

#: A client can edit a typed answer in its session summary: the edit is an answer of its own
#: (``kind = 'edit'``, its step naming the session and the answer it replaces), so the
#: answers' retention, export, opt-out and erasure cover it; the original stays as typed.
#: So is their comment on "Did this help?" (``kind = 'comment'``, its step the session).
#: SQLite cannot change a CHECK in place: the table is rebuilt, rows and ids kept.
_V7: Migration = (
    """CREATE TABLE answers_v7 (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        step TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'answer'
            CHECK (kind IN ('answer', 'connection', 'edit', 'comment'))
    ) STRICT""",
    """INSERT INTO answers_v7 (id, client_id, step, text, at, kind)
       SELECT id, client_id, step, text, at, kind FROM answers""",
    "DROP TABLE answers",
    "ALTER TABLE answers_v7 RENAME TO answers",
    "CREATE INDEX answers_client ON answers (client_id, at)",
)

#: Groups and channels the bot refused (issue 13 §4): each gets one polite refusal ever, not
#: one per start. Only the chat id is kept, in no client's data (a group is no client): no
#: erasure, export or retention touches it.
_V8: Migration = (
    "CREATE TABLE refused_groups (chat_id INTEGER PRIMARY KEY) STRICT",
)

MIGRATIONS: Sequence[Migration] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)


class NewerSchema(StoreError):
    """The database was written by a newer release: its schema version is unknown here."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"database schema version {found} is newer than this program's {known}")
        self.found = found
        self.known = known


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Bring the database up to ``len(migrations)``; return the version it had before.

    Raises:
        NewerSchema: The database was written by a newer version of the program.
    """
    before = _version(conn)
    if before > len(migrations):
        raise NewerSchema(before, len(migrations))
    for version in range(before, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _version(conn) == version:  # another process may have migrated meanwhile
                for statement in migrations[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return before


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])
