"""Sending under Telegram's limits, against the fake Bot API server.

* With the shipped pacing a reply of a few messages arrives together (a per-chat burst),
  while a long run to one chat and many chats at once never trip the server's flood limits.
* ``sending.per_chat_burst`` sizes the burst; ``telegram.connection_pool_size`` bounds the
  HTTP connections, and with them how many chats are sent to at once.
* Consecutive texts of one chat go out as one message where they fit Telegram's 4,096
  characters (``message_runs``); a failed merged send holds back all of its rows together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.app import Loaded
from bot.config import SendingConfig
from bot.store import Commit, OutboxRow, OutgoingMessage, SqliteStore
from bot.telegram import Pacer
from bot.telegram._sender import LATENESS, MESSAGE_LIMIT, OutboxSender, joined, message_runs
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import TelegramClient, running_edge, settle


def shipped() -> Pacer:
    """The shipped pacing, fresh (a pacer remembers what it sent)."""
    return Pacer.configured(SendingConfig())


#: Seconds within which a reply's messages arrive "together" (not paced, which is 1 s).
TOGETHER = 0.25


def message(n: int, *, buttons: bool, size: int = 0) -> dict[str, object]:
    """Outbox payload ``message {n}``, padded with dots to ``size`` characters if longer."""
    return {"text": f"message {n}".ljust(size, "."),
            "buttons": [[[f"ok {n}", f"b:{n}"]]] if buttons else []}


async def queue(store: SqliteStore, chat: int, count: int, event: str, *,
                every_with_buttons: bool = False, size: int = 0) -> None:
    """Queue a reply of ``count`` messages of ``size`` characters at least, the last with a
    button (or each, so that each new keyboard replaces the one before it: an edit more per
    message)."""
    client = f"tg:{chat}"
    outbox = [OutgoingMessage(client, chat,
                              message(n, buttons=every_with_buttons or n == count - 1, size=size))
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


#: Long enough that two texts never share a message.
LONG = MESSAGE_LIMIT // 2 + 1


async def test_a_reply_of_several_messages_arrives_together(sqlite: SqliteStore) -> None:
    """Shipped pacing, a server enforcing Telegram's limits: a reply of three messages too
    long to merge arrives together, and so does the next reply once the client has read
    for a few seconds. Together: well under the chat's pace of one a second (the bench
    measures the spread, ≤ 50 ms on an idle machine; a test may share a busy one)."""
    async with FakeBotApi(rate_limits=True) as api:
        api.add_user(1001)
        await queue(sqlite, 1001, 3, "e1", size=LONG)
        await send_all(api, sqlite, shipped(), {1001: 3})
        first = send_times(api, 1001)
        assert len(first) == 3 and first[-1] - first[0] <= TOGETHER
        await asyncio.sleep(3.0)  # reading the reply: the chat's burst fills again
        await queue(sqlite, 1001, 2, "e2", size=LONG)
        await send_all(api, sqlite, shipped(), {1001: 5})
        second = send_times(api, 1001)[3:]
        assert len(second) == 2 and second[-1] - second[0] <= TOGETHER
        assert api.flood_refusals == 0
        assert [m.text for m in api.messages(1001)] == [
            f"message {n}".ljust(LONG, ".") for n in (0, 1, 2, 0, 1)]


async def test_a_reply_of_three_texts_arrives_as_one_message(sqlite: SqliteStore) -> None:
    """Three texts, the last with a button: one sendMessage, the texts a blank line apart,
    the button on it; a pair of 2,500 characters each (5,000 joined) arrives as two."""
    async with FakeBotApi(rate_limits=True) as api:
        api.add_user(1001)
        await queue(sqlite, 1001, 3, "e1")
        await send_all(api, sqlite, shipped(), {1001: 1})
        [merged] = api.messages(1001)
        assert merged.text == "message 0\n\nmessage 1\n\nmessage 2"
        assert merged.reply_markup == {"inline_keyboard": [[{"text": "ok 2",
                                                             "callback_data": "b:2"}]]}
        await queue(sqlite, 1001, 2, "e2", size=2500)
        await send_all(api, sqlite, shipped(), {1001: 3})
        assert [m.text for m in api.messages(1001)[1:]] == [
            f"message {n}".ljust(2500, ".") for n in (0, 1)]
        assert len(send_times(api, 1001)) == 3
        assert not await sqlite.pending_outbox(datetime.now(UTC))


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 429, "retry_after": 1}, {"status": 400,
                                                          "description": "Bad Request: can't "
                                                          "parse entities: unclosed tag"},
])
async def test_a_failed_merged_send_holds_back_all_its_rows(
    sqlite: SqliteStore, fault: dict[str, object]
) -> None:
    """A 5xx or a 429 of the merged send defers all its rows together: they arrive once,
    still as one message; a 400 "can't parse entities" sends the merged text as plain text
    once. Nothing is lost, nothing sent twice, nothing left in the outbox."""
    async with FakeBotApi() as api:
        api.add_user(1001)
        await sqlite.commit(Commit(event_id="e1", client_id="tg:1001", at=datetime.now(UTC),
                                   state={}, outbox=[
                                       OutgoingMessage("tg:1001", 1001, {"text": "<b>one</b>"}),
                                       OutgoingMessage("tg:1001", 1001, {
                                           "text": "two", "buttons": [[["Go on", "b:go"]]]})]))
        api.fail("sendMessage", **fault)
        await send_all(api, sqlite, Pacer(per_chat=0, overall=0), {1001: 1})
        await asyncio.sleep(0.2)  # a second copy would have gone by now
        [sent] = api.messages(1001)
        assert sent.text == ("one\n\ntwo" if fault["status"] == 400 else "<b>one</b>\n\ntwo")
        # The last text's buttons stay on the message, plain text or not.
        assert sent.reply_markup == {"inline_keyboard": [[{"text": "Go on",
                                                           "callback_data": "b:go"}]]}
        assert len(api.calls("sendMessage")) == 2  # the failed try, then the one message
        assert not await sqlite.pending_outbox(datetime.now(UTC) + timedelta(days=1))


def row(number: int, text: str = "", *, client: str = "tg:1", **payload: object) -> OutboxRow:
    """Outbox row ``number`` (``text`` defaults to ``row {number}``) with more payload."""
    return OutboxRow(id=number, client_id=client, chat_id=1, attempts=0, not_before=None,
                     payload={"text": text or f"row {number}", **payload})


def ids(runs: list[list[OutboxRow]]) -> list[list[int]]:
    return [[r.id for r in run] for run in runs]


def test_consecutive_texts_make_one_message_and_buttons_end_it() -> None:
    rows = [row(1, "  row 1\n"), row(2), row(3, buttons=[[["ok", "b:ok"]]]), row(4), row(5)]
    runs = message_runs(rows)
    assert ids(runs) == [[1, 2, 3], [4, 5]]
    assert joined(runs[0]) == "row 1\n\nrow 2\n\nrow 3"  # each text stripped
    assert [r for run in runs for r in run] == rows  # the chat's order, nothing left out


def test_files_alerts_and_keyboard_replacements_go_alone() -> None:
    rows = [row(1), row(2, file={"name": "data.json", "content": "{}"}), row(3),
            row(4, alert=True), row(5), row(6, replace_keyboard=True), row(7), row(8)]
    assert ids(message_runs(rows)) == [[1], [2], [3], [4], [5], [6], [7, 8]]


def test_a_crisis_response_starts_a_message_of_its_own() -> None:
    """Urgent rows merge with each other (the crisis lines first) but never with what came
    before or after them; nor do different clients' rows share a message."""
    rows = [row(1), row(2, urgent=True), row(3, urgent=True, buttons=[[["Yes", "s:y"]]]),
            row(4), row(5, client="tg:2")]
    assert ids(message_runs(rows)) == [[1], [2, 3], [4], [5]]


def test_a_message_never_exceeds_telegrams_limit() -> None:
    """Joined texts up to exactly 4,096 characters (tags counted) share a message; one more
    character starts the next; a text too long on its own goes alone, as before."""
    half = (MESSAGE_LIMIT - 2) // 2
    fits = [row(1, "<b>" + "a" * (half - 7) + "</b>"), row(2, "b" * half)]
    assert len(joined(fits)) == MESSAGE_LIMIT
    assert ids(message_runs(fits)) == [[1, 2]]
    over = [row(1, "a" * half), row(2, "b" * (half + 1)), row(3)]
    assert ids(message_runs(over)) == [[1], [2, 3]]
    assert ids(message_runs([row(1), row(2, "c" * 5000), row(3)])) == [[1], [2], [3]]
    assert ids(message_runs([row(n) for n in range(1, 4)], limit=11)) == [[1], [2], [3]]


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
