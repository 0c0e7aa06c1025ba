"""Schema migrations for the PostgreSQL store, tracked in the table ``rehearse_schema``.

``MIGRATIONS[n]`` takes a database from version n to n + 1: a list of SQL statements applied
in one transaction together with the version bump. Never edit a released migration; append
a new one. Several workers may start at once: the first to take the advisory lock migrates,
the others find the work done.

The tables are those of the SQLite store (``_migrations``; version 1 here is SQLite's 5,
version 2 SQLite's 6, and so on), in
PostgreSQL's types (a state's version comes from the sequence ``state_versions``): times are
``timestamptz``; JSON is ``json``, which keeps the text exactly as written (``jsonb`` would
refuse ``\\u0000``, which a JSON string may hold); a stored answer's text is a JSON string
for the same reason, as PostgreSQL's ``text`` cannot hold U+0000.
Two tables are PostgreSQL's own: ``vacuum_due`` (durable notes of tables to vacuum, or to
rewrite, after rows were deleted, see ``_postgres``) and ``changes`` (a count of erasures,
so that every worker notices one made elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

Migration = Sequence[str]

#: The key of the advisory lock held while migrating (any constant unique to Rehearse).
MIGRATION_LOCK = 0x52454845_41525345  # "REHEARSE"

_V1: Migration = (
    "CREATE SEQUENCE state_versions",
    """CREATE TABLE clients (
        client_id text PRIMARY KEY,
        state json NOT NULL,
        updated_at timestamptz NOT NULL,
        version bigint NOT NULL
    )""",
    """CREATE TABLE inbox (
        event_id text PRIMARY KEY,
        client_id text NOT NULL,
        at timestamptz NOT NULL
    )""",
    """CREATE TABLE ledger (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_id text NOT NULL,
        at timestamptz NOT NULL,
        kind text NOT NULL CHECK (kind <> ''),
        data json NOT NULL
    )""",
    "CREATE INDEX ledger_client ON ledger (client_id, seq)",
    """CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS
       $$BEGIN RAISE EXCEPTION 'the ledger is append-only'; END$$""",
    """CREATE TRIGGER ledger_append_only BEFORE UPDATE ON ledger
       FOR EACH ROW EXECUTE FUNCTION ledger_append_only()""",
    """CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_id text NOT NULL,
        chat_id bigint,
        payload json NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        not_before timestamptz,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX outbox_client ON outbox (client_id, id)",
    """CREATE TABLE answers (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_id text NOT NULL,
        step text NOT NULL,
        text json NOT NULL,
        at timestamptz NOT NULL,
        kind text NOT NULL DEFAULT 'answer' CHECK (kind IN ('answer', 'connection'))
    )""",
    "CREATE INDEX answers_client ON answers (client_id, at)",
    """CREATE TABLE timers (
        client_id text NOT NULL,
        kind text NOT NULL CHECK (kind NOT IN ('', '*')),
        due timestamptz NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (client_id, kind)
    )""",
    "CREATE INDEX timers_due ON timers (due)",
    """CREATE TABLE sent_messages (
        chat_id bigint NOT NULL,
        message_id bigint NOT NULL,
        client_id text NOT NULL,
        sent_at timestamptz NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    )""",
    "CREATE INDEX sent_messages_client ON sent_messages (client_id, sent_at)",
    """CREATE TABLE invites (
        code_hash text PRIMARY KEY,
        script_id text NOT NULL,
        max_level integer,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        redeemed_by text,
        redeemed_at timestamptz,
        therapist text CHECK (therapist <> '')
    )""",
    "CREATE INDEX invites_redeemed_by ON invites (redeemed_by)",
    """CREATE TABLE caseload (
        client_id text PRIMARY KEY,
        therapist text NOT NULL CHECK (therapist <> ''),
        since timestamptz NOT NULL,
        looked_at timestamptz
    )""",
    "CREATE INDEX caseload_therapist ON caseload (therapist, client_id)",
    """CREATE TABLE failed_codes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_id text NOT NULL,
        at timestamptz NOT NULL
    )""",
    "CREATE INDEX failed_codes_client ON failed_codes (client_id, at)",
    """CREATE TABLE vacuum_due (
        table_name text PRIMARY KEY,
        after xid8 NOT NULL,
        rewrite boolean NOT NULL
    )""",
    """CREATE TABLE changes (
        id integer PRIMARY KEY CHECK (id = 1),
        erasures bigint NOT NULL
    )""",
    "INSERT INTO changes (id, erasures) VALUES (1, 0)",
    """CREATE TABLE updates (
        update_id bigint PRIMARY KEY,
        client_id text NOT NULL,
        body json,
        readable boolean NOT NULL DEFAULT true,
        received_at timestamptz NOT NULL,
        handled boolean NOT NULL DEFAULT false,
        lease_owner text,
        lease_until timestamptz
    )""",
    "CREATE INDEX updates_lanes ON updates (client_id, update_id) WHERE NOT handled",
    """CREATE TABLE leases (
        name text PRIMARY KEY,
        owner text NOT NULL,
        until timestamptz NOT NULL
    )""",
)

#: The client's own safety plan, every version kept (SQLite's version 6, which explains it).
_V2: Migration = (
    """CREATE TABLE safety_plans (
        client_id text NOT NULL,
        version integer NOT NULL CHECK (version > 0),
        at timestamptz NOT NULL,
        author text NOT NULL CHECK (author <> ''),
        status text NOT NULL CHECK (status IN ('accepted', 'suggested')),
        changed json NOT NULL,
        suggestion integer,
        parts json NOT NULL,
        PRIMARY KEY (client_id, version)
    )""",
)

#: An edit of a typed answer, and a comment on "Did this help?", are answers of their own
#: (SQLite's version 7, which explains it).
_V3: Migration = (
    """ALTER TABLE answers DROP CONSTRAINT answers_kind_check,
       ADD CONSTRAINT answers_kind_check
           CHECK (kind IN ('answer', 'connection', 'edit', 'comment'))""",
)

#: Groups and channels the bot refused, each once ever (SQLite's version 8, which explains it).
_V4: Migration = (
    "CREATE TABLE refused_groups (chat_id bigint PRIMARY KEY)",
)

MIGRATIONS: Sequence[Migration] = (_V1, _V2, _V3, _V4)
