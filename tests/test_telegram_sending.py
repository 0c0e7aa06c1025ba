"""Sending under Telegram's limits, against the fake Bot API server.

* With the shipped pacing a reply of a few messages arrives together (a per-chat burst),
  while a long run to one chat and many chats at once never trip the server's flood limits.
* ``sending.per_chat_burst`` sizes the burst; ``telegram.connection_pool_size`` bounds the
  HTTP connections, and with them how many chats are sent to at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.app import Loaded
from bot.config import SendingConfig
from bot.store import Commit, OutgoingMessage, SqliteStore
from bot.telegram import Pacer
from bot.telegram._sender import LATENESS, OutboxSender
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import TelegramClient, running_edge, settle


def shipped() -> Pacer:
    """The shipped pacing, fresh (a pacer remembers what it sent)."""
    return Pacer.configured(SendingConfig())


#: Seconds within which a reply's messages arrive "together" (not paced, which is 1 s).
TOGETHER = 0.25


def message(n: int, *, buttons: bool) -> dict[str, object]:
    return {"text": f"message {n}", "buttons": [[[f"ok {n}", f"b:{n}"]]] if buttons else []}


async def queue(store: SqliteStore, chat: int, count: int, event: str, *,
                every_with_buttons: bool = False) -> None:
    """Queue a reply of ``count`` messages, the last with a button (or each, so that each
    new keyboard replaces the one before it: an edit more per message)."""
    client = f"tg:{chat}"
    outbox = [OutgoingMessage(client, chat,
                              message(n, buttons=every_with_buttons or n == count - 1))
              for n in range(count)]
    await store.commit(Commit(event_id=event, client_id=client, at=datetime.now(UTC),
                              state={}, outbox=outbox))


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "rehearse.db") as opened:
        yield opened


async def send_all(api: FakeBotApi, store: SqliteStore, pacer: Pacer,
                   wanted: dict[int, int], *, connections: int = 8,
                   timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Run a sender until every chat got its ``wanted`` number of messages."""

    async def blocked(client_id: str, outbox_id: int) -> None:
        raise AssertionError("nobody blocked the bot")

    request = HTTPXRequest(connection_pool_size=connections)
    async with Bot(api.token, base_url=api.base_url, request=request) as bot:
        sender = OutboxSender(bot, store, lambda: datetime.now(UTC), blocked, pacer,
                              connections=connections)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        try:
            await api.wait_for(lambda: all(len(api.messages(chat)) >= count
                                           for chat, count in wanted.items()), timeout)
        finally:
            stop.set()
            await task


def send_times(api: FakeBotApi, chat: int) -> list[float]:
    return [r.at for r in api.requests
            if r.method == "sendMessage" and r.params.get("chat_id") == chat]


async def test_a_reply_of_several_messages_arrives_together(sqlite: SqliteStore) -> None:
    """Shipped pacing, a server enforcing Telegram's limits: a reply of three messages (a
    role-play opening) arrives together, and so does the next reply once the client has
    read for a few seconds. Together: well under the chat's pace of one a second (the
    bench measures the spread, ≤ 50 ms on an idle machine; a test may share a busy one)."""
    async with FakeBotApi(rate_limits=True) as api:
        api.add_user(1001)
        await queue(sqlite, 1001, 3, "e1")
        await send_all(api, sqlite, shipped(), {1001: 3})
        first = send_times(api, 1001)
        assert len(first) == 3 and first[-1] - first[0] <= TOGETHER
        await asyncio.sleep(3.0)  # reading the reply: the chat's burst fills again
        await queue(sqlite, 1001, 2, "e2")
        await send_all(api, sqlite, shipped(), {1001: 5})
        second = send_times(api, 1001)[3:]
        assert len(second) == 2 and second[-1] - second[0] <= TOGETHER
        assert api.flood_refusals == 0
        assert [m.text for m in api.messages(1001)] == [
            f"message {n}" for n in (0, 1, 2, 0, 1)]


async def test_a_long_burst_never_exceeds_telegrams_limits(sqlite: SqliteStore) -> None:
    """Eight messages to one chat and two to each of 40 others at once: the server's flood
    limits (about 1 a second per chat after a burst of 3, 30 a second in all) never answer
    429, each chat's messages keep their order, and the long run is paced, not lucky."""
    chats = {1001: 8} | {2000 + n: 2 for n in range(40)}
    async with FakeBotApi(rate_limits=True) as api:
        for number, (chat, count) in enumerate(chats.items()):
            api.add_user(chat)
            await queue(sqlite, chat, count, f"e{number}", every_with_buttons=True)
        await send_all(api, sqlite, shipped(), chats)
        assert api.flood_refusals == 0
        for chat, count in chats.items():
            assert [m.text for m in api.messages(chat)] == [f"message {n}" for n in range(count)]
        times = send_times(api, 1001)
        assert times[-1] - times[0] >= 4.5  # 3 at once, then one a second (edits count)
        everything = sorted(r.at for r in api.requests if r.method == "sendMessage")
        assert everything[-1] - everything[0] >= 1.5  # 88 messages at 30 a second


def test_the_burst_per_chat_is_configurable() -> None:
    now = [0.0]
    pacer = Pacer.configured(SendingConfig(per_chat_burst=5))
    pacer.clock = lambda: now[0]
    for _ in range(5):
        assert pacer.wait(7) == 0
        pacer.take(7)
    # then per_chat_per_second (1), from LATENESS after the burst ran out
    assert pacer.wait(7) == pytest.approx(1.0 + LATENESS)
    assert pacer.wait(8) == 0  # another chat has its own burst
    now[0] = 1.0
    assert pacer.wait(7) > 0
    now[0] = 1.0 + LATENESS
    assert pacer.wait(7) == 0
    assert shipped().burst == 3


@pytest.mark.parametrize(("pool", "at_once"), [(2, 1), (8, 3)])
async def test_the_connection_pool_bounds_the_chats_sent_to_at_once(
    fake_api: FakeBotApi, sqlite: SqliteStore, loaded: Loaded, tmp_path: Path,
    pool: int, at_once: int,
) -> None:
    """``telegram.connection_pool_size``: half of the connections send to different chats
    at once (a slow server shows how many)."""
    users = [1001, 1002, 1003]
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": users},
                         telegram={"poll_timeout": 1, "connection_pool_size": pool})
    async with running_edge(config, loaded, sqlite):
        clients = [TelegramClient(fake_api, user) for user in users]
        for client in clients:
            await client.send("/start")
        for client in clients:
            await client.next_one()
        await settle(fake_api, sqlite)
        fake_api.peak_calls.clear()
        fake_api.delay("sendMessage", 0.3, times=None)
        for client in clients:
            await client.send("/help")
        for client in clients:
            await client.next_one()
        assert fake_api.peak_calls["sendmessage"] == at_once
