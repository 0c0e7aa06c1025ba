"""Webhook mode, end to end, on SQLite and on PostgreSQL.

The fake Bot API posts each update to the bot's webhook as Telegram does (with the secret
token, retrying until it gets a 200); the real ``QueuedEdge`` stores every update before it
answers and handles it from the store's queue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.app import Loaded
from bot.config import WEBHOOK_SECRET_ENV, Config, WebhookConfig
from bot.engine import Command, Message
from bot.store import Store, store_for
from bot.telegram import Pacer, QueuedEdge, Timing
from bot.telegram._queue import LEADER
from tests.conftest import make_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import free_port
from tests.support.telegram_client import (
    TelegramClient,
    choose_script,
    give_consent,
    labels,
    running_edge,
    settle,
    wait_until,
)
from tests.support.workers import SECRET, start_worker

pytestmark = pytest.mark.backends
ALLOWED = {"mode": "allowlist", "allowlist": [1001, 1002]}


def webhook_config(api: FakeBotApi, database: str, port: int, **overrides: object) -> Config:
    """A webhook bot against the fake server, listening on 127.0.0.1:`port`."""
    env = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url,
           WEBHOOK_SECRET_ENV: SECRET}
    webhook = WebhookConfig(url=f"http://127.0.0.1:{port}/telegram/updates", port=port,
                            max_connections=8)
    overrides.setdefault("access", ALLOWED)
    return make_config(database, env, telegram={"mode": "webhook", "webhook": webhook},
                       **overrides)


@pytest.fixture
async def webhook_edge(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str
) -> AsyncIterator[QueuedEdge]:
    port = free_port()
    async with running_edge(webhook_config(fake_api, database, port), loaded, store,
                            edge_class=QueuedEdge) as edge:
        assert isinstance(edge, QueuedEdge)
        yield edge


async def test_two_clients_through_the_webhook(
    webhook_edge: QueuedEdge, fake_api: FakeBotApi, store: Store
) -> None:
    [registered] = fake_api.calls("setWebhook")
    assert registered["url"] == webhook_edge.config.telegram.webhook.url
    assert registered["secret_token"] == SECRET
    assert "message" in registered["allowed_updates"]
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    await ada.send("/start")
    await bea.send("/start")
    await asyncio.gather(give_consent(ada), give_consent(bea))
    await asyncio.gather(choose_script(ada, "First steps"), choose_script(bea, "First steps"))
    for _ in range(3):
        for client in (ada, bea):
            await client.until(lambda m: "Go on" in labels(m))
            await client.press("Go on")
    await ada.until(lambda m: "10" in labels(m))
    await bea.until(lambda m: "10" in labels(m))
    for text_a, text_b in (("3", "5"), ("4", "6"), ("Answer from Ada", "Answer from Bea")):
        await ada.send(text_a)  # each client's texts only make sense in their order
        await bea.send(text_b)
    await ada.until(lambda m: "Yes, one more" in labels(m))
    await bea.until(lambda m: "Yes, one more" in labels(m))
    await settle(fake_api, store)

    for client_id, distress, expected in (("tg:1001", 3, 4), ("tg:1002", 5, 6)):
        ledger = await store.ledger(client_id)
        [checkin] = [r.data for r in ledger if r.kind == "checkin"]
        [expectation] = [r.data for r in ledger if r.kind == "checkin_expected"]
        assert (checkin["distress"], expectation["expected"]) == (distress, expected)
    assert fake_api.calls("getUpdates") == []  # nothing polled
    assert set(fake_api.webhook_answers) == {200}
    assert webhook_edge.leading
    assert not fake_api.calls("deleteWebhook")


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers=headers) as answer:
        return answer.status


async def test_requests_without_the_secret_are_refused_and_nothing_is_stored(
    webhook_edge: QueuedEdge, fake_api: FakeBotApi, store: Store
) -> None:
    url = str(webhook_edge.config.telegram.webhook.url)
    update = fake_api.text_update(1001, "/start")
    body = json.dumps(update).encode()
    header = "X-Telegram-Bot-Api-Secret-Token"
    assert await post(url, body, {}) == 403
    assert await post(url, body, {header: SECRET[:-1]}) == 403
    assert await post(url, body, {header: SECRET + "x"}) == 403
    assert await post(url.replace("/updates", "/other"), body, {header: SECRET}) == 404
    # From Telegram (the secret is right) but nothing to store: acknowledged and dropped, as
    # Telegram would post the same bytes again and again, holding later updates back.
    assert await post(url, b"not json at all", {header: SECRET}) == 200
    assert await post(url, b'{"message": {}}', {header: SECRET}) == 200  # no update_id
    assert await post(url, b"[" * 2_000_000, {header: SECRET}) == 200  # over 1 MiB
    await asyncio.sleep(0.3)
    assert await store.queued_updates() == 0 and await store.client_ids() == []
    assert fake_api.messages(1001) == []

    # The right secret: stored, answered 200, handled once even when posted again.
    assert await post(url, body, {header: SECRET}) == 200
    assert await post(url, body, {header: SECRET}) == 200
    await fake_api.wait_for(lambda: fake_api.messages(1001))
    await settle(fake_api, store)
    assert len(fake_api.messages(1001)) == 1  # the consent intro, once
    assert await store.enqueue_update(update["update_id"], "tg:1001", update,
                                      webhook_edge.clock()) is False


async def test_an_update_python_telegram_bot_cannot_read_is_stored_and_stalls_nobody(
    webhook_edge: QueuedEdge, fake_api: FakeBotApi, store: Store, loaded: Loaded
) -> None:
    """Two unreadable updates (a field missing, JSON nested 100,000 deep) are answered 200,
    stored by id and their senders told; their next updates are handled as usual."""
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    broken = fake_api.text_update(1001, "/help")
    del broken["message"]["entities"][0]["offset"]
    await fake_api.send_raw(broken)
    deep_id = broken["update_id"] + 1
    chat = '{"id": 1002, "type": "private"}'
    await fake_api.send_raw(f'{{"update_id": {deep_id}, "message": {{"chat": {chat}, "x": '
                            f'{"[" * 100_000}{"]" * 100_000}}}}}', update_id=deep_id)
    generic = str(loaded.renderer.system("error.generic")).strip()
    await ada.expect(generic)
    await bea.expect(generic)
    await ada.send("/help")
    await bea.send("/help")
    helped = str(loaded.renderer.system("help")).strip()
    await ada.expect(helped)
    await bea.expect(helped)
    await settle(fake_api, store)
    assert set(fake_api.webhook_answers) == {200}
    assert await store.enqueue_update(deep_id, "tg:1002", {}, webhook_edge.clock()) is False


async def test_a_flood_of_strangers_through_the_webhook_costs_clients_nothing(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str
) -> None:
    """The strangers' budgets hold in webhook mode: a bounded number of codes checked and
    replies sent; a client's crisis language meanwhile is answered."""
    config = webhook_config(fake_api, database, free_port(),
                            access={**ALLOWED, "stranger_codes_per_minute": 10,
                                    "stranger_replies_per_minute": 12})
    strangers = range(20_000, 20_120)
    async with running_edge(config, loaded, store, edge_class=QueuedEdge) as edge:
        for user in strangers:
            await fake_api.send_text(user, "/start WRONGCODE")
        ada = TelegramClient(fake_api, 1001)
        await ada.send("i want to kill myself")
        await ada.until(lambda m: "Are you safe right now?" in m.text, timeout=20)
        await settle(fake_api, store)
        now = edge.clock()
    assert len([c for c in fake_api.calls("sendMessage") if int(c["chat_id"]) >= 20_000]) <= 12
    window = timedelta(hours=1)
    assert sum([await store.failed_codes(f"tg:{user}", now, window) for user in strangers]) <= 10


async def test_the_leaders_sender_serves_a_clients_crisis_before_strangers(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str
) -> None:
    """The leader's (fenced) sender keeps the single bot's order: a client's crisis response
    before strangers' crisis lines queued earlier, with the shipped pacing. The messages are
    queued while another worker leads (and sends nothing, here), then this one takes over."""
    config = webhook_config(fake_api, database, free_port())
    assert await store.hold_lease(LEADER, "elsewhere", timedelta(minutes=1))
    edge = QueuedEdge(config, loaded, store, pacer=Pacer(), owner="here",
                      timing=Timing(renew_every=0.05))
    await edge.start()
    try:
        service = edge.handlers.service
        lines = str(loaded.renderer.system("crisis.resources", **loaded.engine.resources.policy
                                           .lines().crisis_context(None, running=False)))
        for user in range(30_000, 30_012):
            fake_api.add_user(user, "Eve")
            await service.reply_to_stranger(f"tg:{user}", f"tg:s{user}",
                                            [Message(text=lines, urgent=True)])
        fake_api.add_user(1001, "Ada")
        await service.handle("tg:1001", "tg:c1", Command(name="sos"))
        assert not edge.leading and fake_api.calls("sendMessage") == []
        await store.drop_lease(LEADER, "elsewhere")
        await wait_until(lambda: _is_leading(edge), what="leading")
        await settle(fake_api, store)
    finally:
        await edge.stop(drain_seconds=1)
    order = [int(c["chat_id"]) for c in fake_api.calls("sendMessage")]
    assert order.index(1001) < min(order.index(u) for u in range(30_000, 30_012))


async def test_an_update_the_database_cannot_store_is_refused_until_it_can(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str, backend: str
) -> None:
    """Stored before the 200, or not answered 200: Telegram posts it again."""
    port = free_port()
    config = webhook_config(fake_api, database, port)
    async with running_edge(config, loaded, store, edge_class=QueuedEdge) as edge:
        await store.close()  # the database is gone (a restart, an outage)
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        await fake_api.wait_for(lambda: 503 in fake_api.webhook_answers, timeout=10)
        assert fake_api.pending_updates == 1  # still Telegram's to deliver
        await store.open()
        await fake_api.wait_for(lambda: fake_api.pending_updates == 0, timeout=10)
        intro = await ada.next_one(timeout=10)
        assert "I agree" in labels(intro)
        assert edge.leading


async def test_a_stopped_worker_gives_its_claims_and_its_lead_up(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str
) -> None:
    config = webhook_config(fake_api, database, free_port())
    timing = Timing(claim=timedelta(seconds=60), leader=timedelta(seconds=60))
    first = QueuedEdge(config, loaded, store, timing=timing, owner="first")
    await first.start()
    await fake_api.wait_for(lambda: fake_api.calls("setWebhook"))
    await first.stop(drain_seconds=1)
    assert not first.leading
    # A second worker leads at once: the lease was given up, not left to run out.
    second = QueuedEdge(config, loaded, store, timing=timing, owner="second")
    await second.start()
    try:
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        assert "I agree" in labels(await ada.next_one(timeout=5))
        assert second.leading
    finally:
        await second.stop(drain_seconds=1)


async def test_a_worker_killed_right_after_its_200_loses_nothing(
    fake_api: FakeBotApi, database: str, tmp_path: Path
) -> None:
    """SIGKILL as soon as Telegram has its 200: the stored update is handled after the restart.

    Rounds go on until one kill came after the 200 and before the update was handled (the
    store then still holds it), and at most five; every /help gets exactly one answer.
    """
    port, log = free_port(), tmp_path / "worker.log"
    user = 2001
    fake_api.add_user(user)
    caught, sent = 0, 0
    async with store_for(database) as store:
        for _ in range(5):
            worker = await start_worker(fake_api, database, log, (user,), port=port)
            answered = len(fake_api.webhook_answers)
            await fake_api.send_text(user, "/help")
            sent += 1
            # As close to the 200 as can be: looked at every millisecond.
            while 200 not in fake_api.webhook_answers[answered:]:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            worker.kill()
            await worker.process.wait()
            caught += await store.queued_updates()  # stored, answered, not handled
            worker = await start_worker(fake_api, database, log, (user,), port=port)
            try:
                await fake_api.wait_for(lambda n=sent: len(fake_api.messages(user)) >= n,
                                        timeout=20)
                await wait_until(lambda: _queue_empty(store), timeout=20, what="handled")
                assert len(fake_api.messages(user)) == sent, worker.tail()
            finally:
                assert await worker.stop() == 0, worker.tail()
            if caught:
                break
    assert caught, "no kill fell between the 200 and the handling"


async def _is_leading(edge: QueuedEdge) -> bool:
    return edge.leading


async def _queue_empty(store: Store) -> bool:
    return await store.queued_updates() == 0
