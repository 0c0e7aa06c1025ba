"""Kill -9 the running bot at random moments: nobody loses their place, nothing is done twice.

The parent (this test) owns the fake Bot API server; the child
(``tests.support.bot_crash_child``) is the real bot as ``rehearse run`` starts it
(``TelegramEdge`` on a ``SqliteStore``) and talks to the server over 127.0.0.1. Several
allowlisted clients are mid-script and keep pressing buttons and typing while the child is
killed with SIGKILL at a random moment and started again, round after round
(``REHEARSE_CRASH_ROUNDS``, default 8). One round stops the child with SIGTERM instead.

After every round, with read-only SQLite connections:

* ``PRAGMA integrity_check`` is ok and every ledger row seen after the kill is still there,
  unchanged, after the restart;
* every update the clients sent was handled exactly once: the fake server re-delivers what
  the bot did not confirm (as Telegram does), every update id has its dedup row, and every
  ledger row belongs to exactly one handled update (one commit, one contiguous run of rows);
* every message that was committed to the outbox is sent after the restart (the outbox
  empties and the fake server received those texts);
* every client can go on from their last committed step: one more input gets a reply.

The SIGTERM round loses nothing at all: the child exits 0, its outbox is empty (queued
messages were sent before exit) and every committed message reached the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import Loaded
from bot.service import Rehearsal
from bot.store import SqliteStore
from tests.support.fake_bot_api import ApiError, FakeBotApi
from tests.support.telegram_client import parts

#: Rounds of kill -9 take a while; CI runs them (``-m 'not slow'`` leaves them out).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("REHEARSE_CRASH_ROUNDS", "8"))
CLIENTS = tuple(range(2001, 2007))
TEXTS = ("UTC", "19:00", "I like tea, and walking by the river")
REPLY_METHODS = ("sendmessage", "editmessagetext")


# -- the database, read-only ---------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """What the database held at one moment (read with a read-only connection)."""

    ledger: dict[int, tuple[Any, ...]]
    inbox: dict[str, tuple[str, str]]
    outbox: list[tuple[int, int, str]]


@contextlib.contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection that never writes the database or its WAL."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def integrity(db: Path) -> list[tuple[Any, ...]]:
    with read_only(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def snapshot(db: Path) -> Snapshot:
    with read_only(db) as conn:
        conn.execute("BEGIN")  # one consistent read
        ledger = {row[0]: row for row in conn.execute(
            "SELECT seq, client_id, at, kind, data FROM ledger")}
        inbox = {event_id: (client_id, at) for event_id, client_id, at in conn.execute(
            "SELECT event_id, client_id, at FROM inbox")}
        outbox = [(row[0], row[1], row[2]) for row in conn.execute(
            "SELECT id, chat_id, json_extract(payload, '$.text') FROM outbox ORDER BY id")]
        conn.execute("COMMIT")
    return Snapshot(ledger, inbox, outbox)


def tail(log: Path, size: int | None = 3000) -> str:
    text = log.read_text(errors="replace")
    return text if size is None else text[-size:]


def file_bytes(directory: Path, pattern: str) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob(pattern)))


def outbox_size(db: Path) -> int:
    with read_only(db) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


# -- the clients -----------------------------------------------------------------------------

@dataclass
class Clients:
    """The simulated clients: what they sent, and how to make the next move."""

    api: FakeBotApi
    sent: dict[int, int] = field(default_factory=dict)  # update id -> user id
    texts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _counted: int = 0
    _replies: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def replies(self, user: int) -> int:
        """How many messages (sent or edited) the bot addressed to the user so far."""
        requests = self.api.requests
        for request in requests[self._counted:]:
            if request.method.lower() in REPLY_METHODS:
                chat = request.params.get("chat_id")
                if isinstance(chat, int):
                    self._replies[chat] += 1
        self._counted = len(requests)
        return self._replies[user]

    async def move(self, user: int) -> int:
        """React to the bot's latest message: press its first button, or type something."""
        shown = [m for m in self.api.messages(user) if not m.deleted]
        keyboard = (shown[-1].reply_markup or {}).get("inline_keyboard") if shown else None
        if not shown:
            update_id = await self.api.send_text(user, "/start", first_name="Crash")
        elif keyboard:
            data = keyboard[0][0]["callback_data"]
            update_id = await self.api.press_button(user, shown[-1].message_id, data,
                                                    verify=False)
        else:
            text = TEXTS[self.texts[user] % len(TEXTS)]
            self.texts[user] += 1
            update_id = await self.api.send_text(user, text, first_name="Crash")
        self.sent[update_id] = user
        return update_id

    async def walk(self, user: int, rng: random.Random) -> None:
        """Keep moving: the next input once a reply came (or after a while without one)."""
        while True:
            before = self.replies(user)
            await self.move(user)
            with contextlib.suppress(TimeoutError):
                await self.api.wait_for(lambda b=before: self.replies(user) > b, timeout=1.0)
            await asyncio.sleep(rng.uniform(0, 0.03))


# -- the child -------------------------------------------------------------------------------

@dataclass
class Child:
    """One run of the bot in a child process."""

    process: asyncio.subprocess.Process
    first_request: int


async def start_child(api: FakeBotApi, db: Path, log: Path) -> Child:
    """Start the bot and wait until it polls the fake server."""
    first = len(api.requests)
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.bot_crash_child",
            "--db", str(db), "--base-url", api.base_url, "--token", api.token,
            "--allow", ",".join(map(str, CLIENTS)),
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )

    def polling() -> bool:
        methods = [r.method.lower() for r in api.requests[first:]]
        return "setmycommands" in methods and "getupdates" in methods

    try:
        await api.wait_for(polling, timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the bot did not start:\n{tail(log)}") from None
    return Child(process, first)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def with_drivers(clients: Clients, rng: random.Random,
                       body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` while every client keeps pressing and typing."""
    tasks = [asyncio.create_task(clients.walk(user, rng)) for user in CLIENTS]
    try:
        await body()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the checks ------------------------------------------------------------------------------

async def settle_and_check(
    api: FakeBotApi, db: Path, clients: Clients, before: Snapshot | None, since: int
) -> Snapshot:
    """With the bot running again: everything re-delivered, handled once, sent; all intact.

    Args:
        before: What the database held right after the last kill or stop.
        since: Index into ``api.requests`` from the moment the bot went down.
    """
    await until(lambda: api.pending_updates == 0, 30, "the bot confirmed every update")
    await until(lambda: outbox_size(db) == 0, 30, "the outbox is empty")
    assert integrity(db) == [("ok",)]
    now = snapshot(db)

    if before is not None:
        lost = [seq for seq, row in before.ledger.items() if now.ledger.get(seq) != row]
        assert not lost, f"committed ledger rows lost or changed after the restart: {lost[:5]}"
        # (consecutive texts go out as one message: each message is read into its texts)
        known = [text for _, _, text in before.outbox]
        delivered = {(r.params.get("chat_id"), part)
                     for r in api.requests[since:] if r.method.lower() in REPLY_METHODS
                     for part in parts(str(r.params.get("text", "")), known) or ()}
        unsent = [(row_id, chat, text) for row_id, chat, text in before.outbox
                  if (chat, text.strip()) not in delivered]
        assert not unsent, f"committed messages never sent after the restart: {unsent[:3]}"

    # Every update the clients sent was handled, exactly once.
    handled = {int(event_id.removeprefix("tg:")): client
               for event_id, (client, _) in now.inbox.items() if event_id.startswith("tg:")}
    missing = sorted(set(clients.sent) - set(handled))
    assert not missing, f"updates never handled: {missing[:10]}"
    strangers = {u: c for u, c in handled.items() if f"tg:{clients.sent.get(u)}" != c}
    assert not strangers, f"dedup rows of updates nobody sent: {strangers}"

    # Every ledger row belongs to one handled event: the rows of one event are one
    # contiguous run of the client's ledger, and no event's rows appear twice.
    events = {(client, at) for client, at in now.inbox.values()}
    runs: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for seq, (_, client, at, _, _) in sorted(now.ledger.items()):
        assert (client, at) in events, f"ledger row {seq} belongs to no handled event"
        runs[client].append((at, seq))
    for client, rows in runs.items():
        seen: set[str] = set()
        previous = None
        for at, _ in rows:
            if at != previous:
                assert at not in seen, f"an event of {client} wrote ledger rows twice"
                seen.add(at)
                previous = at
    return now


async def everyone_goes_on(api: FakeBotApi, clients: Clients) -> None:
    """Each client's next press or answer gets a reply: nobody is stuck."""
    before = {user: clients.replies(user) for user in CLIENTS}
    for user in CLIENTS:
        await clients.move(user)
    for user in CLIENTS:
        try:
            await api.wait_for(lambda u=user: clients.replies(u) > before[u], timeout=15)
        except TimeoutError:
            texts = [m.text[:60] for m in api.messages(user)[-3:]]
            raise AssertionError(f"client {user} got no reply; last messages {texts}") from None


# -- the test --------------------------------------------------------------------------------

async def test_kill_9_loses_nothing_and_repeats_nothing(
    fake_api: FakeBotApi, tmp_path: Path
) -> None:
    api, db, log = fake_api, tmp_path / "bot.db", tmp_path / "child.log"
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    print(f"crash test seed {seed} (REHEARSE_CRASH_ROUNDS={ROUNDS})")
    clients = Clients(api)
    for user in CLIENTS:
        api.add_user(user, "Crash")
    # Rounds 0 .. ROUNDS-1 end in SIGKILL, half of them in the commit-to-confirm window;
    # one more round, in the middle, ends in SIGTERM; the last start ends in SIGTERM too.
    plan = ["random", "window"] * ROUNDS
    plan = plan[:ROUNDS]
    plan.insert(ROUNDS // 2, "sigterm")
    before: Snapshot | None = None
    down_since = 0
    started = time.monotonic()
    unsent_at_kill = redelivered = 0
    children: list[Child] = []
    try:
        for ending in [*plan, "final"]:
            child = await start_child(api, db, log)
            children.append(child)
            await settle_and_check(api, db, clients, before, down_since)
            await everyone_goes_on(api, clients)
            if ending in ("sigterm", "final"):
                before = await stop_gracefully(api, db, child, clients, rng)
                down_since = len(api.requests)
                continue

            async def run_then_kill(child: Child = child, ending: str = ending) -> None:
                await asyncio.sleep(rng.uniform(0.05, 1.2))
                if ending == "window":
                    await kill_in_window(api, child)
                else:
                    child.process.send_signal(signal.SIGKILL)
                assert await child.process.wait() == -signal.SIGKILL

            await with_drivers(clients, rng, run_then_kill)
            down_since = len(api.requests)
            before = snapshot(db)
            assert integrity(db) == [("ok",)]
            unsent_at_kill += len(before.outbox)
            redelivered += sum(f"tg:{update['update_id']}" in before.inbox
                               for _, update in api._updates)
            # While the bot is down clients keep writing; Telegram keeps their updates.
            for user in CLIENTS:
                await clients.move(user)
    finally:
        for child in children:
            if child.process.returncode is None:
                child.process.kill()
                await child.process.wait()

    problems = [line for line in tail(log, None).splitlines()
                if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]
    assert not problems, "\n".join(problems[:10])
    print(f"{ROUNDS} kills and 2 SIGTERMs, {len(clients.sent)} updates, {unsent_at_kill} "
          f"messages unsent at a kill, {redelivered} handled updates delivered again, "
          f"{time.monotonic() - started:.1f} s")


async def kill_in_window(api: FakeBotApi, child: Child) -> None:
    """SIGKILL the bot after it committed a batch of updates, before Telegram heard of it.

    The bot confirms a batch's offset only with its next ``getUpdates``, after every update
    of the batch was committed. Killing it as that request arrives (the server never acts
    on it) hits the window in which updates are committed but will be delivered again:
    dedup must make that harmless.
    """
    name, get_updates = api._methods["getupdates"]
    killed = asyncio.Event()

    async def killing(params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        confirms = isinstance(offset, int) and any(
            update["update_id"] < offset for _, update in api._updates)
        if confirms and not killed.is_set():
            child.process.send_signal(signal.SIGKILL)
            killed.set()
            raise ApiError(502, "Bad Gateway")
        return await get_updates(params)

    api._methods["getupdates"] = (name, killing)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(killed.wait(), timeout=2.0)
    finally:
        api._methods["getupdates"] = (name, get_updates)
    if not killed.is_set():
        child.process.send_signal(signal.SIGKILL)


async def stop_gracefully(
    api: FakeBotApi, db: Path, child: Child, clients: Clients, rng: random.Random
) -> Snapshot:
    """SIGTERM while clients write: exit 0, every committed message sent, nothing lost."""
    delivered: set[int] = set()
    name, get_updates = api._methods["getupdates"]

    async def recording(params: dict[str, Any]) -> Any:
        result = await get_updates(params)
        delivered.update(update["update_id"] for update in result)
        return result

    api._methods["getupdates"] = (name, recording)
    try:
        async def run_then_stop() -> None:
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            child.process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(child.process.wait(), timeout=20)
            assert code == 0, f"the bot exited with {code} on SIGTERM"

        await with_drivers(clients, rng, run_then_stop)
    finally:
        api._methods["getupdates"] = (name, get_updates)
    assert integrity(db) == [("ok",)]
    after = snapshot(db)
    assert after.outbox == [], f"messages left unsent after SIGTERM: {after.outbox[:3]}"
    # Every message the bot committed was sent before it exited, in this run.
    sent = {(r.params.get("chat_id"), r.params.get("text"))
            for r in api.requests[child.first_request:] if r.method.lower() in REPLY_METHODS}
    assert sent, "the bot sent nothing in the SIGTERM round"
    # Nothing fetched is lost: every update the server handed out was either handled or is
    # still unconfirmed (a long poll cut short by the stop), so Telegram delivers it again.
    pending = {update["update_id"] for _, update in api._updates}
    handled = {int(e.removeprefix("tg:")) for e in after.inbox if e.startswith("tg:")}
    assert delivered <= handled | pending, sorted(delivered - handled - pending)
    return after


# -- a crash in the middle of an erasure -----------------------------------------------------

_ERASE_CHILD = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from bot.app import build
from bot.config import load_config
from bot.engine import Button, ClientState, Command, Start, Text
from bot.service import Rehearsal
from bot.store import SqliteStore

async def main(db):
    loaded = build(load_config(None, {}))
    async with SqliteStore(db) as store:
        service = Rehearsal(loaded.engine, store, lambda: datetime.now(UTC))
        client, n = "tg:2901", 0

        async def send(event):
            nonlocal n
            n += 1
            await service.handle(client, f"e{n}", event)

        async def press(code):
            state = ClientState.model_validate(await store.load_state(client))
            await send(Button(data=f"{state.keyboard}:{code}"))

        await send(Start(display_name="Erin"))
        for code in ("y", "y", "y", "n", "n", "n"):
            await press(code)
        await send(Command(name="delete"))

        async def killed(client_id, keep_event=None):  # the process dies as the erasure begins
            os.kill(os.getpid(), signal.SIGKILL)

        store.erase = killed
        await press("dy")

asyncio.run(main(sys.argv[1]))
"""


async def test_an_erasure_cut_short_by_kill_9_is_finished_after_restart(
    tmp_path: Path, loaded: Loaded
) -> None:
    db, client = tmp_path / "erase.db", "tg:2901"
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", _ERASE_CHILD, str(db),
                                                 cwd=ROOT)
    assert await child.wait() == -signal.SIGKILL
    # The erasure was committed (its ledger row is durable), the data is still there.
    assert integrity(db) == [("ok",)]
    with read_only(db) as conn:
        kinds = [kind for (kind,) in conn.execute(
            "SELECT kind FROM ledger WHERE client_id = ? ORDER BY seq", (client,))]
    assert kinds[-1] == "erase_requested"
    # After the restart the timer loop finishes the job, within a minute or so.
    later = datetime.now(UTC) + timedelta(minutes=2)
    async with SqliteStore(db) as store:
        service = Rehearsal(loaded.engine, store, lambda: later)
        assert await service.fire_due_timers() == 1
        assert await store.load_state(client) is None
        assert await store.ledger(client) == []
        assert await store.client_ids() == []
        assert await service.fire_due_timers() == 0
    raw = file_bytes(tmp_path, "erase.db*")
    assert client.encode() not in raw and b"Erin" not in raw
