"""Kill -9 workers at random while clients write, and restart PostgreSQL under them.

Three workers of the real bot (``tests.support.worker_child``: ``QueuedEdge`` in webhook mode
on one PostgreSQL schema, claims and the leader's lease shortened to 2 s) share the updates
the fake Bot API posts, as Telegram would. Allowlisted clients keep pressing and typing
(``tests.test_crash_bot.Clients``). Each round one or two workers, the leader among them or
not, are killed with SIGKILL at a random moment and started again; one round restarts the
database server instead (an immediate shutdown, as a crash, and recovery). Rounds:
``REHEARSE_CRASH_ROUNDS`` (default 3, one of them the database's).

After every round, once everything settled:

* every update a client sent was handled, exactly once: it has its dedup row, for its
  sender; every ledger row belongs to one handled event (one contiguous run of the client's
  ledger); nothing is left in the update queue;
* every message committed to the outbox was sent, and each chat received them in the order
  they were committed (consecutive texts may share a message; a message that begins by
  repeating the texts sent right before it is the documented at-least-once case of a
  sender killed between Telegram's answer and recording it, and is counted); a trigger of
  the test records what the outbox held;
* nobody is stuck: each client's next input gets a reply;
* no worker logged a traceback or a critical error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from bot.store import store_for
from tests.conftest import PostgresServer
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import free_port
from tests.support.telegram_client import parts
from tests.support.workers import Worker, start_workers
from tests.test_crash_bot import REPLY_METHODS, Clients, everyone_goes_on, until

ROUNDS = max(2, int(os.environ.get("REHEARSE_CRASH_ROUNDS", "3")))
WORKERS = 3
CLIENTS = tuple(range(2001, 2007))
LEASE = 2.0

_AUDIT = """
CREATE TABLE outbox_audit (id bigint, chat_id bigint, text text, what text);
CREATE FUNCTION outbox_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_audit VALUES (NEW.id, NEW.chat_id, NEW.payload->>'text', 'queued');
    ELSE
        INSERT INTO outbox_audit VALUES (OLD.id, OLD.chat_id, OLD.payload->>'text',
            CASE WHEN current_query() LIKE 'DELETE FROM outbox WHERE id =%'
                 THEN 'sent' ELSE 'dropped' END);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_audit AFTER INSERT OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_audit();
"""


@contextmanager
def database(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def queued(url: str) -> int:
    with database(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM updates WHERE NOT handled)"
                           " + (SELECT count(*) FROM outbox)").fetchone()
    return int(str(row[0])) if row else 0


def check(url: str, api: FakeBotApi, clients: Clients) -> int:
    """The checks of the module docstring; returns how many messages were sent again."""
    with database(url) as conn:
        inbox = {str(event): (str(client), at) for event, client, at in conn.execute(
            "SELECT event_id, client_id, at FROM inbox").fetchall()}
        ledger = conn.execute("SELECT seq, client_id, at FROM ledger ORDER BY seq").fetchall()
        audit = conn.execute("SELECT id, chat_id, text, what FROM outbox_audit "
                             "WHERE what = 'sent' ORDER BY id").fetchall()
    missing = [u for u, user in clients.sent.items() if inbox.get(f"tg:{u}", ("",))[0]
               != f"tg:{user}"]
    assert not missing, f"updates not handled (or as someone else's): {missing[:10]}"
    events = set(inbox.values())
    runs: dict[str, list[object]] = defaultdict(list)
    for seq, client, at in ledger:
        assert (client, at) in events, f"ledger row {seq} belongs to no handled event"
        runs[str(client)].append(at)
    for client, ats in runs.items():
        starts = [at for n, at in enumerate(ats) if n == 0 or ats[n - 1] != at]
        assert len(starts) == len(set(starts)), f"an event of {client} wrote its rows twice"

    repeated = 0
    for user in CLIENTS:
        expected = [str(text).strip() for _, chat, text, _ in audit if chat == user]
        # Consecutive texts go out as one message: each message is read into its texts.
        messages = [parts(str(r.params.get("text")), expected) for r in api.requests
                    if r.method.lower() in REPLY_METHODS and r.params.get("chat_id") == user]
        repeats = read_against([m for m in messages if m], expected)
        assert repeats is not None, (
            f"chat {user}: sent out of order, or lost: {len(messages)} messages for "
            f"{len(expected)} committed texts")
        repeated += repeats
    return repeated


def trouble(log: Path) -> list[str]:
    """A worker's critical lines, and tracebacks of anything but an outage of the store.

    (While the database restarts, the sending and timer loops log each failed round with
    its frames; those end in ``StoreError`` and hold no client text.)
    """
    lines = log.read_text(errors="replace").splitlines()
    found = [line for line in lines if " CRITICAL " in line]
    for number, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((later for later in lines[number + 1:] if not later.startswith(" ")),
                       "")
            if not end.startswith("bot.store._base.StoreError"):
                found.append(end or line)
    return found


def read_against(messages: list[list[str]], expected: list[str]) -> int | None:
    """Read a chat's messages (each as the texts it joins) against the texts committed for
    it: how many messages began by repeating texts sent right before them (a sender killed
    between Telegram's answer and its record), the rest fresh and in order; None when a text
    was lost, reordered or repeated otherwise."""
    at = repeats = 0
    for message in messages:
        for again in range(min(len(message), at) + 1):  # texts repeated; fresh ones first
            fresh = message[again:]
            if (message[:again] == expected[at - again:at]
                    and expected[at:at + len(fresh)] == fresh):
                break
        else:
            return None
        repeats += again > 0
        at += len(message) - again
    return repeats if at == len(expected) else None


@pytest.mark.slow
async def test_sigkill_workers_and_a_database_restart_lose_nothing_and_repeat_nothing(
    fake_api: FakeBotApi, postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    cluster = postgres_server.cluster
    if cluster is None:
        pytest.skip("restarting the database needs the throwaway cluster")
    api, port = fake_api, free_port()
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    print(f"worker crash test seed {seed} (REHEARSE_CRASH_ROUNDS={ROUNDS})")
    async with store_for(postgres_url):  # creates the tables, for the trigger
        pass
    with database(postgres_url) as conn:
        conn.execute(_AUDIT)
    clients = Clients(api)
    for user in CLIENTS:
        api.add_user(user, "Crash")
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]

    async def start(numbers: list[int]) -> list[Worker]:
        return await start_workers(api, postgres_url, [logs[n] for n in numbers], CLIENTS,
                                   port=port, claim=LEASE, leader=LEASE)

    plan = ["workers"] * (ROUNDS - 1)
    plan.insert(len(plan) // 2, "database")
    running = await start(list(range(WORKERS)))
    #: Workers killed and starting again while the others settle what is left.
    restarting: tuple[list[int], asyncio.Task[list[Worker]]] | None = None
    kills = repeated = 0
    started = time.monotonic()
    try:
        for ending in [*plan, "final"]:
            await until(lambda: api.pending_updates == 0 and queued(postgres_url) == 0, 60,
                        "every update handled and every message sent")
            if restarting is not None:
                victims, starting = restarting
                restarting = None
                for number, worker in zip(victims, await starting, strict=True):
                    running[number] = worker
            repeated = check(postgres_url, api, clients)  # all so far
            await everyone_goes_on(api, clients)
            if ending == "final":
                break
            drivers = [asyncio.create_task(clients.walk(user, rng)) for user in CLIENTS]
            try:
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                if ending == "database":
                    await asyncio.to_thread(cluster.restart, "immediate")
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                else:
                    victims = rng.sample(range(WORKERS), rng.choice((1, 2)))
                    for number in victims:
                        running[number].kill()
                        await running[number].process.wait()
                        kills += 1
                    await asyncio.sleep(rng.uniform(0.1, 1.0))  # the others carry on
                    restarting = (victims, asyncio.create_task(start(victims)))
            finally:
                for task in drivers:
                    task.cancel()
                await asyncio.gather(*drivers, return_exceptions=True)
        for worker in running:
            assert await asyncio.wait_for(worker.stop(), 30) == 0, worker.tail()
    finally:
        if restarting is not None:
            with contextlib.suppress(Exception):
                running += await restarting[1]
        for worker in running:
            worker.kill()
    problems = [problem for log in logs for problem in trouble(log)]
    assert not problems, "\n".join(problems[:10])
    print(f"{kills} workers killed in {ROUNDS - 1} rounds and 1 database restart, "
          f"{len(clients.sent)} updates, {repeated} messages sent again, "
          f"{time.monotonic() - started:.1f} s")
