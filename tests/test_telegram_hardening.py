"""Attacks on the Telegram edge: bad updates, data the store refuses, duplicate storms, stops.

Each test runs the real bot (``TelegramEdge`` on a real ``SqliteStore``) against the fake
Bot API server, which serves malformed updates verbatim (``FakeBotApi.send_raw``) and holds
updates back so that several arrive in one batch (``hold_updates``). What must hold:

* one update python-telegram-bot cannot read never holds up the others in its batch: it is
  skipped by id (its sender told so, where the raw JSON names a private chat), the offset
  passes the highest id seen, odd ids cause no refetch loop, and no message text reaches a
  log at any level;
* text the database cannot store (a lone UTF-16 surrogate) is made storable, and a storage
  error caused by one update's data is not mistaken for an outage;
* a message Telegram accepted is never sent again because recording it failed;
* a flood limit on ``getUpdates`` never keeps the bot deaf for longer than a capped wait;
* a stop in the middle of a burst ends within a bounded drain, losing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telegram import Update

from bot.app import Loaded
from bot.store import Commit, SqliteStore, StoredAnswer
from bot.telegram import TelegramEdge, Waits
from bot.telegram import _edge as edge_module
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi, JSONDict
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    choose_script,
    give_consent,
    labels,
    running_edge,
    settle,
    wait_until,
)
from tests.test_faults_storage import fill, small_tmpfs

ADA, BEA, CAI = 1001, 1002, 1003


#: The poller retries quickly (and a batch that failed for lack of storage waits 5 s).
WAITS = Waits(poll_backoff=(0.2, 0.5, 1.0))


@pytest.fixture
def waits() -> Waits:
    """The edge's waits (a test may parametrize its own)."""
    return WAITS


@pytest.fixture
async def bot(fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
              tmp_path: Path, waits: Waits) -> AsyncIterator[TelegramEdge]:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [ADA, BEA, CAI]},
                         sending={"backoff_seconds": [0.5, 1.0, 2.0]})
    async with running_edge(config, loaded, store, waits=waits) as edge:
        yield edge


async def at_menu(client: TelegramClient, **choices: object) -> None:
    await client.send("/start")
    await give_consent(client, **choices)  # type: ignore[arg-type]
    await client.until(lambda m: "First steps in sharing" in labels(m))


async def one_batch(api: FakeBotApi, *sends: Callable[[], Awaitable[object]]) -> None:
    """Queue updates so that the bot fetches them all in one ``getUpdates``."""
    api.hold_updates()
    for send in sends:
        await send()
    await api.release_updates()


def texts(client: TelegramClient) -> list[str]:
    return [message.text.strip() for message in client.messages]


def handled(db: Path, update_id: int) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox WHERE event_id = ?",
                                (f"tg:{update_id}",)).fetchone()[0])


async def polls_during(api: FakeBotApi, seconds: float) -> int:
    before = len(api.calls("getUpdates"))
    await asyncio.sleep(seconds)
    return len(api.calls("getUpdates")) - before


# -- updates python-telegram-bot cannot read -------------------------------------------------
def entity_without_offset(api: FakeBotApi) -> tuple[JSONDict | str, int]:
    update = api.text_update(CAI, "/help", first_name="Cai")
    del update["message"]["entities"][0]["offset"]
    return update, update["update_id"]


def poll_without_persistent_id(api: FakeBotApi) -> tuple[JSONDict | str, int]:
    """A poll as a self-hosted Bot API server older than 9.6 sends it."""
    update = api.text_update(CAI, "/help", first_name="Cai")
    message = update["message"]
    del message["text"], message["entities"]
    message["poll"] = {
        "id": "1", "question": "Tea?", "options": [{"text": "yes", "voter_count": 0}],
        "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
        "allows_multiple_answers": False,
    }
    return update, update["update_id"]


def nested_100000_deep(api: FakeBotApi) -> tuple[JSONDict | str, int]:
    update = api.text_update(CAI, "/help", first_name="Cai")
    deep = "[" * 100_000 + "]" * 100_000
    raw = json.dumps(update).replace('"message": {', '"message": {"deep": ' + deep + ", ", 1)
    return raw, update["update_id"]


@pytest.mark.parametrize("attack", [entity_without_offset, poll_without_persistent_id,
                                    nested_100000_deep])
async def test_an_update_that_cannot_be_read_is_skipped_and_holds_nobody_up(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say, tmp_path: Path,
    attack: Callable[[FakeBotApi], tuple[JSONDict | str, int]],
) -> None:
    ada, bea = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, BEA, "Bea")
    cai = TelegramClient(fake_api, CAI, "Cai")
    bad, bad_id = attack(fake_api)
    ids: list[int] = []

    async def from_ada() -> None:
        ids.append(await ada.send("/help"))

    async def from_bea() -> None:
        ids.append(await bea.send("/help"))

    async def the_bad_one() -> None:
        await fake_api.send_raw(bad, update_id=bad_id)

    await one_batch(fake_api, from_ada, the_bad_one, from_bea)
    await ada.expect(say("help"))
    await bea.expect(say("help"))
    await cai.expect(say("error.generic"))  # told, since its chat could be read
    await settle(fake_api, store)
    assert [handled(tmp_path / "rehearse.db", i) for i in ids] == [1, 1]
    assert await polls_during(fake_api, 1.5) <= 3  # long polls, no refetch loop
    await cai.send("/help")  # the bot goes on for everyone
    await cai.expect(say("help"))
    assert not ada.unread and not bea.unread and not cai.unread


async def test_an_update_without_a_usable_id_neither_kills_nor_stalls_polling(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
) -> None:
    """``"update_id": "7x"`` last in a batch once killed the polling task without a word."""
    ada, cai = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, CAI, "Cai")
    update = fake_api.text_update(CAI, "/help", first_name="Cai")
    confirm_id, update["update_id"] = update["update_id"], "7x"

    async def the_bad_one() -> None:
        await fake_api.send_raw(update, update_id=confirm_id)

    await one_batch(fake_api, lambda: ada.send("/help"), the_bad_one)
    await ada.expect(say("help"))
    # Served again and again (no offset can confirm it alone): no hot loop meanwhile ...
    assert await polls_during(fake_api, 1.5) <= 8
    # ... and the bot still answers; the next offset confirms it along with what came after.
    await ada.send("/help")
    await ada.expect(say("help"))
    await settle(fake_api, store)
    assert not cai.messages  # nothing it could be sure of to answer


async def test_duplicate_lower_and_swapped_ids_are_handled_once_without_a_refetch_loop(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say, tmp_path: Path,
) -> None:
    ada, bea = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, BEA, "Bea")
    old = fake_api.text_update(BEA, "/privacy", first_name="Bea")
    await fake_api.send_raw(old)
    await bea.next_one()
    await settle(fake_api, store)
    first = fake_api.text_update(ADA, "/help", first_name="Ada")
    second = fake_api.text_update(BEA, "/help", first_name="Bea")

    async def send(update: JSONDict) -> int:
        return await fake_api.send_raw(update)

    # Swapped, the first one twice, and last an old one handled before (a lower id).
    await one_batch(fake_api, lambda: send(second), lambda: send(first), lambda: send(first),
                    lambda: send(old))
    await ada.expect(say("help"))
    await bea.expect(say("help"))
    await settle(fake_api, store)
    # Each fetched once: the offset passed the highest id at once, never the last one's.
    assert [fake_api.deliveries[u["update_id"]] for u in (old, first, second)] == [2, 2, 1]
    assert await polls_during(fake_api, 1.5) <= 3
    assert not ada.unread and not bea.unread
    db = tmp_path / "rehearse.db"
    assert [handled(db, u["update_id"]) for u in (old, first, second)] == [1, 1, 1]


async def test_no_message_text_reaches_a_log_at_any_level(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """python-telegram-bot once dumped the whole batch at CRITICAL (and every update and
    sent text at DEBUG)."""
    caplog.set_level(logging.DEBUG)
    ada, bea = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, BEA, "Bea")
    bad, bad_id = entity_without_offset(fake_api)

    async def the_bad_one() -> None:
        await fake_api.send_raw(bad, update_id=bad_id)

    await one_batch(fake_api, lambda: ada.send("/help"), the_bad_one,
                    lambda: bea.send("my secret walrus words"))
    with contextlib.suppress(TimeoutError):  # the logs first, whether or not it answers
        await fake_api.wait_for_messages(BEA, 1)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "walrus" not in logged
    await ada.expect(say("help"))
    await settle(fake_api, store)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "walrus" not in logged
    assert say("help")[:40] not in logged  # nor what the bot sent
    assert any(r.name.startswith("telegram") for r in caplog.records)  # PTB did log


# -- the loops are supervised -----------------------------------------------------------------
async def polling_failed(caplog: pytest.LogCaptureFixture, times: int) -> None:
    """Wait until the polling loop has failed ``times`` times."""
    async def failed() -> bool:
        return sum("the polling loop failed" in r.getMessage()
                   for r in caplog.records) >= times

    await wait_until(failed, timeout=10, what=f"{times} failures of the polling loop")


async def test_a_polling_loop_that_fails_is_restarted(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken answer to the apology for an unreadable update (python-telegram-bot raises
    AttributeError, no TelegramError) escapes the polling loop: it is restarted."""
    ada = TelegramClient(fake_api, ADA, "Ada")
    fake_api.garble("sendMessage")
    bad, bad_id = entity_without_offset(fake_api)
    await fake_api.send_raw(bad, update_id=bad_id)
    await polling_failed(caplog, 1)
    await ada.send("/help")
    await ada.expect(say("help"))
    await settle(fake_api, store)
    assert not bot.failed and not bot._tasks[0].done()


async def test_a_loop_that_keeps_failing_stops_the_bot(
    bot: TelegramEdge, fake_api: FakeBotApi, caplog: pytest.LogCaptureFixture,
) -> None:
    """Rather than live on deaf: ``edge.failed`` makes ``rehearse run`` exit 1."""
    fake_api.garble("sendMessage", times=None)
    for failures in range(1, edge_module.MAX_RESTARTS + 1):
        bad, bad_id = entity_without_offset(fake_api)
        await fake_api.send_raw(bad, update_id=bad_id)
        await polling_failed(caplog, failures)
    await asyncio.wait_for(bot.wait(), timeout=5)
    assert bot.failed
    assert "the polling loop keeps failing; stopping" in caplog.text


# -- storage errors caused by data -----------------------------------------------------------
async def test_a_lone_surrogate_in_a_kept_answer_is_stored_replaced_and_holds_nobody_up(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
) -> None:
    ada, bea = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, BEA, "Bea")
    await ada.send("/start")
    await give_consent(ada, free_text=True)
    await choose_script(ada, "First steps")
    for _ in range(3):
        await ada.until(lambda m: "Go on" in labels(m))
        await ada.press("Go on")
    for level in ("3", "4"):
        await ada.until(lambda m: "10" in labels(m))
        await ada.press(level)
    await ada.until(lambda m: "I shared it" in labels(m))
    await settle(fake_api, store)

    await fake_api.send_raw(fake_api.text_update(ADA, "I told my sister \ud800 today"))
    started = time.monotonic()
    await bea.send("/help")
    await bea.expect(say("help"))
    assert time.monotonic() - started < WAITS.refetch_after_failure
    await ada.expect(say("prompt.ack"))
    await settle(fake_api, store)
    assert [a.text for a in await store.answers("tg:1001")] == ["I told my sister \ufffd today"]


async def test_a_storage_error_caused_by_one_updates_data_is_not_waited_out(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite refusing data (here: a string it cannot encode) fails again however long the
    bot waits: that update is given up like a bug, not refetched every 5 s forever."""
    tried: list[int] = []

    handle = bot.handlers.handle

    async def unstorable(update: Update) -> None:  # before the gatekeepers
        message = update.effective_message
        if message is not None and message.text == "/progress":
            tried.append(update.update_id)
            now = datetime.now(UTC)
            await store.commit(Commit(
                event_id=f"test:{update.update_id}:{len(tried)}", client_id="tg:1001", at=now,
                state=None, answers=[StoredAnswer("step", "\ud800", now)]))
        await handle(update)

    monkeypatch.setattr(bot.handlers, "handle", unstorable)
    ada, bea = TelegramClient(fake_api, ADA, "Ada"), TelegramClient(fake_api, BEA, "Bea")
    await ada.send("/progress")
    await ada.expect(say("error.generic"), timeout=10)
    assert len(tried) == edge_module.MAX_ATTEMPTS
    started = time.monotonic()
    await bea.send("/help")
    await bea.expect(say("help"))
    assert time.monotonic() - started < WAITS.refetch_after_failure
    await settle(fake_api, store)
    assert len(tried) == edge_module.MAX_ATTEMPTS


# -- no duplicate storms -----------------------------------------------------------------------
async def sos_sent_while(
    api: FakeBotApi, store: SqliteStore, client: TelegramClient,
    break_store: Callable[[], Awaitable[None]], fix_store: Callable[[], Awaitable[None]],
    seconds: float,
) -> list[str]:
    """/sos is committed while Telegram is down; its replies are sent while the store cannot
    record them as sent, for ``seconds``. Returns the texts the client got for it."""
    await at_menu(client)
    await settle(api, store)
    before = len(client.messages)
    api.fail("sendMessage", status=502, times=None)
    await client.send("/sos")
    await api.wait_for(lambda: api.pending_updates == 0, timeout=10)  # committed
    await break_store()
    api.clear_faults()
    await api.wait_for(lambda: len(client.messages) > before, timeout=10)
    await asyncio.sleep(seconds)
    await fix_store()
    await settle(api, store, timeout=15)
    return texts(client)[before:]


async def test_a_read_only_database_while_sending_causes_no_duplicates(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore,
) -> None:
    async def read_only() -> None:
        await store._run(lambda c: c.execute("PRAGMA query_only = 1"))

    async def writable() -> None:
        await store._run(lambda c: c.execute("PRAGMA query_only = 0"))

    ada = TelegramClient(fake_api, ADA, "Ada")
    got = await sos_sent_while(fake_api, store, ada, read_only, writable, 4)
    assert got and max(Counter(got).values()) == 1, Counter(got)
    assert all(not task.done() for task in bot._tasks)


async def test_a_full_disk_while_sending_a_crisis_reply_causes_no_duplicates(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        db = disk / "bot.db"
        config = edge_config(fake_api, db, access={"mode": "allowlist", "allowlist": [ADA]},
                             sending={"backoff_seconds": [0.5, 1.0, 2.0]})
        async with SqliteStore(db) as store, running_edge(config, loaded, store, waits=WAITS):
            filler: list[Path] = []

            async def full() -> None:
                filler.append(fill(disk))

            async def room() -> None:
                filler[0].unlink()

            ada = TelegramClient(fake_api, ADA, "Ada")
            got = await sos_sent_while(fake_api, store, ada, full, room, 4)
            assert got and max(Counter(got).values()) == 1, Counter(got)


# -- flood limits on getUpdates --------------------------------------------------------------
@pytest.mark.parametrize("waits", [dataclasses.replace(WAITS, max_retry_after=1.0)])
async def test_a_long_retry_after_on_get_updates_is_capped(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ada = TelegramClient(fake_api, ADA, "Ada")
    await settle(fake_api, store)
    fake_api.fail("getUpdates", status=429, retry_after=600)
    await fake_api.wait_for(lambda: not fake_api._faults)
    await ada.send("/sos")
    await ada.next_one(timeout=5)  # answered within the cap, not 10 minutes later
    assert any("600" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


# -- stopping in the middle of a burst ---------------------------------------------------------
async def test_a_stop_mid_burst_ends_within_the_drain_and_loses_nothing(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path,
) -> None:
    """60 clients write at once while Telegram answers each send slowly; the bot stops.

    Everything fetched is committed; what the drain could not send stays in the outbox and
    goes out after the next start."""
    db = tmp_path / "rehearse.db"
    users = list(range(5001, 5061))
    config = edge_config(fake_api, db, access={"mode": "allowlist", "allowlist": users})
    drain = 2.0
    async with SqliteStore(db) as store:
        edge = TelegramEdge(config, loaded, store, waits=WAITS)
        await edge.start()
        clients = [TelegramClient(fake_api, user, "Burst") for user in users]
        fake_api.delay("sendMessage", 0.4, times=None)
        ids = [await client.send("/start") for client in clients]
        await fake_api.wait_for(lambda: len(fake_api.calls("sendMessage")) >= 4)
        started = time.monotonic()
        await edge.stop(drain_seconds=drain)
        took = time.monotonic() - started
        assert took < drain + edge_module.STOP_GRACE + 1.0, f"stopping took {took:.1f} s"
        fetched = [i for i in ids if handled(db, i)]
        left = await store.pending_outbox(datetime.now(UTC) + timedelta(days=1), limit=500)
        assert left, "the drain should not have had time for everything"
        fake_api.clear_faults()

        edge = TelegramEdge(config, loaded, store, waits=WAITS)
        await edge.start()
        try:
            await settle(fake_api, store, timeout=60)
        finally:
            await edge.stop(drain_seconds=drain)
        assert all(handled(db, i) == 1 for i in ids)
        assert set(fetched) <= set(ids)
        for client in clients:
            assert client.messages, f"client {client.user_id} got no reply"
