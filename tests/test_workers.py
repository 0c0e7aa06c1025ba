"""Several processes on one database: no commit overwrites a change it did not see, and the
workers of ``QueuedEdge`` share the updates, the outbox, the timers and the lead.

Runs on SQLite and PostgreSQL. Each "process" is a service or an edge with a store of its
own (its own connections), all on one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from bot.app import Loaded
from bot.config import API_BASE_URL_ENV, TOKEN_ENV, Config
from bot.engine import Clinician, Start
from bot.service import Rehearsal
from bot.store import Commit, Invite, OutgoingMessage, Store, store_for
from bot.telegram import QueuedEdge, Timing, chat_of, code_hash
from bot.telegram._convert import client_key
from bot.telegram._sender import MESSAGE_LIMIT
from tests.conftest import ROOT, Clock
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import free_port
from tests.support.telegram_client import (
    TelegramClient,
    choose_script,
    give_consent,
    labels,
    pacing_off,
    settle,
)
from tests.test_telegram_webhook import webhook_config

pytestmark = pytest.mark.backends


@pytest.fixture
async def second_store(database: str, store: Store) -> AsyncIterator[Store]:
    """Another connection to the test's database, as another worker has."""
    async with store_for(database) as opened:
        yield opened


async def test_two_processes_changing_one_client_at_once_lose_neither_change(
    store: Store, second_store: Store, loaded: Loaded, clock: Clock
) -> None:
    """Each reads the client, each computes, each commits: the second commit is refused
    and computed again from the first one's state, so both changes stay."""
    one = Rehearsal(loaded.engine, store, clock, chat_of)
    other = Rehearsal(loaded.engine, second_store, clock, chat_of)
    for round_ in range(15):
        client = f"tg:{7000 + round_}"
        await one.handle(client, f"start:{round_}", Start(display_name="Ada"))
        await asyncio.gather(
            one.handle(client, f"a:{round_}", Clinician(action="guardian-consent", by="one")),
            other.handle(client, f"b:{round_}", Clinician(action="clear-hold", by="other")))
        state = await store.load_state(client)
        assert state is not None
        assert state["guardian_consent"] is True, round_
        assert state["crisis_hold_cleared_by_therapist"] is True, round_
        kinds = [row.kind for row in await store.ledger(client)]
        assert kinds.count("guardian_consent") == 1 and kinds.count("crisis_hold_cleared") == 1


async def test_an_event_of_another_source_never_brings_an_erased_client_back(
    store: Store, second_store: Store, loaded: Loaded, clock: Clock
) -> None:
    """A therapist's action computed while another process erased the client is dropped
    (it would store a fresh state for someone erased)."""
    one = Rehearsal(loaded.engine, store, clock, chat_of)
    await one.handle("tg:7100", "start", Start(display_name="Ada"))
    other = Rehearsal(loaded.engine, second_store, clock, chat_of)
    acting = asyncio.create_task(
        other.handle("tg:7100", "act", Clinician(action="guardian-consent", by="x")))
    await store.erase("tg:7100")
    await acting
    assert await store.load_state("tg:7100") is None
    assert await store.client_ids() == []


# -- several QueuedEdge workers on one PostgreSQL database -----------------------------------

USERS = tuple(range(3001, 3009))


@contextlib.asynccontextmanager
async def workers(
    config: Config, loaded: Loaded, url: str, count: int, *, pacer: bool = False,
) -> AsyncIterator[list[QueuedEdge]]:
    """`count` workers, each with its own store (connections) on the database at `url`."""
    async with contextlib.AsyncExitStack() as stack:
        edges = []
        for number in range(count):
            store = await stack.enter_async_context(store_for(url))
            edge = QueuedEdge(config, loaded, store, owner=f"worker-{number}",
                              pacer=None if pacer else pacing_off(),
                              timing=Timing(leader=timedelta(seconds=3), renew_every=0.5))
            await edge.start()
            stack.push_async_callback(edge.stop, 2)
            edges.append(edge)
        yield edges


async def one_leader(edges: list[QueuedEdge], seen: list[int], done: asyncio.Event) -> None:
    """Sample how many workers lead, until `done`."""
    while not done.is_set():
        seen.append(sum(edge.leading for edge in edges))
        await asyncio.sleep(0.05)


async def test_three_workers_handle_every_client_in_order_and_exactly_once(
    fake_api: FakeBotApi, loaded: Loaded, postgres_url: str
) -> None:
    config = webhook_config(fake_api, postgres_url, free_port(),
                            access={"mode": "allowlist", "allowlist": list(USERS)})
    async with workers(config, loaded, postgres_url, 3) as edges:
        store = edges[0].service.store
        seen: list[int] = []
        done = asyncio.Event()
        sampling = asyncio.create_task(one_leader(edges, seen, done))
        clients = [TelegramClient(fake_api, user, f"C{user}") for user in USERS]

        async def walk(client: TelegramClient, number: int) -> None:
            await client.send("/start")
            await give_consent(client)
            await choose_script(client, "First steps")
            for _ in range(3):
                await client.until(lambda m: "Go on" in labels(m))
                await client.press("Go on")
            await client.until(lambda m: "10" in labels(m))
            # Without waiting: only in this order do they make sense (a rating, an expected
            # difficulty, an answer).
            for text in (str(1 + number % 3), str(2 + number % 3), f"Answer {number}"):
                await client.send(text)
            await client.until(lambda m: "Yes, one more" in labels(m))

        await asyncio.gather(*(walk(client, n) for n, client in enumerate(clients)))
        await settle(fake_api, store)
        done.set()
        await sampling

        first = [t.replace(clients[0].name, "X") for t in clients[0].texts]
        for number, client in enumerate(clients):
            assert [t.replace(client.name, "X") for t in client.texts] == first
            ledger = await store.ledger(client_key(client.user_id))
            [checkin] = [r.data for r in ledger if r.kind == "checkin"]
            [expectation] = [r.data for r in ledger if r.kind == "checkin_expected"]
            assert (checkin["distress"], expectation["expected"]) == (
                1 + number % 3, 2 + number % 3)
            assert [r.data["response"] for r in ledger if r.kind == "prompt"] == ["text"]
        updates = len(fake_api.deliveries)
        assert sum(edge.handled_updates for edge in edges) == updates  # each once
        assert sum(1 for edge in edges if edge.handled_updates) >= 2  # shared out
        assert fake_api.peak_calls_per_chat["sendmessage"] == 1  # one chat, one send at a time
        # Never two leaders; one nearly all along (none for a moment only if a renewal came
        # too late on a starved machine).
        assert max(seen) == 1 and seen.count(1) >= 0.9 * len(seen), seen


def long_text(chat: int, n: int) -> str:
    """Message ``n`` to ``chat``, longer than half of what one message holds."""
    return f"{chat}:{n}".ljust(MESSAGE_LIMIT // 2 + 1, ".")


async def test_the_outbox_is_sent_once_in_order_at_the_shared_rate(
    fake_api: FakeBotApi, loaded: Loaded, postgres_url: str, clock: Clock
) -> None:
    """60 queued messages (each too long to share a message with the next), a global limit
    of 10 a second (bursts of 30): three workers send them once, each chat's in order, no
    faster than one sender may."""
    chats = range(4001, 4013)
    async with store_for(postgres_url) as store:
        for chat in chats:
            fake_api.add_user(chat)
            await store.commit(Commit(
                event_id=f"queued:{chat}", client_id=f"tg:{chat}", at=clock.now, state=None,
                outbox=[OutgoingMessage(f"tg:{chat}", chat, {"text": long_text(chat, n)})
                        for n in range(5)]))
    config = webhook_config(fake_api, postgres_url, free_port(),
                            sending={"per_chat_per_second": 30.0, "global_per_second": 10.0})
    started = time.monotonic()
    async with workers(config, loaded, postgres_url, 3, pacer=True):
        await fake_api.wait_for(lambda: fake_api.sent_count >= 60, timeout=30)
        took = time.monotonic() - started
        await asyncio.sleep(0.5)  # nothing more comes
    for chat in chats:
        assert [m.text for m in fake_api.messages(chat)] == [long_text(chat, n) for n in range(5)]
    assert fake_api.sent_count == 60
    assert took >= (60 - 30) / 10 - 0.2, f"sent at more than the global rate: {took:.1f} s"


async def test_an_erasure_by_another_process_is_seen_before_the_next_update(
    fake_api: FakeBotApi, loaded: Loaded, postgres_url: str
) -> None:
    """A worker that let a client in forgets it when another process erases the client."""
    config = webhook_config(fake_api, postgres_url, free_port(), access={"mode": "invite"})
    async with workers(config, loaded, postgres_url, 1) as [edge]:
        store = edge.service.store
        await store.add_invite(Invite(code_hash("CODE-1"), "first-steps", None,
                                      edge.clock() + timedelta(days=1), edge.clock()))
        ada = TelegramClient(fake_api, 3101, "Ada")
        await ada.send("/start CODE-1")
        await ada.until(lambda m: "I agree" in labels(m))
        await settle(fake_api, store)
        async with store_for(postgres_url) as operator:  # `rehearse erase`, or a worker
            await operator.erase("tg:3101")
        await ada.send("hello")
        await ada.expect(str(loaded.renderer.system("access.invite_needed")).strip())
        await settle(fake_api, store)
        assert await store.client_ids() == []


# -- rehearse run --workers N ------------------------------------------------------------------


async def leader_pid(url: str) -> int:
    """The process id of the worker holding the leader's lease (owner ``host:pid:…``)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for _ in range(100):
            cursor = await conn.execute("SELECT owner FROM leases WHERE name = 'leader'")
            row = await cursor.fetchone()
            if row is not None:
                return int(str(row[0]).split(":")[1])
            await asyncio.sleep(0.1)
    raise AssertionError("no worker leads")


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (Linux)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as listing:
        return [int(child) for child in listing.read().split()]


@pytest.mark.slow
async def test_rehearse_run_with_two_workers_serves_restarts_one_and_stops(
    fake_api: FakeBotApi, postgres_url: str, tmp_path: Path, loaded: Loaded
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("access:\n  mode: allowlist\n  allowlist: [3201]\n"
                      "telegram:\n  poll_timeout: 1\n", encoding="utf-8")
    # PYTHONPATH: the workers run in tmp_path and must import this checkout's bot, whatever
    # an editable install elsewhere points at.
    env = {**os.environ, TOKEN_ENV: fake_api.token, API_BASE_URL_ENV: fake_api.base_url,
           "REHEARSE_CONFIG": "", "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "bot", "run", "--workers", "2", "--config", str(config)]
    refused = await asyncio.create_subprocess_exec(
        *run, "--db", str(tmp_path / "one.db"), env=env, stderr=asyncio.subprocess.PIPE)
    _, err = await refused.communicate()
    assert refused.returncode == 1 and b"several workers need a PostgreSQL database" in err

    log = tmp_path / "workers.log"
    with log.open("wb") as stderr:
        supervisor = await asyncio.create_subprocess_exec(
            *run, "--db", postgres_url, env=env, stderr=stderr, cwd=tmp_path)
    try:
        await fake_api.wait_for(lambda: len(fake_api.calls("setMyCommands")) >= 2, timeout=60)
        ada = TelegramClient(fake_api, 3201, "Ada")
        await ada.send("/start")
        assert "I agree" in labels(await ada.next_one(timeout=20))
        # One worker dies: the other serves, it comes back. The one that does not lead (a
        # leader's death waits out its lease: test_crash_workers kills leaders too).
        leader = await leader_pid(postgres_url)
        [first] = [pid for pid in children_of(supervisor.pid) if pid != leader]
        os.kill(first, signal.SIGKILL)
        await ada.press("I agree")
        await ada.until(lambda m: labels(m) == ["Yes", "No"], timeout=20)
        second = leader
        await fake_api.wait_for(lambda: len(fake_api.calls("setMyCommands")) >= 3, timeout=60)
        assert second in children_of(supervisor.pid) and first not in children_of(
            supervisor.pid)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(supervisor.wait(), timeout=40)
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "worker 1 of 2 started" in text and "exited with -9" in text
    assert text.count("Rehearse stopped cleanly") == 2
