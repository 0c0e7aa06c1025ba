"""Faults between the bot and Telegram: flood limits, outages, server errors, blocks.

The promise under test: no message is lost. Every message the bot meant to send arrives, in
order, exactly once wherever Telegram answered "no" (429, 5xx, a dropped connection before
Telegram acted, an outage). The one place a duplicate is allowed is a send that Telegram
carried out but whose answer was lost (the connection dropped or timed out *after* Telegram
acted): the bot cannot tell that apart from a send that failed, so it sends again (at least
once). And a client who blocks the bot is treated as having said /stop.

Waiting is short and bounded everywhere: the sender's backoff is set to 0.5/1/2 s through
``sending.backoff_seconds`` and the poller's through the edge's :class:`~bot.telegram.Waits`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from telegram import Update

from bot.app import Loaded
from bot.config import Config
from bot.engine import Command
from bot.store import SqliteStore, StoreError
from bot.telegram import TelegramEdge, Waits
from bot.telegram import _edge as edge_module
from bot.telegram._sender import JOINER
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    give_consent,
    labels,
    running_edge,
    settle,
    transcript,
)

BLOCKED = "Forbidden: bot was blocked by the user"
CONFLICT = ("Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running")
FAR = Clock().now + timedelta(days=3650)


#: The poller retries quickly (and a batch that failed for lack of storage waits 5 s).
WAITS = Waits(poll_backoff=(0.5, 1.0, 2.0))


def privacy(say: Say) -> str:
    """The /privacy answer with the default retention periods."""
    return say("privacy", retention_days=730, answers_days=90)


def fault_config(api: FakeBotApi, db: Path) -> Config:
    return edge_config(api, db, access={"mode": "allowlist", "allowlist": [1001, 1002]},
                       sending={"backoff_seconds": [0.5, 1.0, 2.0]})


@pytest.fixture
async def bot(fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
              tmp_path: Path) -> AsyncIterator[TelegramEdge]:
    async with running_edge(fault_config(fake_api, tmp_path / "rehearse.db"), loaded,
                            store, waits=WAITS) as edge:
        yield edge


async def consented(client: TelegramClient, **choices: object) -> None:
    """/start and consent; the client is at the menu afterwards."""
    await client.send("/start")
    await give_consent(client, **choices)  # type: ignore[arg-type]
    await client.until(lambda m: "First steps in sharing" in labels(m))


def count(client: TelegramClient, text: str) -> int:
    """How often the bot sent ``text``: as a message, or as a part of one."""
    stream, part = JOINER + transcript(client.texts) + JOINER, JOINER + text.strip() + JOINER
    return sum(stream.startswith(part, at) for at in range(len(stream)))


# -- flood control ---------------------------------------------------------------------------
async def test_a_429_storm_loses_nothing_and_keeps_order(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    await ada.send("/start")
    await ada.next_one()
    fake_api.fail("sendMessage", status=429, retry_after=1, times=4)
    for text in ("/help", "/privacy", "/help"):
        await ada.send(text)
    await bea.send("/help")
    for text in (say("help"), privacy(say), say("help")):
        await ada.expect(text, timeout=20)
    await bea.expect(say("help"), timeout=20)
    await settle(fake_api, store)
    assert not ada.unread and not bea.unread  # exactly once: Telegram said no each time
    sends = [r for r in fake_api.requests if r.method == "sendMessage"]
    assert len(sends) == 4 + len(ada.messages) + len(bea.messages)  # 4 refused, none lost


async def test_telegrams_own_flood_limits_are_absorbed(
    store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say
) -> None:
    """Against a server enforcing ~1 message/s per chat (bursts of 3), with our own pacing
    off: the 429s it answers delay messages but lose or reorder none."""
    async with FakeBotApi(rate_limits=True) as api, running_edge(
            fault_config(api, tmp_path / "rehearse.db"), loaded, store, waits=WAITS):
        ada = TelegramClient(api, 1001, "Ada")
        commands = ["/help", "/privacy", "/help", "/privacy", "/help", "/privacy"]
        for text in commands:
            await ada.send(text)
        for _ in range(3):
            await ada.expect(say("help"), timeout=20)
            await ada.expect(privacy(say), timeout=20)
        await settle(api, store)
        assert not ada.unread
        assert any(r.method == "sendMessage" for r in api.requests)


# -- outages ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "scale"), [(3, 1.0), (30, 0.1)],
                         ids=["3s", "30s-at-a-tenth"])
async def test_an_outage_loses_no_message(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say,
    seconds: int, scale: float,
) -> None:
    """Telegram answers every request with 502 for a while (3 s, and 30 s with every wait of
    the bot a tenth as long: the same retries as a real 30 s outage, in 3 s). Messages queued
    before and during the outage, and updates sent during it, all arrive afterwards."""
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [1001, 1002]},
                         sending={"backoff_seconds": [0.5 * scale, 1.0 * scale, 2.0 * scale]})
    waits = Waits(poll_backoff=tuple(w * scale for w in WAITS.poll_backoff),
                  refetch_after_failure=WAITS.refetch_after_failure * scale)
    async with running_edge(config, loaded, store, waits=waits) as bot:
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        intro = await ada.next_one()
        await settle(fake_api, store)

        fake_api.outage(seconds * scale)
        # A message queued while Telegram is down (as a reminder would be) ...
        await bot.service.handle("tg:1001", "test:help-in-outage", Command(name="help"))
        bot.sender.wake.set()
        # ... and the client acting meanwhile (Telegram keeps their updates for the bot).
        await ada.press("I agree", intro)
        await ada.send("/privacy")
        await fake_api.wait_for(lambda: len(fake_api.calls("sendMessage")) >= 2)  # retrying

        for text in (say("help"), say("consent.adult"), privacy(say)):
            await ada.expect(text, timeout=seconds * scale + 15)
        await settle(fake_api, store)
        assert not ada.unread


async def test_server_errors_and_dropped_connections_are_retried(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await ada.next_one()
    fake_api.fail("sendMessage", status=500)
    fake_api.drop("sendMessage")  # the connection closed before Telegram acted
    fake_api.fail("sendMessage", status=401)  # an odd answer, not a network error
    await ada.send("/help")
    await ada.send("/privacy")
    await ada.expect(say("help"), timeout=20)
    await ada.expect(privacy(say), timeout=20)
    await settle(fake_api, store)
    assert not ada.unread


async def test_a_send_telegram_carried_out_but_did_not_confirm_may_arrive_twice(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    """The one allowed duplicate: Telegram delivered the message, then the connection dropped
    before its answer arrived (``processed=True``). The bot cannot know, so it retries: the
    client may see that message twice, but never loses it or sees later ones out of order."""
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await ada.next_one()
    fake_api.drop("sendMessage", times=1, processed=True)
    await ada.send("/help")
    await ada.send("/privacy")
    earlier = await ada.before(privacy(say), timeout=20)
    await settle(fake_api, store)
    assert earlier in (transcript([say("help")]), transcript([say("help")] * 2))
    assert count(ada, privacy(say)) == 1 and not ada.unread


# -- blocking the bot ------------------------------------------------------------------------
async def assert_opted_out_by_block(store: SqliteStore, client_id: str) -> None:
    ledger = await store.ledger(client_id)
    stopped = [row.data for row in ledger if row.kind == "stopped"]
    assert stopped and all(data == {"via": "blocked"} for data in stopped)
    assert not await store.due_timers(FAR)  # reminders cancelled
    assert not await store.pending_outbox(FAR)  # queued messages dropped
    state = await store.load_state(client_id)
    assert state is not None and state["halted"] is True


async def test_forbidden_on_a_send_counts_as_opt_out(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await consented(ada, reminders=("UTC", "19:00"))
    await settle(fake_api, store)
    assert await store.due_timers(FAR)  # a reminder is set
    before = len(ada.messages)

    fake_api.fail("sendMessage", status=403, description=BLOCKED, times=None)
    await ada.send("/sos")  # two messages queued: the first is refused, the second dropped
    await fake_api.wait_for(lambda: len(fake_api.calls("sendMessage")) >= 1)
    await settle(fake_api, store)
    attempted = [r for r in fake_api.calls("sendMessage") if r.get("chat_id") == 1001]
    assert attempted  # Telegram refused the send: the client had blocked the bot
    assert len(ada.messages) == before
    await assert_opted_out_by_block(store, "tg:1001")
    assert len([r for r in await store.ledger("tg:1001") if r.kind == "stopped"]) == 1


async def test_being_removed_from_the_chat_counts_as_opt_out(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await consented(ada, reminders=("UTC", "19:00"))
    await ada.press("First steps in sharing")
    await ada.until(lambda m: "Go on" in labels(m))
    await settle(fake_api, store)
    before = len(ada.messages)

    fake_api.delay("sendMessage", 0.5, times=1)  # the first reply is on its way ...
    await ada.send("/sos")
    await fake_api.wait_for(lambda: len(fake_api.calls("sendMessage")) >= 1)
    await fake_api.block(1001)  # ... when the client blocks the bot (my_chat_member: kicked)
    await fake_api.wait_for(lambda: fake_api.pending_updates == 0)
    await settle(fake_api, store)
    assert len(ada.messages) == before  # nothing got through, nothing queued is left
    await assert_opted_out_by_block(store, "tg:1001")

    # Unblocking changes nothing by itself; the client comes back with /start.
    await fake_api.unblock(1001)
    await settle(fake_api, store)
    assert len(ada.messages) == before
    await ada.send("/start")
    await ada.until(lambda m: bool(labels(m)))


# -- fetching updates ------------------------------------------------------------------------
async def test_polling_resumes_after_get_updates_failures(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await ada.next_one()
    await settle(fake_api, store)
    polls = len(fake_api.calls("getUpdates"))
    fake_api.fail("getUpdates", status=500)
    fake_api.fail("getUpdates", status=409, description=CONFLICT)  # a second instance
    fake_api.fail("getUpdates", status=429, retry_after=1)
    await fake_api.wait_for(lambda: len(fake_api.calls("getUpdates")) >= polls + 1, 10)
    await ada.send("/help")  # Telegram keeps it until the bot fetches again
    await ada.expect(say("help"), timeout=15)
    await settle(fake_api, store)
    assert not ada.unread
    assert len(fake_api.calls("getUpdates")) >= polls + 4


# -- an update that can never be handled -----------------------------------------------------
async def test_an_update_that_always_fails_is_given_up_and_holds_nobody_up(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug that fails one update every time: tried a few times, then its sender is told.

    The failing update is injected ahead of the gatekeepers, around the edge's real pass
    over each update (a bug anywhere in it looks the same to the poller). No later handler
    sees the failed update (a failing gatekeeper fails closed); its sender is asked to send
    it again; the other client's messages go on being answered at once; nothing typed is
    logged.
    """
    tried: list[int] = []

    handle = bot.handlers.handle

    async def poisoned(update: Update) -> None:
        message = update.effective_message
        if message is not None and message.text == "unhandleable 🧪 qzx":
            tried.append(update.update_id)
            raise ValueError(f"cannot handle {message.text!r}")
        await handle(update)

    monkeypatch.setattr(bot.handlers, "handle", poisoned)
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    await consented(ada)
    await consented(bea)
    await ada.send("unhandleable 🧪 qzx")
    await ada.expect(say("error.generic"), timeout=10)
    assert len(tried) == edge_module.MAX_ATTEMPTS and len(set(tried)) == 1
    for _ in range(3):
        started = time.monotonic()
        await bea.send("/help")
        await bea.expect(say("help"), timeout=5)
        assert time.monotonic() - started < WAITS.refetch_after_failure
    await settle(fake_api, store)
    assert len(tried) == edge_module.MAX_ATTEMPTS  # given up: never fetched again
    assert "qzx" not in caplog.text and "ValueError" in caplog.text


async def test_a_storage_failure_is_waited_out_however_long_it_lasts(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say,
) -> None:
    """Unlike a bug, a failing store is never given up on: the update waits for it."""
    waits = dataclasses.replace(WAITS, refetch_after_failure=0.1)
    async with running_edge(fault_config(fake_api, tmp_path / "rehearse.db"), loaded,
                            store, waits=waits) as bot:
        await _waited_out(bot, fake_api, say)


async def _waited_out(bot: TelegramEdge, fake_api: FakeBotApi, say: Say) -> None:
    failures: list[int] = []
    handle = bot.handlers.handle

    async def store_down(update: Update) -> None:
        if len(failures) < 3 * edge_module.MAX_ATTEMPTS:
            failures.append(update.update_id)
            raise StoreError("database or disk is full")
        await handle(update)

    ada = TelegramClient(fake_api, 1001, "Ada")
    await consented(ada)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bot.handlers, "handle", store_down)
        await ada.send("/help")
        await ada.expect(say("help"), timeout=10)
    assert len(failures) == 3 * edge_module.MAX_ATTEMPTS
    assert count(ada, say("error.generic")) == 0


# -- sending to many chats -------------------------------------------------------------------
async def test_a_slow_telegram_is_sent_to_concurrently_but_each_chat_in_order(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say,
) -> None:
    """Different chats are sent to at once; one chat's messages never overtake each other."""
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    await consented(ada)
    await consented(bea)
    await settle(fake_api, store)
    fake_api.peak_calls.clear()
    fake_api.peak_calls_per_chat.clear()
    fake_api.delay("sendMessage", 0.3, times=None)
    for client in (ada, bea):
        await client.send("/help")
        await client.send("/privacy")
    for client in (ada, bea):
        await client.expect(say("help"))
        await client.expect(privacy(say))
    assert fake_api.peak_calls["sendmessage"] == 2
    assert fake_api.peak_calls_per_chat["sendmessage"] == 1
