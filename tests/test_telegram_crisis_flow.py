"""After a risk signal, on Telegram: typed safety answers, "not safe", /sos, the hold's timing.

The real bot against the fake Bot API server, with an injected clock: issue 11's
reproductions of what happened after a signal, from a client's chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.store import SqliteStore
from bot.telegram import TelegramEdge
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    TelegramClient,
    labels,
    plain,
    running_edge,
    settle,
    transcript,
)
from tests.test_telegram_e2e import to_first_say, to_roleplay

CLIENT = 1001
WORDS = "i want to kill myself"
QUESTION = "Are you safe right now?"
ANSWERS = ["Yes, I'm safe", "No, I'm not safe", "Not sure"]


@pytest.fixture
async def bot(fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path,
              clock: Clock) -> AsyncIterator[TelegramEdge]:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [CLIENT]})
    async with running_edge(config, loaded, store, clock=clock) as edge:
        yield edge


async def _kinds(store: SqliteStore) -> list[str]:
    return [r.kind for r in await store.ledger(f"tg:{CLIENT}")]


@pytest.mark.parametrize("answer", ["no", "not really", "im not safe"])
async def test_a_typed_no_ends_practice_and_only_support_follows(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, answer: str
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada)
    await ada.send(WORDS)
    [*_, question] = await ada.until(lambda m: QUESTION in m.text)
    assert labels(question) == ANSWERS
    await ada.send(answer)
    read = await ada.until(lambda m: "Practice waits until" in m.text)
    texts = [plain(m.text) for m in read]
    assert not any("Please choose one of the buttons" in t for t in texts)
    assert "Please call 911 now." in texts[0]
    assert any("988" in t for t in texts)  # the lines for the kind of risk, again
    assert "The exercise has ended." in texts[-1]
    # what the client types next gets support, never the script's next step
    await ada.send("ok")
    read = await ada.until(lambda m: QUESTION in m.text)
    # what came before the question
    support = plain(transcript(m.text for m in read)).split(QUESTION)[0]
    assert "/sos" in support and "988" in support
    assert labels(read[-1]) == ANSWERS
    for command in ("/resume", "/start"):
        await ada.send(command)
        waits = await ada.next_one()
        assert plain(waits.text).startswith("Practice waits until"), command
        assert not labels(waits)
    await settle(fake_api, store)
    assert not ada.unread
    kinds = await _kinds(store)
    assert kinds.count("session_started") == 1
    rows = [r.data for r in await store.ledger(f"tg:{CLIENT}") if r.kind == "crisis_not_safe"]
    assert rows == [{"answer": "not_safe", "typed": True}]
    ledger = str([r.data for r in await store.ledger(f"tg:{CLIENT}")])
    assert "really" not in ledger and "kill" not in ledger


async def test_sos_mid_roleplay_pauses_and_not_safe_never_plays_on(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada, "Setting a limit kindly")
    await to_roleplay(ada, "Setting a limit kindly", "Full scene")
    await ada.send("/sos")
    [first, *_] = await ada.until(lambda m: QUESTION in m.text)
    assert "The exercise is paused." in plain(first.text)
    assert "Stepping out of the practice scene" in plain(first.text)
    await ada.press("No, I'm not safe")
    await ada.until(lambda m: "Practice waits until" in m.text)
    await ada.send("I'd like to keep my evenings free")
    [*_, last] = await ada.until(lambda m: QUESTION in m.text)
    await settle(fake_api, store)
    kinds = await _kinds(store)
    assert "roleplay_turn" not in kinds and kinds.count("crisis_hold") == 2
    assert not ada.unread and labels(last) == ANSWERS


async def test_sos_then_safe_keeps_the_scene_paused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada, "Setting a limit kindly")
    await to_roleplay(ada, "Setting a limit kindly", "Full scene")
    await ada.send("/sos")
    await ada.until(lambda m: QUESTION in m.text)
    await ada.press("Yes, I'm safe")
    [safe, *_] = await ada.until(lambda m: "level 1" in m.text)
    assert "The exercise stays paused" in plain(safe.text)
    await ada.send("I'd like to keep my evenings free")
    paused = await ada.next_one()
    # still paused, and out of the role (the scene's character says nothing)
    assert "paused" in plain(paused.text) and "stepping out of the role" in plain(paused.text)
    assert labels(paused) == ["Resume"]
    await settle(fake_api, store)
    assert "roleplay_turn" not in await _kinds(store)


async def test_the_hold_waits_for_its_hours_on_the_clock(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada)
    await ada.send(WORDS)
    await ada.until(lambda m: QUESTION in m.text)
    await ada.press("Not sure")
    [unsure, *_] = await ada.until(lambda m: "Practice waits until" in m.text)
    assert plain(unsure.text).startswith("I wasn't sure I understood")
    clock.advance(hours=23, minutes=59)
    await ada.send("/start")
    assert plain((await ada.next_one()).text).startswith("Practice waits until")
    clock.advance(minutes=2)
    await ada.send("/start")
    [menu] = await ada.next(1)
    assert "First steps in sharing" in labels(menu)
    await ada.press("First steps in sharing")
    await ada.until(lambda m: "level 1" in m.text)  # back one level lower, under the hold
    await settle(fake_api, store)
    kinds = await _kinds(store)
    assert kinds.count("crisis_not_safe") == 1 and "crisis_hold_cleared" not in kinds
