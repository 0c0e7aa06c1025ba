"""Crisis language reaches the detector from every place a person can write it, on Telegram.

The real bot against the fake Bot API server: the words after a command, photo captions,
edited messages, people without an invite (strangers, erased clients) and ``/sos`` from
anyone. The first message each receives carries the lines; a stranger's reply is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.engine import Command, Message
from bot.store import Invite, SqliteStore
from bot.telegram import TelegramEdge, code_hash
from bot.telegram._sender import Pacer
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import TelegramClient, labels, opens, running_edge, settle
from tests.test_telegram_e2e import to_first_say

CLIENT, STRANGER = 1001, 6666
WORDS = "i want to kill myself"


def first_crisis_text(loaded: Loaded, words: str | None, *, running: bool = False) -> str:
    """The first message of a crisis response for these words (None: /sos)."""
    resources = loaded.engine.resources
    detection = resources.crisis.scan(words) if words is not None else None
    return str(loaded.renderer.system(
        "crisis.resources", **resources.policy.lines().crisis_context(detection,
                                                                       running=running))).strip()


@pytest.fixture
async def bot(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, clock: Clock
) -> AsyncIterator[TelegramEdge]:
    """One allowlisted client, everyone else a stranger; the shipped pacing (1/s per chat
    after a burst of 3), so that a crisis response is seen to skip it."""
    config = edge_config(fake_api, tmp_path / "rehearse.db", telegram={"poll_timeout": 1},
                         access={"mode": "allowlist", "allowlist": [CLIENT]})
    async with running_edge(config, loaded, store, clock=clock, pacer=Pacer()) as edge:
        yield edge


@pytest.mark.parametrize("how", ["after a command", "photo caption", "edited message"])
async def test_every_free_text_of_a_client_is_scanned(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, how: str
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada)
    await settle(fake_api, store)
    before = len(ada.messages)
    if how == "after a command":
        await ada.send(f"/skip {WORDS}")
    elif how == "photo caption":
        await fake_api.send_photo(CLIENT, caption=WORDS)
    else:
        await ada.send("ok")
        await settle(fake_api, store)
        before = len(ada.messages)
        sent = fake_api.user_messages(CLIENT)[-1]
        await fake_api.edit_text(CLIENT, sent["message_id"], WORDS)
    await ada.until(lambda m: "Are you safe right now?" in m.text)
    assert opens(ada.messages[before].text, first_crisis_text(loaded, WORDS, running=True))
    rows = [r for r in await store.ledger("tg:1001") if r.kind == "crisis_language"]
    assert [r.data["kinds"] for r in rows] == [["suicide"]]


@pytest.mark.parametrize("words", [WORDS, "my partner hits me", None])
async def test_strangers_get_the_lines_durably_even_after_a_5xx(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
    clock: Clock, words: str | None,
) -> None:
    fake_api.fail("sendMessage", status=500, times=1)  # one failure must not lose the reply
    eve = TelegramClient(fake_api, STRANGER, "Eve")
    await eve.send(words if words is not None else "/sos")
    await fake_api.wait_for(lambda: fake_api.calls("sendMessage"), timeout=30)  # the failure
    # The retry is due once its back-off has passed on the bot's clock; move the clock on
    # until it is sent (the sender may record the failure after any one of these moves).
    for _ in range(30):
        clock.advance(minutes=1)
        with contextlib.suppress(TimeoutError):
            await fake_api.wait_for(lambda: eve.unread, timeout=1)
            break
    reply = await eve.next_one(timeout=1)
    assert reply.text.strip() == first_crisis_text(loaded, words)
    await settle(fake_api, store)
    assert not eve.unread  # sent once
    assert await store.client_ids() == []  # no state: still a stranger


async def test_help_from_a_stranger_points_to_sos(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    eve = TelegramClient(fake_api, STRANGER, "Eve")
    await eve.send("/help")
    assert "/sos" in (await eve.next_one()).text


async def test_sos_right_after_delete_gets_the_lines(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, clock: Clock
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db", telegram={"poll_timeout": 1})
    code = "erase-me"
    await store.add_invite(Invite(code_hash=code_hash(code), script_id="first-steps",
                                  max_level=2, expires_at=clock.now.replace(year=2030),
                                  created_at=clock.now))
    async with running_edge(config, loaded, store, clock=clock):
        ada = TelegramClient(fake_api, 4242)
        await ada.send(f"/start {code}")
        await settle(fake_api, store)
        await ada.send("/delete")
        await ada.until(lambda m: "Yes, delete everything" in labels(m))
        await ada.press("Yes, delete everything")
        await settle(fake_api, store)
        assert await store.load_state("tg:4242") is None
        before = len(ada.messages)
        await ada.send("/sos")
        await ada.until(lambda m: "988" in m.text)
        assert ada.messages[before].text.strip() == first_crisis_text(loaded, None)


async def test_a_whole_crisis_response_arrives_at_once_despite_pacing(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded
) -> None:
    """Per-chat pacing (a burst of 3, then 1/s) never holds back crisis messages."""
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada)
    await settle(fake_api, store)
    for _ in range(3):  # use up the chat's burst
        await ada.send("/progress")
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await ada.send(WORDS)
    await ada.until(lambda m: "Are you safe right now?" in m.text, timeout=10)
    assert loop.time() - start < 1.0


async def test_a_client_chooses_their_region_and_sees_its_lines(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded
) -> None:
    """The region question offers the one Telegram's language suggests first."""
    fake_api.set_language(CLIENT, "de")
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada)
    await ada.send("/settings")
    await ada.until(lambda m: "Crisis lines" in labels(m))
    await ada.press("Crisis lines")
    await ada.until(lambda m: "Deutschland" in labels(m))
    assert labels(ada.keyboard())[0] == "Deutschland"
    await ada.press("United Kingdom")
    await settle(fake_api, store)
    before = len(ada.messages)
    await ada.send("my partner hits me")
    await ada.until(lambda m: "Are you safe right now?" in m.text)
    first = ada.messages[before].text
    assert "danger right now, call 999" in first.splitlines()[0]
    assert "0808 2000 247" in first  # the UK's National Domestic Abuse Helpline
    assert "988" not in first


async def test_a_flood_of_strangers_costs_clients_nothing(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, clock: Clock
) -> None:
    """300 strangers guessing codes: a bounded number checked, recorded and answered, each
    greeted once; a client writing crisis language meanwhile is answered first."""
    config = edge_config(fake_api, tmp_path / "rehearse.db", telegram={"poll_timeout": 1},
                         access={"mode": "allowlist", "allowlist": [CLIENT],
                                 "stranger_codes_per_minute": 20,
                                 "stranger_replies_per_minute": 25})
    async with running_edge(config, loaded, store, clock=clock):
        for user in range(20_000, 20_300):
            await fake_api.send_text(user, "/start WRONGCODE")
        ada = TelegramClient(fake_api, CLIENT)
        await ada.send(WORDS)
        await ada.until(lambda m: "Are you safe right now?" in m.text, timeout=15)
        await settle(fake_api, store)
    to_strangers = [c for c in fake_api.calls("sendMessage") if int(c["chat_id"]) >= 20_000]
    assert len(to_strangers) <= 25
    recorded = sum([await store.failed_codes(f"tg:{u}", clock.now, timedelta(hours=1))
                    for u in range(20_000, 20_300)])
    assert recorded <= 20


async def test_the_sender_serves_a_clients_crisis_before_strangers(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded
) -> None:
    """Stranger crisis lines are queued first, the client's crisis after: the client's go first."""
    service = bot.handlers.service
    lines = str(loaded.renderer.system("crisis.resources", **loaded.engine.resources.policy
                                       .lines().crisis_context(None, running=False)))
    for user in range(30_000, 30_012):
        fake_api.add_user(user, "Eve")
        await service.reply_to_stranger(f"tg:{user}", f"tg:s{user}",
                                        [Message(text=lines, urgent=True)])
    await service.handle(f"tg:{CLIENT}", "tg:c1", Command(name="sos"))
    bot.sender.wake.set()
    await settle(fake_api, store)
    order = [int(c["chat_id"]) for c in fake_api.calls("sendMessage")]
    assert order.index(CLIENT) < min(order.index(u) for u in range(30_000, 30_012))
