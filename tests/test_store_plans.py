"""The client's safety plan in the store, on SQLite and PostgreSQL: every version kept with who
wrote it and when, the newest accepted one current, in the export, gone after erasure; and a
database of the schema before it (SQLite 5, PostgreSQL 1) migrated with its data kept.

Through the service as well: what the client writes in /safetyplan is committed with the
event, and the next event gets the plan (and a waiting suggestion) from the store."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.engine import Clinician, Command, SafetyPlan, Text
from bot.service import Rehearsal, current_plan
from bot.store import Commit, LedgerRecord, PlanRecord, SqliteStore, Store, _migrations
from tests.conftest import Clock
from tests.support.engine_driver import ServiceClient

pytestmark = pytest.mark.backends

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
STAMP = "2025-03-01T09:00:00.000000Z"


def version(parts: dict[str, str], author: str = "client", status: str = "accepted",
            changed: tuple[str, ...] = ("warning_signs",), suggestion: int | None = None,
            at: datetime = T0) -> PlanRecord:
    return PlanRecord(parts=parts, author=author, status=status, at=at, changed=changed,
                      suggestion=suggestion)


async def test_every_version_is_kept_numbered_per_client(store: Store) -> None:
    first = {"warning_signs": "not sleeping"}
    await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={},
                              plans=[version(first)]))
    suggested = version({"warning_signs": "not sleeping", "internal_coping": "a walk"},
                        author="tg:9000", status="suggested", changed=("internal_coping",),
                        at=T0 + MINUTE)
    accepted = version({**first, "internal_coping": "a walk"}, changed=("internal_coping",),
                       suggestion=2, at=T0 + 2 * MINUTE)
    await store.commit(Commit(event_id="e2", client_id="tg:1", at=T0 + MINUTE, state=None,
                              plans=[suggested, accepted]))
    await store.commit(Commit(event_id="e3", client_id="tg:2", at=T0, state={},
                              plans=[version({"warning_signs": "someone else's"})]))
    # a duplicate event adds nothing
    assert not await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={},
                                         plans=[version(first)]))

    versions = await store.safety_plans("tg:1")
    assert [(v.version, v.author, v.status, v.suggestion) for v in versions] == [
        (1, "client", "accepted", None), (2, "tg:9000", "suggested", None),
        (3, "client", "accepted", 2)]
    assert versions[1].parts == suggested.parts and list(versions[1].changed) == [
        "internal_coping"]
    assert [v.at for v in versions] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [v.version for v in await store.safety_plans("tg:2")] == [1]
    # what every event reads: the newest of each status only
    newest = await store.safety_plans("tg:1", newest=True)
    assert [(v.version, v.status) for v in newest] == [(2, "suggested"), (3, "accepted")]
    assert current_plan(newest, reviewed=0) == current_plan(versions, reviewed=0)
    plan, waiting = current_plan(versions, reviewed=0)
    assert plan == SafetyPlan(warning_signs="not sleeping", internal_coping="a walk")
    assert waiting is not None and waiting.version == 2 and waiting.by == "tg:9000"
    assert current_plan(versions, reviewed=2)[1] is None  # the client has been through it
    assert current_plan([], reviewed=0) == (None, None)


async def test_a_plan_is_in_the_export_and_gone_after_erasure(store: Store) -> None:
    text = "Z7Q call my sister\nshe knows what to do"
    await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={"n": 1},
                              ledger=[LedgerRecord("safety_plan", {"action": "saved"}, T0)],
                              plans=[version({"people_to_ask": text}, changed=("people_to_ask",))]))
    exported = await store.export("tg:1")
    assert json.loads(json.dumps(exported)) == exported
    assert exported["safety_plans"] == [{
        "version": 1, "at": STAMP, "author": "client", "status": "accepted",
        "changed": ["people_to_ask"], "suggestion": None, "parts": {"people_to_ask": text}}]

    await store.erase("tg:1")
    assert await store.safety_plans("tg:1") == []
    assert (await store.export("tg:1"))["safety_plans"] == []
    # a client starting again later starts at version 1
    await store.commit(Commit(event_id="e2", client_id="tg:1", at=T0, state={},
                              plans=[version({"warning_signs": "x"})]))
    assert [v.version for v in await store.safety_plans("tg:1")] == [1]


async def test_nul_and_markup_in_a_plan_round_trip(store: Store) -> None:
    text = "a\u0000b <b>c</b> \"d\" ✓"
    await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={},
                              plans=[version({"warning_signs": text})]))
    [saved] = await store.safety_plans("tg:1")
    assert saved.parts == {"warning_signs": text}


async def test_a_database_of_schema_5_gets_the_plans_table_with_its_data_kept(
        db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert _migrations.migrate(conn, _migrations.MIGRATIONS[:5]) == 0
    conn.execute("INSERT INTO clients (client_id, state, updated_at, version) "
                 "VALUES ('tg:1', '{\"n\": 1}', ?, 1)", (STAMP,))
    conn.close()

    async with SqliteStore(db_path) as store:
        assert await store.load_state("tg:1") == {"n": 1}
        assert await store.safety_plans("tg:1") == []
        await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state=None,
                                  plans=[version({"warning_signs": "x"})]))
        assert [v.version for v in await store.safety_plans("tg:1")] == [1]
    with sqlite3.connect(db_path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "rehearse.db"


async def test_a_postgresql_schema_of_version_1_gets_the_plans_table(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.store import _postgres_schema  # noqa: PLC0415  (needs the postgresql extra)
    from bot.store._postgres import PostgresStore  # noqa: PLC0415

    known = _postgres_schema.MIGRATIONS
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known[:1])
    async with PostgresStore(postgres_url) as store:
        await store.commit(Commit(event_id="e1", client_id="tg:1", at=T0, state={"n": 1}))
    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", known)
    async with PostgresStore(postgres_url) as store:
        assert await store.load_state("tg:1") == {"n": 1}
        await store.commit(Commit(event_id="e2", client_id="tg:1", at=T0, state=None,
                                  plans=[version({"warning_signs": "x"})]))
        assert [v.version for v in await store.safety_plans("tg:1")] == [1]


# -- through the service -----------------------------------------------------------------------


async def test_what_the_client_writes_is_committed_and_handed_back(
        loaded: Loaded, store: Store, clock: Clock) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    c = ServiceClient(service)
    await c.consent()
    await c.send(Command(name="safetyplan"))
    await c.press("Write my plan")
    await c.send(Text(text="When I stop answering my phone"))
    await c.press("Skip this part")
    [saved] = await store.safety_plans("tg:1")
    assert saved.parts["warning_signs"] == "When I stop answering my phone"
    assert saved.author == "client" and saved.status == "accepted"
    state = await service.state_of("tg:1")
    assert state.safety_plan == SafetyPlan(warning_signs="When I stop answering my phone")
    # the plan is never stored with the state, nor its text in the ledger
    raw = json.dumps(await store.load_state("tg:1"))
    assert "answering my phone" not in raw
    assert "answering my phone" not in json.dumps([r.data for r in await store.ledger("tg:1")])
    # the next event gets it: /sos shows it in its first message
    handled = await c.send(Command(name="sos"))
    assert handled.outcome is not None
    assert "When I stop answering my phone" in handled.outcome.messages[0].text
    # and /mydata has every version
    exported = (await c.send(Command(name="mydata"))).export
    assert exported is not None
    assert [v["parts"]["warning_signs"] for v in exported["safety_plans"]] == [  # type: ignore[index, union-attr]
        "When I stop answering my phone"]


async def test_a_suggestion_waits_for_the_client_and_is_never_their_plan_by_itself(
        loaded: Loaded, store: Store, clock: Clock) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    c = ServiceClient(service)
    await c.consent()
    await service.handle("tg:1", "cli:1", Clinician(
        action="suggest-plan", by="tg:9000", parts=(("internal_coping", "Cold water, a walk"),)))
    versions = await store.safety_plans("tg:1")
    assert [(v.author, v.status) for v in versions] == [("tg:9000", "suggested")]
    state = await service.state_of("tg:1")
    assert state.safety_plan is None  # nothing is the client's plan yet
    assert state.plan_suggestion is not None and state.plan_suggestion.version == 1
    handled = await c.send(Command(name="sos"))
    assert handled.outcome is not None
    assert "Cold water" not in " ".join(m.text for m in handled.outcome.messages)

    await c.send(Command(name="safetyplan"))
    await c.press("Write my plan")
    await c.press("Skip this part")  # warning signs
    await c.press("Use this wording")  # the suggested coping
    for _ in range(4):
        await c.press("Skip this part")
    versions = await store.safety_plans("tg:1")
    assert [(v.author, v.status, v.suggestion) for v in versions] == [
        ("tg:9000", "suggested", None), ("client", "accepted", 1)]
    state = await service.state_of("tg:1")
    assert state.safety_plan == SafetyPlan(internal_coping="Cold water, a walk")
    assert state.plan_suggestion is None and state.plan_reviewed == 1


async def test_erasure_covers_every_table_that_holds_a_client(db_path: Path) -> None:
    """A new table with a ``client_id`` column must be erased with the client (``updates``
    keeps handled ids as nobody's, for dedup; ``invites`` lose the client's id)."""
    from bot.store import _sqlite  # noqa: PLC0415

    async with SqliteStore(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        holding = {table for table in tables
                   if "client_id" in {row[1] for row in conn.execute(
                       f"PRAGMA table_info({table})")}}
    conn.close()
    assert "safety_plans" in holding
    assert holding - {"updates"} == set(_sqlite._CLIENT_TABLES)


async def test_erasure_covers_every_postgresql_table_that_holds_a_client(
        postgres_url: str) -> None:
    import psycopg  # noqa: PLC0415

    from bot.store import _postgres  # noqa: PLC0415

    async with _postgres.PostgresStore(postgres_url):
        pass
    with psycopg.connect(postgres_url) as conn:
        holding = {str(name) for (name,) in conn.execute(
            """SELECT table_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND column_name = 'client_id'""")}
    assert "safety_plans" in holding
    assert holding - {"updates"} == set(_postgres._CLIENT_TABLES)
