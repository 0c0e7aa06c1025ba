"""What the database files keep of what clients typed and of their first names.

* Typed text lives only in the ``answers`` table, the connection log's note included: kept
  only with the opt-in, removed by the purge past ``answers_days`` and by erasure, never in
  the client's state. A database saved when the note was kept in the state is migrated.
* Switching keep-what-I-type off asks whether to delete what was kept so far.
* A first name is in the files while its message waits in the outbox, and is gone from the
  database file and its WAL shortly after the message was sent.

Real engine, scripts and texts, real SQLite files (searched byte by byte), the real CLI; the
last test runs the real bot against the fake Bot API.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.config import load_config
from bot.engine import ClientState, Command, Start, Text
from bot.service import Rehearsal
from bot.store import Commit, Invite, OutgoingMessage, SqliteStore
from bot.telegram import code_hash, new_code
from tests.conftest import ROOT, Clock, edge_config
from tests.support.engine_driver import ServiceClient
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import TelegramClient, give_consent, running_edge, settle

FIXTURE = ROOT / "tests" / "fixtures" / "store" / "v1-connection-notes.sql"
NOTE = "zq41 coffee with Sam, we laughed about the dog"
PREFER = ("go", "r2", "l0")  # go on, a low rating, "yes" to relief


def raw_files(db: Path) -> bytes:
    """The bytes of the database file and its WAL, as they are on disk."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def stored_state(db: Path, client_id: str) -> str:
    """The client's state exactly as stored (JSON text)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT state FROM clients WHERE client_id = ?", (client_id,))
        return str(row.fetchone()[0])
    finally:
        conn.close()


async def to_the_connection_log(c: ServiceClient, store: SqliteStore) -> None:
    """Consent (keeping what they type), then "A story of connection" up to its note."""
    await c.send(Start())
    for label in ("I agree", "Yes", "Yes, please", "No, thanks", "No, thanks", "No, thanks"):
        await c.press(label)
    await c.press("A story of connection")
    for _ in range(40):
        state = ClientState.model_validate(await store.load_state(c.client_id))
        assert state.session is not None
        if state.session.frame.part == "connection":
            return
        codes = [b.data.partition(":")[2] for b in c.keyboard]
        await c.press(next(code for code in PREFER if code in codes))
    raise AssertionError("never reached the connection log")


def texts_of(c: ServiceClient) -> list[str]:
    assert c.last is not None and c.last.outcome is not None
    return [m.text for m in c.last.outcome.messages]


# -- the connection log's note ---------------------------------------------------------------

async def test_the_note_is_a_stored_answer_and_goes_with_the_purge(
        loaded: Loaded, tmp_path: Path) -> None:
    db = tmp_path / "rehearse.db"
    clock = Clock(datetime.now(UTC) - timedelta(days=100))  # the purge below runs on real time
    async with SqliteStore(db) as store:
        service = Rehearsal(loaded.engine, store, clock)
        ada = ServiceClient(service, "tg:71")
        await to_the_connection_log(ada, store)
        await ada.send(Text(text=NOTE))
        [note] = await store.answers("tg:71")
        assert (note.text, note.kind, note.step) == (NOTE, "connection", "note-it")
        assert NOTE not in stored_state(db, "tg:71")  # never in the state, opt-in or not
        assert (await service.state_of("tg:71")).progress.last_connection == NOTE
        # A later session shows it back (the script's `last_connection`).
        await ada.send(Command(name="stop"))
        await ada.press("Only this exercise")
        await ada.send(Start())
        await ada.press("A story of connection")
        shown: list[str] = []
        for _ in range(10):
            shown += texts_of(ada)
            if any(NOTE in text for text in shown):
                break
            codes = [b.data.partition(":")[2] for b in ada.keyboard]
            await ada.press(next(code for code in PREFER if code in codes))
        assert any("The most recent" in text and NOTE in text for text in shown)
        for row in await store.pending_outbox(clock.advance(days=1), limit=500):
            await store.mark_sent(row.id, clock(), [row.id])  # as the bot's sender does
    assert NOTE.encode() in raw_files(db)

    # 100 days later (answers_days is 90): `rehearse purge` removes it from every file.
    assert await asyncio.to_thread(rehearse, ["purge", "--db", str(db)]) == 0
    assert NOTE.encode() not in raw_files(db)
    async with SqliteStore(db) as store:
        service = Rehearsal(loaded.engine, store, clock)
        assert await store.answers("tg:71") == []
        state = await service.state_of("tg:71")
        assert state.progress.connections == 1 and state.progress.last_connection is None


async def test_a_database_with_notes_in_the_state_is_migrated(
        loaded: Loaded, tmp_path: Path) -> None:
    db = tmp_path / "rehearse.db"
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    assert b"NOTE-103" in raw_files(db)  # past its retention, yet in tg:103's state
    async with SqliteStore(db) as store:
        assert await store.cleaned(timeout=5)
        service = Rehearsal(loaded.engine, store, Clock())
        for client in ("tg:101", "tg:102", "tg:103"):
            assert "last_connection" not in stored_state(db, client)
            assert json.loads(stored_state(db, client))["progress"]["connections"] == 1
        # Kept on: the answer is the note, shown as before.
        assert [(a.text, a.kind) for a in await store.answers("tg:101")] == [
            ("NOTE-101 coffee with Sam, we laughed", "connection")]
        note = (await service.state_of("tg:101")).progress.last_connection
        assert note == "NOTE-101 coffee with Sam, we laughed"
        # Switched off: the answer stays an answer (as it was kept), the script no longer sees it.
        assert [a.kind for a in await store.answers("tg:102")] == ["connection"]
        assert (await service.state_of("tg:102")).progress.last_connection is None
        # Purged: the answer is gone, so is the note, from every byte of the files.
        assert await store.answers("tg:103") == []
        assert (await service.state_of("tg:103")).progress.last_connection is None
    raw = raw_files(db)
    assert b"NOTE-103" not in raw
    assert raw.count(b"NOTE-101") == 1  # once, in the answers table


# -- switching keep-what-I-type off ----------------------------------------------------------

async def test_switching_keep_what_i_type_off_asks_about_what_was_kept(
        loaded: Loaded, tmp_path: Path, clock: Clock) -> None:
    def say(key: str, **values: object) -> str:
        return str(loaded.renderer.system(key, **values)).strip()

    db = tmp_path / "rehearse.db"
    days = loaded.engine.resources.policy.answers_days
    async with SqliteStore(db, cleanup_retry=0.05) as store:
        service = Rehearsal(loaded.engine, store, clock)
        for client, label, choice in (("tg:81", "Delete them", "delete"),
                                      ("tg:82", "Keep them", "keep")):
            c = ServiceClient(service, client)
            await to_the_connection_log(c, store)
            await c.send(Text(text=f"{NOTE} {client}"))
            await c.send(Command(name="settings"))
            await c.press("Keeping what I type")
            [question] = texts_of(c)
            assert question == say("settings.kept_answers")
            assert [b.label for b in c.keyboard] == ["Delete them", "Keep them"]
            state = await service.state_of(client)
            assert "store_free_text" not in state.consents  # off already, whatever the answer
            await c.press(label)
            done, menu = texts_of(c)
            assert done == (say("settings.answers_deleted") if choice == "delete"
                            else say("settings.answers_kept", answers_days=days))
            assert "Keep what you type: no" in menu
            ledger = [(r.kind, r.data) for r in await store.ledger(client)]
            assert ledger[-2:] == [
                ("consent", {"opt": "store_free_text", "given": False,
                             "version": load_config(None, {}).consent.version}),
                ("kept_answers", {"choice": choice})]
            await c.send(Text(text=f"{NOTE} typed after {client}"))  # kept no longer
        assert await store.answers("tg:81") == []
        assert [a.text for a in await store.answers("tg:82")] == [f"{NOTE} tg:82"]
        assert await store.cleaned(timeout=5)
    raw = raw_files(db)
    assert f"{NOTE} tg:81".encode() not in raw
    assert f"{NOTE} tg:82".encode() in raw
    assert b"typed after" not in raw


# -- first names -----------------------------------------------------------------------------

async def test_first_names_leave_the_files_once_their_messages_are_sent(tmp_path: Path) -> None:
    """Many clients' messages with their names, queued, deferred, sent or dropped in any order
    (b-tree pages split and merge): once all are out, no name is in the database or its WAL."""
    db = tmp_path / "rehearse.db"
    rng = random.Random(5)
    names = [f"Firstname{n:03d}x" for n in range(30)]
    now = datetime(2026, 11, 25, 9, tzinfo=UTC)
    async with SqliteStore(db, sent_cleanup_delay=0.05) as store:
        for round_ in range(20):
            for n, name in enumerate(names):
                text = f"Welcome, {name}. " + "Here is the next step. " * rng.randint(1, 60)
                await store.commit(Commit(
                    event_id=f"e{round_}:{n}", client_id=f"tg:{n}", at=now, state={"r": round_},
                    outbox=[OutgoingMessage(f"tg:{n}", n, {"text": text})] * rng.randint(1, 3),
                    cancel_outbox=rng.random() < 0.1))
            for row in await store.pending_outbox(now, limit=rng.randint(10, 80)):
                if rng.random() < 0.2:
                    await store.defer_outbox(row.id, now, attempts=1)
                else:
                    await store.mark_sent(row.id, now, [rng.randint(1, 10**9)])
        assert any(name.encode() in raw_files(db) for name in names)
        while rows := await store.pending_outbox(now, limit=500):
            for row in rows:
                await store.mark_sent(row.id, now, [rng.randint(1, 10**9)])
        assert await store.cleaned(timeout=5)
        raw = raw_files(db)
        assert [name for name in names if name.encode() in raw] == []


async def test_the_bot_keeps_a_first_name_only_until_its_message_is_sent(
        fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path) -> None:
    db = tmp_path / "rehearse.db"
    name = "Ysoldewyn"
    async with SqliteStore(db, sent_cleanup_delay=0.05) as store:
        code = new_code()
        now = datetime.now(UTC)
        await store.add_invite(Invite(code_hash=code_hash(code), script_id="first-steps",
                                      max_level=2, expires_at=now + timedelta(days=1),
                                      created_at=now))
        async with running_edge(edge_config(fake_api, db), loaded, store):
            client = TelegramClient(fake_api, 5150, name)
            await client.send(f"/start {code}")
            # greeted by name, in the message that asks for consent (left unread for it)
            [welcome] = await fake_api.wait_for_messages(5150, 1)
            assert name in welcome.text
            await give_consent(client)
            await settle(fake_api, store)
            assert await store.cleaned(timeout=5)
            assert name.encode() not in raw_files(db)
            assert await store.client_ids() == ["tg:5150"]
