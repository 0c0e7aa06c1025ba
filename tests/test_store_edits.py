"""An edit of a typed answer (from the session summary) is a stored answer of kind ``edit``:
kept beside the original, exported, dropped with the opt-out and gone after erasure, on both
backends; older databases are migrated to take it (SQLite 7, PostgreSQL 3)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import Commit, SqliteStore, Store, StoredAnswer, _migrations

pytestmark = pytest.mark.backends

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=2)
KEY = "2025-03-01T08:50:00+00:00/0"  # the session and the answer's place (bot.engine EDIT)


def typed(event: str, *answers: StoredAnswer, at: datetime = T0,
          drop: bool = False) -> Commit:
    return Commit(event_id=event, client_id="tg:1", at=at, state={"n": 1},
                  answers=answers, drop_answers=drop)


async def test_an_edit_is_kept_beside_the_original_exported_and_erased(store: Store) -> None:
    await store.commit(typed("e1", StoredAnswer("prompt-1", "first words", T0)))
    await store.commit(typed("e2", StoredAnswer(KEY, "what I meant", LATER, "edit"), at=LATER))
    assert [(a.step, a.text, a.kind) for a in await store.answers("tg:1")] == [
        ("prompt-1", "first words", "answer"), (KEY, "what I meant", "edit")]
    exported = str((await store.export("tg:1"))["answers"])
    assert "first words" in exported and "what I meant" in exported
    await store.erase("tg:1")
    assert await store.answers("tg:1") == []
    assert "what I meant" not in str(await store.export("tg:1"))


async def test_switching_keeping_off_drops_the_edits_too(store: Store) -> None:
    await store.commit(typed("e1", StoredAnswer("prompt-1", "first words", T0),
                             StoredAnswer(KEY, "what I meant", T0, "edit")))
    await store.commit(typed("e2", drop=True))
    assert await store.answers("tg:1") == []


async def test_a_database_of_schema_6_takes_edits_with_its_answers_kept(
        tmp_path: Path) -> None:
    db_path = tmp_path / "rehearse.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert _migrations.migrate(conn, _migrations.MIGRATIONS[:6]) == 0
    conn.execute("INSERT INTO answers (id, client_id, step, text, at, kind) VALUES "
                 "(7, 'tg:1', 'note-it', 'a note', '2025-03-01T09:00:00.000000Z', 'connection')")
    conn.close()
    async with SqliteStore(db_path) as store:
        await store.commit(typed("e1", StoredAnswer(KEY, "what I meant", LATER, "edit")))
        assert [(a.text, a.kind) for a in await store.answers("tg:1")] == [
            ("a note", "connection"), ("what I meant", "edit")]
    with sqlite3.connect(db_path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT id FROM answers WHERE kind = 'connection'").fetchone() == (7,)
        with pytest.raises(sqlite3.IntegrityError):  # still only the kinds the code writes
            check.execute("INSERT INTO answers (client_id, step, text, at, kind) "
                          "VALUES ('tg:1', 's', 't', 'x', 'other')")
    check.close()


async def test_a_postgresql_schema_of_version_2_takes_edits(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.store import _postgres_schema  # noqa: PLC0415  (needs the postgresql extra)
    from bot.store._postgres import PostgresStore  # noqa: PLC0415

    known = _postgres_schema.MIGRATIONS
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known[:2])
    async with PostgresStore(postgres_url) as store:
        await store.commit(typed("e1", StoredAnswer("prompt-1", "first words", T0)))
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known)
    async with PostgresStore(postgres_url) as store:
        await store.commit(typed("e2", StoredAnswer(KEY, "what I meant", LATER, "edit")))
        assert [a.kind for a in await store.answers("tg:1")] == ["answer", "edit"]
