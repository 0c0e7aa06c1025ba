"""Refused groups in the store, on SQLite and PostgreSQL: each group is refused once ever —
across a restart, and of several workers at once only one is told to refuse it — untouched by
erasure and the purge; and a database of the schema before it (SQLite 7, PostgreSQL 3) takes
it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import Commit, SqliteStore, Store, _migrations, store_for

pytestmark = pytest.mark.backends

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
GROUP = -4_000_000_001
SUPERGROUP = -1_001_234_567_890  # beyond 32 bits


async def test_a_group_is_refused_once_even_after_a_restart(database: str) -> None:
    async with store_for(database) as store:
        assert await store.refuse_group(GROUP)
        assert not await store.refuse_group(GROUP)
        assert await store.refuse_group(SUPERGROUP)  # another group: its own refusal
    async with store_for(database) as store:
        assert not await store.refuse_group(GROUP)
        assert not await store.refuse_group(SUPERGROUP)


async def test_of_several_workers_at_once_one_refuses_a_group(
    store: Store, database: str
) -> None:
    async with store_for(database) as other:
        told = await asyncio.gather(*(s.refuse_group(GROUP) for s in (store, other) * 4))
    assert told.count(True) == 1


async def test_erasure_and_the_purge_leave_refused_groups_alone(store: Store) -> None:
    await store.commit(Commit(event_id="e1", client_id="tg:1001", at=T0, state={"n": 1}))
    assert await store.refuse_group(GROUP)
    await store.erase("tg:1001")
    await store.erase(f"tg:{GROUP}")  # a group's chat is no client's
    await store.purge(T0 + timedelta(days=3650), ledger_days=0, answers_days=0,
                      technical_days=0)
    assert not await store.refuse_group(GROUP)


async def test_a_database_of_schema_7_takes_refused_groups(tmp_path: Path) -> None:
    db_path = tmp_path / "rehearse.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert _migrations.migrate(conn, _migrations.MIGRATIONS[:7]) == 0
    conn.close()
    async with SqliteStore(db_path) as store:
        assert await store.refuse_group(GROUP)
        assert not await store.refuse_group(GROUP)
    with sqlite3.connect(db_path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
        assert check.execute("SELECT chat_id FROM refused_groups").fetchall() == [(GROUP,)]
    check.close()


async def test_a_postgresql_schema_of_version_3_takes_refused_groups(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.store import _postgres_schema  # noqa: PLC0415  (needs the postgresql extra)
    from bot.store._postgres import PostgresStore  # noqa: PLC0415

    known = _postgres_schema.MIGRATIONS
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known[:3])
    async with PostgresStore(postgres_url) as store:
        await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={"n": 1}))
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known)
    async with PostgresStore(postgres_url) as store:
        assert await store.load_state("tg:1") == {"n": 1}
        assert await store.refuse_group(SUPERGROUP)
        assert not await store.refuse_group(SUPERGROUP)
