"""Faults outside the bot: a long Bot API outage, a full disk, a read-only database.

The real bot (``TelegramEdge`` on a real ``SqliteStore``) runs against the fake Bot API
server. What must hold in each case:

* **A long Bot API outage (six times the poller's longest backoff, half 502s, half dropped
  connections; the bot's waits are a tenth of the real ones, so that it takes 6 s):** the bot
  keeps running, every message committed before or during the outage is delivered
  afterwards, nothing is sent twice, updates sent during the outage are handled, and polling
  resumes.
* **Full disk / full database, read-only database:** the update that cannot be committed is
  not confirmed to Telegram, the error is logged (the client sees no error text or
  traceback; nothing at all is sent for that update), the update is fetched again, the
  database stays intact (``PRAGMA integrity_check``) and, once the fault is fixed, the
  retried update is handled and the client gets their reply.

The full disk is a real one (a small tmpfs, mounted when the test runs as root with
CAP_SYS_ADMIN; skipped otherwise) and an emulated one (``PRAGMA max_page_count`` on the bot's
own connection, which gives the same SQLITE_FULL and runs everywhere). The read-only database
is ``PRAGMA query_only`` on the bot's connection: ``chmod 0400`` does not stop root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.store import Invite, SqliteStore
from bot.telegram import Pacer, TelegramEdge, Waits, code_hash, new_code
from bot.telegram._sender import JOINER
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    TelegramClient,
    button_data,
    choose_script,
    give_consent,
    labels,
    running_edge,
    settle,
    transcript,
)

USER = 3001
REPLY_METHODS = ("sendmessage", "editmessagetext")


# -- helpers ---------------------------------------------------------------------------------

#: The edge's waits, a tenth of the real ones: an outage of six longest backoffs takes 6 s.
TENTH = Waits(timers=0.1, poll_backoff=(0.1, 0.2, 0.4, 0.8, 1.0), refetch_after_failure=0.5,
              max_retry_after=3.0, restart_forgiven_after=6.0)


@contextlib.asynccontextmanager
async def running_bot(
    api: FakeBotApi, loaded: Loaded, db: Path, users: list[int], waits: Waits | None = None,
    **overrides: object,
) -> AsyncIterator[tuple[TelegramEdge, SqliteStore]]:
    """The real bot on a real store at ``db``, talking to ``api``."""
    overrides.setdefault("access", {"mode": "allowlist", "allowlist": users})
    config = edge_config(api, db, **overrides)
    async with SqliteStore(db) as store:
        edge = TelegramEdge(config, loaded, store, pacer=Pacer(per_chat=0, overall=0),
                            waits=waits or Waits())
        await edge.start()
        try:
            yield edge, store
        finally:
            await edge.stop(drain_seconds=2)


def replies(api: FakeBotApi, user: int, since: int = 0) -> list[str]:
    """Texts the bot sent or edited into the user's chat, from request ``since`` on."""
    return [r.params["text"] for r in api.requests[since:]
            if r.method.lower() in REPLY_METHODS and r.params.get("chat_id") == user]


async def step(api: FakeBotApi, user: int) -> int:
    """The client's next move: press the first button shown, else answer in words."""
    shown = [m for m in api.messages(user) if not m.deleted]
    keyboard = (shown[-1].reply_markup or {}).get("inline_keyboard") if shown else None
    if not shown:
        return await api.send_text(user, "/start")
    if keyboard:
        return await api.press_button(user, shown[-1].message_id,
                                      keyboard[0][0]["callback_data"], verify=False)
    return await api.send_text(user, "UTC")


async def settled(api: FakeBotApi, store: SqliteStore, timeout: float = 10) -> None:  # noqa: ASYNC109
    """Wait until the bot confirmed every update and sent every queued message."""
    deadline = time.monotonic() + timeout
    while api.pending_updates or await store.pending_outbox(_far_future(), 10):
        assert time.monotonic() < deadline, "the bot did not settle"
        await asyncio.sleep(0.05)


def _far_future() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


async def walk(api: FakeBotApi, store: SqliteStore, user: int, moves: int) -> None:
    """Take the client some moves into the consent and a script, each answered."""
    for _ in range(moves):
        before = len(replies(api, user))
        await step(api, user)
        await api.wait_for(lambda b=before: len(replies(api, user)) > b, timeout=10)
        await settled(api, store)


def integrity(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def file_bytes(path: Path) -> bytes:
    """The raw bytes of a file (the database or its -wal) as they are on disk."""
    return path.read_bytes()


def dedup_rows(db: Path, update_id: int) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox WHERE event_id = ?",
                                (f"tg:{update_id}",)).fetchone()[0])
    finally:
        conn.close()


def store_errors(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    """Error records naming the store failure (message or attached exception)."""
    found = []
    for record in caplog.records:
        if record.levelno < logging.ERROR:
            continue
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        if words in text:
            found.append(record)
    return found


async def fault_is_survived(
    api: FakeBotApi,
    store: SqliteStore,
    db: Path,
    caplog: pytest.LogCaptureFixture,
    *,
    user: int,
    words: str,
    move: Callable[[], Awaitable[int]],
    fix: Callable[[], Awaitable[None]],
    attempts: int = 1,
) -> None:
    """With the fault in place: ``move`` fails cleanly and is retried; ``fix`` recovers it.

    ``attempts``: failed attempts to see before the fix (2: also a retry while broken; each
    retry comes after the poller's 5 s pause).
    """
    since = len(api.requests)
    update_id = await move()
    deadline = time.monotonic() + 15
    while len(store_errors(caplog, words)) < attempts:
        assert time.monotonic() < deadline, f"no logged store error naming {words!r}"
        await asyncio.sleep(0.05)
    # Not confirmed: Telegram still holds the update and will deliver it again.
    assert update_id in [u["update_id"] for _, u in api._updates]
    assert dedup_rows(db, update_id) == 0
    # Nothing reached the client for it: no error text, no traceback, no half a reply.
    assert replies(api, user, since) == []
    assert integrity(db) == [("ok",)]

    await fix()
    await api.wait_for(lambda: replies(api, user, since) != [], timeout=15)
    await settled(api, store, timeout=15)
    assert dedup_rows(db, update_id) == 1
    assert integrity(db) == [("ok",)]
    for text in replies(api, user, since):
        assert "Traceback" not in text and "Error" not in text
    # And the client goes on as before.
    await walk(api, store, user, 2)


# -- Bot API outage --------------------------------------------------------------------------

@pytest.mark.slow
async def test_a_long_bot_api_outage_loses_nothing(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api, db = fake_api, tmp_path / "outage.db"
    caplog.set_level(logging.WARNING)
    half = 3 * TENTH.poll_backoff[-1]  # each half of the outage: three longest backoffs
    async with running_bot(api, loaded, db, [USER], TENTH,
                           sending={"backoff_seconds": [0.5, 1.0, 2.0]}) as (edge, store):
        await walk(api, store, USER, 4)
        # Replies committed but held back: Telegram fails every sendMessage for a while.
        api.fail("sendMessage", status=502, times=None)
        since = len(api.requests)
        shown = len(api.messages(USER))
        for command in ("/help", "/progress"):
            await api.send_text(USER, command)
        await api.wait_for(lambda: api.pending_updates == 0, timeout=10)
        held = [row.payload["text"] for row in await store.pending_outbox(_far_future(), 50)]
        assert len(held) >= 2, "the replies were not held back in the outbox"

        # The outage: 502 Bad Gateway, then dropped connections.
        api.clear_faults()
        outage_start = time.monotonic()
        api.outage(half)
        await asyncio.sleep(half / 6)
        during = [await api.send_text(USER, "/help")]
        await asyncio.sleep(half - (time.monotonic() - outage_start))
        api.outage(half, drop=True)
        await asyncio.sleep(half / 6)
        during.append(await api.send_text(USER, "/privacy"))
        await asyncio.sleep(2 * half - (time.monotonic() - outage_start))
        assert time.monotonic() - outage_start >= 2 * half
        assert all(not task.done() for task in edge._tasks), "a loop of the bot stopped"
        polls = [r for r in api.requests[since:] if r.method == "getUpdates"]
        assert len(polls) >= 4, "the bot stopped polling during the outage"
        assert len(api.messages(USER)) == shown, "something got through the outage"

        # Afterwards: polling resumes (after at most its longest backoff), everything is
        # delivered, in order, once: first what was held back, then the outage's answers.
        await api.wait_for(lambda: api.pending_updates == 0, timeout=15)
        await settled(api, store, timeout=30)
        for update_id in during:
            assert dedup_rows(db, update_id) == 1
        # (consecutive texts may share a message: compare the texts, a blank line apart)
        sent, held_back = transcript(m.text for m in api.messages(USER)[shown:]), transcript(held)
        assert sent.startswith(held_back + JOINER), (
            "a held-back message was lost, doubled or reordered")
        later = sent[len(held_back):]
        help_text = loaded.renderer.system("help").strip()
        privacy = loaded.renderer.system(
            "privacy", retention_days=loaded.engine.resources.policy.retention_days,
            answers_days=loaded.engine.resources.policy.answers_days).strip()
        assert later.count(help_text) == 1, later
        assert later.count(privacy) == 1, later
        assert later.index(help_text) < later.index(privacy)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # And the bot answers promptly again.
        await walk(api, store, USER, 1)


# -- full disk, full database, read-only database ----------------------------------------------

@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path``; skip the test if mounting is not allowed."""
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; return the filler file."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


async def test_a_full_disk_is_survived_and_recovered(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        db = disk / "bot.db"
        async with running_bot(fake_api, loaded, db, [USER]) as (_, store):
            await walk(fake_api, store, USER, 3)
            filler = fill(disk)

            async def free_space() -> None:
                filler.unlink()

            await fault_is_survived(
                fake_api, store, db, caplog, user=USER, words="disk is full",
                move=lambda: step(fake_api, USER), fix=free_space)


async def test_a_full_database_is_survived_and_recovered(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLITE_FULL without a small file system: the database may not grow any more."""
    api, db = fake_api, tmp_path / "bot.db"
    caplog.set_level(logging.WARNING)
    newcomers = list(range(USER + 1, USER + 40))
    async with running_bot(api, loaded, db, [USER, *newcomers]) as (_, store):
        await walk(api, store, USER, 3)
        pages = await store._run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store._run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        # New clients add rows until one of them needs a new page; that one fails.
        for newcomer in newcomers:
            since = len(api.requests)
            update_id = await api.send_text(newcomer, "/start")
            deadline = time.monotonic() + 10
            while not replies(api, newcomer, since) and not store_errors(caplog, "full"):
                assert time.monotonic() < deadline, "neither a reply nor an error"
                await asyncio.sleep(0.02)
            if store_errors(caplog, "full"):
                break
        else:
            pytest.fail("the database never filled up")

        async def grow() -> None:
            await store._run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))

        async def same_update() -> int:
            return update_id

        await fault_is_survived(api, store, db, caplog, user=newcomer, words="full",
                                move=same_update, fix=grow)


async def test_a_read_only_database_is_survived_and_recovered(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api, db = fake_api, tmp_path / "bot.db"
    caplog.set_level(logging.WARNING)
    async with running_bot(api, loaded, db, [USER]) as (_, store):
        await walk(api, store, USER, 3)
        await store._run(lambda c: c.execute("PRAGMA query_only = 1"))

        async def writable() -> None:
            await store._run(lambda c: c.execute("PRAGMA query_only = 0"))

        await fault_is_survived(api, store, db, caplog, user=USER, words="readonly",
                                move=lambda: step(api, USER), fix=writable, attempts=2)


async def test_messages_held_while_the_database_is_read_only_are_sent_once_it_is_fixed(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply committed before the fault, sent while the store cannot record it as sent.

    Telegram accepts the message but ``mark_sent`` fails: the sender must keep running (the
    row stays queued, so at worst the message goes out twice), and every later message must
    still go out once the database is writable again.
    """
    api, db = fake_api, tmp_path / "bot.db"
    async with running_bot(api, loaded, db, [USER]) as (edge, store):
        await walk(api, store, USER, 3)
        api.fail("sendMessage", status=502, times=None)
        await api.send_text(USER, "/help")
        await api.wait_for(lambda: api.pending_updates == 0, timeout=10)
        await store._run(lambda c: c.execute("PRAGMA query_only = 1"))
        api.clear_faults()
        # Telegram takes the held reply; the store cannot record that it was sent.
        await api.wait_for(lambda: "could not record outbox message" in caplog.text,
                           timeout=10)
        await store._run(lambda c: c.execute("PRAGMA query_only = 0"))
        since = len(api.requests)
        await api.send_text(USER, "/privacy")
        await api.wait_for(lambda: any("privacy" in t.lower() for t in replies(api, USER, since)),
                           timeout=10)
        await settled(api, store)
        assert all(not task.done() for task in edge._tasks), "a loop of the bot stopped"


# -- an erasure while another connection reads ---------------------------------------------

FIRST_NAME = "Quorraveth"
TYPED = "xq7781-what-I-typed-about-my-sister"


async def test_an_erasure_while_a_backup_reads_is_done_at_once_and_cleaned_up_after(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    """`/delete` while another connection holds a read transaction (a backup, an export).

    The erasure is done when its deletion commits: the client is told, their chat messages
    are deleted, the confirming update stays handled (delivered again it changes nothing),
    and they are no longer let in. The old copies the reader keeps in the WAL go as soon as
    it lets go (the store's clean-up retries every 50 ms here, instead of 5 s).
    """
    db = tmp_path / "rehearse.db"
    config = edge_config(fake_api, db)  # invite-only: after erasure only an invite lets in
    assert config.access.mode == "invite"

    def say(key: str, **values: object) -> str:
        return str(loaded.renderer.system(key, **values)).strip()

    async with SqliteStore(db, cleanup_retry=0.05) as store:
        code = new_code()
        await store.add_invite(Invite(code_hash=code_hash(code), script_id="first-steps",
                                      max_level=2, expires_at=_far_future(),
                                      created_at=datetime.now(UTC)))
        async with running_edge(config, loaded, store) as _:
            ada = TelegramClient(fake_api, USER, FIRST_NAME)
            await ada.send(f"/start {code}")
            await ada.expect(say("access.welcome", name=FIRST_NAME))
            await give_consent(ada, free_text=True)
            await choose_script(ada, "First steps in sharing")
            for _step in range(3):
                await ada.until(lambda m: "Go on" in labels(m))
                await ada.press("Go on")
            for rating in ("2", "3"):  # distress now, expected difficulty
                await ada.until(lambda m: "10" in labels(m))
                await ada.send(rating)
            await ada.until(lambda m: "I shared it" in labels(m))
            await ada.send(TYPED)
            await settle(fake_api, store)
            assert [a.text for a in await store.answers(f"tg:{USER}")] == [TYPED]

            reader = sqlite3.connect(db, isolation_level=None)
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM answers").fetchone() == (1,)
            try:
                await ada.send("/delete")
                [*_, confirm] = await ada.until(lambda m: "Yes, delete everything" in labels(m))
                sent_before = len(ada.messages)
                update_id = await ada.press_data(
                    confirm, button_data(confirm, "Yes, delete everything"))
                done = await ada.until(lambda m: m.text.startswith("Done."), timeout=4)
                assert done[-1].text.strip() == say("delete.done", deleted_messages=sent_before)
                assert all(m.deleted for m in ada.messages[:sent_before])
                await settle(fake_api, store)
                assert await store.load_state(f"tg:{USER}") is None
                assert await store.ledger(f"tg:{USER}") == []
                assert dedup_rows(db, update_id) == 1  # delivered again, it changes nothing
                await ada.send("hello?")  # no longer let in: an invite is needed again
                await ada.expect(say("access.invite_needed"))
                await settle(fake_api, store)
                assert await store.client_ids() == []
                assert not await store.cleaned(timeout=0.3)  # the reader holds old copies
            finally:
                reader.execute("ROLLBACK")
                reader.close()
            assert await store.cleaned(timeout=5)
            for path in (db, Path(f"{db}-wal")):
                assert TYPED.encode() not in file_bytes(path), path
                assert FIRST_NAME.encode() not in file_bytes(path), path
