"""Tests of what is PostgreSQL's own in the store: erasure down to the table pages, the
clean-up held off by older snapshots, migrations shared by workers, connection errors.

The rest of the store's behaviour is tested on both backends in ``test_store.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bot.cli import main as rehearse
from bot.store import (
    Commit,
    DataRefused,
    Invite,
    LedgerRecord,
    OutgoingMessage,
    PlanRecord,
    StoredAnswer,
    StoreError,
    Timer,
    _postgres_schema,
    store_for,
)
from bot.store._postgres import PostgresStore
from tests.conftest import PostgresServer
from tests.support import postgres

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def make(event_id: str, client_id: str = "tg:1", **parts: object) -> Commit:
    parts.setdefault("state", {"event": event_id})
    return Commit(event_id=event_id, client_id=client_id, at=T0, **parts)  # type: ignore[arg-type]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(postgres_url, cleanup_retry=0.05) as opened:
        yield opened


@pytest.fixture
def sql(postgres_url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A second connection to the test's schema, as an operator's ``psql`` would be."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn  # type: ignore[misc]


def raw_pages(conn: psycopg.Connection[tuple[object, ...]]) -> bytes:
    """Every page of every table, index and TOAST relation of the schema, as stored."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public")
    relations = conn.execute(
        """SELECT c.oid FROM pg_class AS c
           WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i')
           UNION
           SELECT t.oid FROM pg_class AS c JOIN pg_class AS t ON t.oid = c.reltoastrelid
           WHERE c.relnamespace = current_schema()::regnamespace
           UNION
           SELECT i.indexrelid FROM pg_class AS c JOIN pg_index AS i
             ON i.indrelid = c.reltoastrelid
           WHERE c.relnamespace = current_schema()::regnamespace""").fetchall()
    pages = []
    for (oid,) in relations:
        blocks = conn.execute("SELECT pg_relation_size(%s::oid) / 8192", (oid,)).fetchone()
        assert blocks is not None
        for block in range(int(str(blocks[0]))):
            page = conn.execute("SELECT public.get_raw_page(%s::oid::regclass::text, %s)",
                                (oid, block)).fetchone()
            assert page is not None
            pages.append(bytes(page[0]))  # type: ignore[arg-type]
    return b"".join(pages)


def rows_mentioning(conn: psycopg.Connection[tuple[object, ...]], needle: str) -> list[str]:
    """The tables of the schema with a row whose text holds `needle`."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    found = []
    for (table,) in tables:
        query = f"SELECT count(*) FROM {table} AS t WHERE t::text LIKE %s"
        count = conn.execute(query, (f"%{needle}%",)).fetchone()
        if count and count[0]:
            found.append(str(table))
    return found


async def plant(store: PostgresStore, victim: str, secret: str) -> None:
    """A victim whose rows are in every table, among ordinary clients, with churn."""
    rng = random.Random(0)
    for n in range(60):
        for client_id, mark in [(victim, secret), *((f"tg:{c}", "ordinary") for c in range(5))]:
            text = f"{mark} {n} " * rng.choice([1, 3, 10])
            at = T0 + n * MINUTE
            await store.commit(Commit(
                event_id=f"{client_id}:{n}", client_id=client_id, at=at,
                state={"n": n, "note": text},
                ledger=[LedgerRecord("share", {"t": text}, at)],
                outbox=[OutgoingMessage(client_id, int(client_id[3:]), {"text": text})],
                answers=[StoredAnswer("s", text, at)] if rng.random() < 0.5 else [],
                plans=[PlanRecord({"warning_signs": text}, "client", "accepted", at,
                                  ("warning_signs",))] if rng.random() < 0.3 else [],
                timers_set=[Timer(rng.choice("abc"), at, {"m": mark})],
                cancel_outbox=rng.random() < 0.3,
            ))
        for row in await store.pending_outbox(T0 + n * MINUTE, limit=rng.randint(1, 8)):
            await store.mark_sent(row.id, T0 + n * MINUTE, [rng.randint(1, 10**9)])
    await store.add_invite(Invite("h1", "first-steps", 3, T0 + timedelta(days=7), T0))
    await store.redeem_invite("h1", victim, T0)
    await store.record_failed_code(victim, T0, MINUTE)


async def test_erasure_leaves_no_row_and_no_copy_in_the_table_files(
    store: PostgresStore, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    secret, victim = "Z7Q-secret-fear-of-being-left", "tg:4711815"
    await plant(store, victim, secret)
    pages = raw_pages(sql)
    assert secret.encode() in pages and victim.encode() in pages
    assert rows_mentioning(sql, secret)

    await store.erase(victim)
    assert await store.cleaned(timeout=10)

    assert rows_mentioning(sql, secret) == []
    assert rows_mentioning(sql, victim) == []
    pages = raw_pages(sql)
    assert secret.encode() not in pages  # neither live nor dead row versions, nor their
    assert victim.encode() not in pages  # bytes in free space or index pages
    assert sql.execute("SELECT count(*) FROM vacuum_due").fetchone() == (0,)
    assert [i.redeemed_by for i in await store.list_invites()] == [None]
    assert await store.client_ids() == [f"tg:{c}" for c in range(5)]


async def test_an_erasure_held_off_by_an_older_snapshot_is_cleaned_up_when_it_ends(
    store: PostgresStore, postgres_url: str, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    secret, victim = "Z7Q-what-I-typed-while-a-backup-ran", "tg:4711816"
    await store.commit(make("tg:7", victim, answers=[StoredAnswer("s", secret, T0)],
                            outbox=[OutgoingMessage(victim, 4711816, {"text": secret})]))
    await store.commit(make("tg:8", victim))  # the event that asks for the erasure
    await store.commit(make("other", "tg:2"))
    with psycopg.connect(postgres_url) as backup:  # pg_dump holds a snapshot like this
        backup.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        backup.execute("SELECT count(*) FROM answers").fetchone()
        started = asyncio.get_running_loop().time()
        await store.erase(victim, keep_event="tg:8")  # neither fails nor waits for it
        assert asyncio.get_running_loop().time() - started < 2
        assert await store.client_ids() == ["tg:2"]
        assert await store.answers(victim) == []
        assert await store.commit(make("tg:8", victim)) is False  # delivered again
        assert not await store.cleaned(timeout=0.3)
        assert secret.encode() in raw_pages(sql)
        backup.rollback()
    assert await store.cleaned(timeout=10)
    assert secret.encode() not in raw_pages(sql)
    assert sql.execute("SELECT client_id FROM inbox WHERE event_id = 'tg:8'").fetchall() == [
        ("",)]


async def test_a_vacuum_owed_at_a_crash_is_done_at_the_next_open(
    postgres_url: str, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    secret = "Z7Q-left-by-a-crash"
    async with PostgresStore(postgres_url) as store:
        await store.commit(make("e1", answers=[StoredAnswer("s", f"{secret} {n}", T0)
                                               for n in range(50)]))
    # What a crash right after an erasure's deletion committed leaves: rows gone, note left.
    with sql.transaction():
        sql.execute("DELETE FROM answers")
        sql.execute("INSERT INTO vacuum_due (table_name, after, rewrite) "
                    "VALUES ('answers', pg_current_xact_id(), true)")
    assert secret.encode() in raw_pages(sql)
    async with PostgresStore(postgres_url) as store:
        assert await store.cleaned(timeout=10)
    assert sql.execute("SELECT count(*) FROM vacuum_due").fetchone() == (0,)
    assert secret.encode() not in raw_pages(sql)


async def test_the_purge_vacuums_what_it_deleted(
    store: PostgresStore, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    await store.commit(make("e1", answers=[StoredAnswer("s", "old answer", T0)]))
    assert await store.purge(T0 + timedelta(days=30), ledger_days=9, answers_days=9) == 2
    assert await store.cleaned(timeout=10)
    assert sql.execute("SELECT count(*) FROM vacuum_due").fetchone() == (0,)
    dead = sql.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'answers' "
                       "AND schemaname = current_schema()").fetchone()
    assert dead == (0,)


# -- schema and migrations ---------------------------------------------------------------


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> object:
    row = conn.execute("SELECT version FROM rehearse_schema").fetchone()
    return None if row is None else row[0]


async def test_workers_starting_at_once_migrate_once(
    postgres_url: str, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(6)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        await asyncio.gather(*(store.commit(make(f"e{n}", f"tg:{n}"))
                               for n, store in enumerate(stores)))
        assert schema_version(sql) == len(_postgres_schema.MIGRATIONS)
        assert len(await stores[0].client_ids()) == 6
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_an_old_schema_is_migrated_and_a_failing_migration_changes_nothing(
    postgres_url: str, sql: psycopg.Connection[tuple[object, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with PostgresStore(postgres_url) as store:
        await store.commit(make("e1", state={"n": 1}))
    known = _postgres_schema.MIGRATIONS
    broken = ("CREATE TABLE half (x text)", "THIS IS NOT SQL")
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", (*known, broken))
    with pytest.raises(StoreError, match="cannot set up the schema"):
        await PostgresStore(postgres_url).open()
    assert schema_version(sql) == len(known)
    assert sql.execute("SELECT to_regclass('half')").fetchone() == (None,)

    v2 = ("ALTER TABLE clients ADD COLUMN pseudonym text", "CREATE TABLE notes (x text)")
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", (*known, v2))
    async with PostgresStore(postgres_url) as store:
        assert await store.load_state("tg:1") == {"n": 1}
    assert schema_version(sql) == len(known) + 1
    assert sql.execute("SELECT pseudonym FROM clients").fetchall() == [(None,)]


async def test_a_newer_schema_is_refused(
    postgres_url: str, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    async with PostgresStore(postgres_url):
        pass
    sql.execute("UPDATE rehearse_schema SET version = version + 1")
    with pytest.raises(StoreError, match="newer release"):
        await PostgresStore(postgres_url).open()


async def test_ledger_rows_cannot_be_updated(
    store: PostgresStore, sql: psycopg.Connection[tuple[object, ...]]
) -> None:
    await store.commit(make("e1", ledger=[LedgerRecord("consent", {"core": True}, T0)]))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        sql.execute("UPDATE ledger SET data = '{}'")
    assert [r.data for r in await store.ledger("tg:1")] == [{"core": True}]


# -- data PostgreSQL cannot hold, and errors that must not quote it ------------------------


async def test_free_text_with_nul_round_trips_and_refused_data_is_never_quoted(
    store: PostgresStore,
) -> None:
    typed = "before\x00after \ud7ff"
    await store.commit(make("e1", state={"v": typed}, answers=[StoredAnswer("s", typed, T0)]))
    assert await store.load_state("tg:1") == {"v": typed}
    assert [a.text for a in await store.answers("tg:1")] == [typed]

    secret = "Z7Q-private-words"
    bad = make("e2", ledger=[LedgerRecord("fine", {"t": secret}, T0), LedgerRecord("", {}, T0)],
               answers=[StoredAnswer("s", secret, T0)])
    with pytest.raises(DataRefused) as refused:  # a CHECK constraint: DETAIL quotes the row
        await store.commit(bad)
    assert isinstance(refused.value, ValueError)  # no outage: the edge gives it up
    assert secret not in str(refused.value) and refused.value.__cause__ is None
    assert "'e2'" in str(refused.value) and "SQLSTATE 23514" in str(refused.value)
    with pytest.raises(DataRefused, match="NUL"):
        await store.commit(make("e3", client_id="tg:\x00"))
    with pytest.raises(DataRefused, match="not valid Unicode"):
        await store.commit(make("e4", answers=[StoredAnswer("s", "\ud800", T0)]))
    assert await store.commit(make("e2")) is True  # nothing of the refused commits stuck


# -- connecting ------------------------------------------------------------------------------


async def test_an_unreachable_server_is_one_clear_error() -> None:
    url = f"postgresql://rehearse@127.0.0.1:{postgres.free_port()}/rehearse"
    with pytest.raises(StoreError) as failed:
        await PostgresStore(url, connect_timeout=2).open()
    message = str(failed.value)
    assert message.startswith(f"{url}: cannot connect to PostgreSQL (")
    assert "Connection refused" in message and "\n" not in message
    assert failed.value.__cause__ is None


async def test_the_password_comes_from_the_environment(postgres_server: PostgresServer) -> None:
    if postgres_server.cluster is None:
        pytest.skip("needs the throwaway cluster (its password user)")
    url = postgres_server.cluster.url(postgres_server.database, user=postgres.PASSWORD_USER)
    with pytest.raises(StoreError, match="no password supplied"):
        await PostgresStore(url, connect_timeout=2).open()
    with pytest.raises(StoreError, match="password authentication failed"):
        await PostgresStore(url, password="wrong", connect_timeout=2).open()
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS AUTHORIZATION {postgres.PASSWORD_USER}")
    async with store_for(f"{url}?options=-csearch_path%3D{postgres.PASSWORD_USER}",
                         password=postgres.PASSWORD) as store:
        assert await store.commit(make("e1"))


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``rehearse`` called in this process: its exit code, standard output and error."""
    monkeypatch.setenv("REHEARSE_CONFIG", "")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = rehearse(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_the_cli_says_in_one_line_when_the_database_cannot_be_used(
    tmp_path: Path, cli: Cli
) -> None:
    url = f"postgresql://rehearse@127.0.0.1:{postgres.free_port()}/rehearse"
    done = subprocess.run(  # a real process: nothing but the one line, not even at exit
        [sys.executable, "-m", "bot", "clients", "--db", url], capture_output=True,
        text=True, timeout=60, env={**os.environ, "REHEARSE_CONFIG": ""}, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"{url}: cannot connect to PostgreSQL")

    config = tmp_path / "config.yaml"
    config.write_text('storage:\n  database: "postgresql://rehearse:hunter2@db/rehearse"\n')
    code, _, err = cli("clients", "--config", str(config))
    assert code == 1
    assert err.startswith(f"{config}:2:13: `storage.database` must not contain a password")
    assert "hunter2" not in err and "REHEARSE_DATABASE_PASSWORD" in err
    code, _, err = cli("clients", "--db", "postgresql://rehearse:hunter2@db/rehearse")
    assert (code, "hunter2" in err) == (1, False)
    assert "must not contain a password" in err


def test_the_cli_works_on_postgresql(postgres_url: str, cli: Cli) -> None:
    code, out, err = cli("invite", "--script", "first-steps", "--db", postgres_url)
    assert code == 0, err
    code, out, err = cli("clients", "--db", postgres_url)
    assert (code, out.splitlines()) == (0, ["client\tstatus\tlevel\tscripts\ttherapist"])
    code, out, err = cli("report", "--all", "--db", postgres_url)
    assert code == 0, err
    code, out, err = cli("assign", "tg:1", "--none", "--db", postgres_url)
    assert (code, err) == (1, "rehearse assign: no client tg:1\n")
    code, out, err = cli("purge", "--db", postgres_url)
    assert (code, out) == (0, "purged 0 rows\n")
