"""Reminders through the real bot: chosen in consent or /settings, fired by the timers loop.

Time is a hand-moved :class:`~tests.conftest.Clock` passed to ``TelegramEdge(clock=...)``;
the timers loop runs every 50 ms here instead of every second. Timers live in SQLite, so
they survive restarts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.store import DueTimer, SqliteStore
from bot.telegram import TelegramEdge, Waits
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    give_consent,
    labels,
    running_edge,
    settle,
    wait_until,
)

CLIENT = "tg:1001"
FAR = datetime(2100, 1, 1, tzinfo=UTC)
NOT_NEUTRAL = ("rehearse", "therap", "distress", "disclos", "anxi", "crisis", "exercise",
               "streak", "missed", "practise now", "don't forget", "!")


#: Timers are looked at every 50 ms (the clock itself moves by hand).
WAITS = Waits(timers=0.05)


@pytest.fixture
def start_bot(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, clock: Clock
) -> Callable[[SqliteStore], AbstractAsyncContextManager[TelegramEdge]]:
    """``async with start_bot(store) as edge``: the bot on the test clock."""
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [1001]})

    def start(store: SqliteStore) -> AbstractAsyncContextManager[TelegramEdge]:
        return running_edge(config, loaded, store, clock=clock, waits=WAITS)

    return start


@pytest.fixture
async def bot(
    start_bot: Callable[[SqliteStore], AbstractAsyncContextManager[TelegramEdge]],
    store: SqliteStore,
) -> AsyncIterator[TelegramEdge]:
    async with start_bot(store) as edge:
        yield edge


async def reminder_timer(store: SqliteStore) -> DueTimer | None:
    timers = [t for t in await store.due_timers(FAR) if t.kind == "reminder"]
    return timers[0] if timers else None


async def due_after(store: SqliteStore, when: datetime) -> None:
    """Wait until the timers loop has handled the reminder due before ``when``."""

    async def moved() -> bool:
        timer = await reminder_timer(store)
        return timer is None or timer.due > when

    await wait_until(moved, what="the reminder timer was handled")


async def kinds(store: SqliteStore) -> list[str]:
    return [row.kind for row in await store.ledger(CLIENT)]


async def at_menu_with_reminders(ada: TelegramClient, zone: str, at: str) -> None:
    await ada.send("/start")
    await give_consent(ada, reminders=(zone, at))
    await ada.until(lambda m: "First steps in sharing" in labels(m))


# -- when reminders come ---------------------------------------------------------------------
async def test_a_reminder_fires_at_the_chosen_local_time_in_neutral_words(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await at_menu_with_reminders(ada, "America/New_York", "19:30")  # chosen during consent
    await settle(fake_api, store)
    timer = await reminder_timer(store)
    # Wednesday 19:30 in New York (EST, UTC-5) is Thursday 00:30 UTC.
    assert timer is not None and timer.due == datetime(2026, 11, 26, 0, 30, tzinfo=UTC)

    clock.now = timer.due - timedelta(minutes=1)
    assert await bot.service.fire_due_timers() == 0
    await settle(fake_api, store)
    assert not ada.unread

    clock.now = timer.due + timedelta(seconds=20)
    reminder = await ada.expect(say("reminder"))
    assert labels(reminder) == []
    assert not any(word in reminder.text.lower() for word in NOT_NEUTRAL)
    assert len(reminder.text) <= 80  # fits a lock screen, says nothing private
    await settle(fake_api, store)
    assert not ada.unread
    assert (await kinds(store)).count("reminder_sent") == 1
    following = await reminder_timer(store)
    assert following is not None and following.due == timer.due + timedelta(days=1)


async def test_time_zone_and_time_chosen_in_settings(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada)  # no reminders at first
    await ada.until(lambda m: "First steps in sharing" in labels(m))
    assert await reminder_timer(store) is None

    await ada.send("/settings")
    await ada.until(lambda m: "Reminders on or off" in labels(m))
    await ada.press("Reminders on or off")
    await ada.until(lambda m: "Time zone" in labels(m) and "19:00" in m.text)
    await ada.press("Time zone")
    await ada.expect(say("settings.ask_timezone"))
    await ada.send("Mars/Olympus_Mons")
    await ada.expect(say("settings.bad_timezone"))
    await ada.send("Asia/Tokyo")
    await ada.expect(say("settings.saved"))
    await ada.send("/settings")
    await ada.until(lambda m: "Reminder time" in labels(m) and "Asia/Tokyo" in m.text)
    await ada.press("Reminder time")
    await ada.expect(say("settings.ask_reminder_time"))
    await ada.send("8.15")
    await ada.expect(say("settings.bad_time"))
    await ada.send("08:15")
    await ada.expect(say("settings.saved"))
    await settle(fake_api, store)

    # 08:15 on Thursday in Tokyo (UTC+9) is Wednesday 23:15 UTC.
    timer = await reminder_timer(store)
    assert timer is not None and timer.due == datetime(2026, 11, 25, 23, 15, tzinfo=UTC)
    await ada.next(len(ada.unread))  # the menu after "Saved."
    clock.now = timer.due + timedelta(seconds=5)
    await ada.expect(say("reminder"))


async def test_reminders_stop_after_two_go_unanswered(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await at_menu_with_reminders(ada, "UTC", "19:00")
    await settle(fake_api, store)
    for day in (25, 26):
        clock.now = datetime(2026, 11, day, 19, 0, 30, tzinfo=UTC)
        await ada.expect(say("reminder"))
    await due_after(store, clock.now)
    assert await reminder_timer(store) is None
    assert "reminders_suspended" in await kinds(store)

    clock.now = datetime(2026, 11, 27, 19, 0, 30, tzinfo=UTC)
    assert await bot.service.fire_due_timers() == 0
    await settle(fake_api, store)
    assert not ada.unread
    assert (await kinds(store)).count("reminder_sent") == 2

    await ada.send("/progress")  # the client writes again: reminders resume
    await settle(fake_api, store)
    timer = await reminder_timer(store)
    assert timer is not None and timer.due == datetime(2026, 11, 28, 19, 0, tzinfo=UTC)


async def test_no_reminder_after_stop_until_the_client_undoes_it(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await at_menu_with_reminders(ada, "UTC", "19:00")
    await ada.send("/stop")
    await ada.expect(say("stop.confirm"))
    await settle(fake_api, store)
    assert await reminder_timer(store) is None
    clock.now = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert await bot.service.fire_due_timers() == 0
    await settle(fake_api, store)
    assert not ada.unread
    assert "reminder_sent" not in await kinds(store)

    await ada.press("Only this exercise")  # keeps reminders: the next one comes as usual
    await ada.expect(say("stop.only_this"))
    clock.now = datetime(2026, 11, 28, 19, 0, 5, tzinfo=UTC)
    await ada.expect(say("reminder"))


async def test_no_reminder_while_paused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await at_menu_with_reminders(ada, "UTC", "19:00")
    await ada.press("First steps in sharing")
    await ada.until(lambda m: "Go on" in labels(m))
    await ada.send("/pause")
    await ada.until(lambda m: labels(m) == ["Resume"])
    await settle(fake_api, store)

    clock.now = datetime(2026, 11, 25, 19, 0, 5, tzinfo=UTC)
    await due_after(store, clock.now)
    await settle(fake_api, store)
    assert not ada.unread
    assert "reminder_sent" not in await kinds(store)
    timer = await reminder_timer(store)
    assert timer is not None and timer.due == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)


# -- restarts and downtime -------------------------------------------------------------------
async def test_reminders_survive_a_restart(
    start_bot: Callable[[SqliteStore], AbstractAsyncContextManager[TelegramEdge]],
    fake_api: FakeBotApi,
    tmp_path: Path,
    clock: Clock,
    say: Say,
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    db = tmp_path / "rehearse.db"
    async with SqliteStore(db) as store, start_bot(store):
        await at_menu_with_reminders(ada, "Europe/London", "18:00")
        await settle(fake_api, store)
    async with SqliteStore(db) as store, start_bot(store):
        clock.now = datetime(2026, 11, 25, 18, 0, 1, tzinfo=UTC)  # London is on GMT
        await ada.expect(say("reminder"))
        await settle(fake_api, store)
        assert not ada.unread


async def test_no_late_burst_of_reminders_after_downtime(
    start_bot: Callable[[SqliteStore], AbstractAsyncContextManager[TelegramEdge]],
    fake_api: FakeBotApi,
    tmp_path: Path,
    clock: Clock,
    say: Say,
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    db = tmp_path / "rehearse.db"
    async with SqliteStore(db) as store, start_bot(store):
        await at_menu_with_reminders(ada, "UTC", "19:00")
        await settle(fake_api, store)

    # The bot is down for three days: three reminder times pass.
    clock.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    async with SqliteStore(db) as store, start_bot(store):
        await due_after(store, clock.now)
        await settle(fake_api, store)
        assert not ada.unread  # nothing late, and no burst
        assert (await kinds(store)).count("reminder_skipped") == 1
        timer = await reminder_timer(store)
        assert timer is not None and timer.due == datetime(2026, 11, 28, 19, 0, tzinfo=UTC)
        clock.now = timer.due + timedelta(seconds=1)
        await ada.expect(say("reminder"))  # the next one comes on time
        await settle(fake_api, store)
        assert not ada.unread
