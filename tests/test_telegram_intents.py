"""Stop requests in words and the partner scene's safety question, on Telegram.

The real bot against the fake Bot API server, the shipped scripts, texts and intents.
"""

from __future__ import annotations

from pathlib import Path

from bot.app import Loaded
from bot.store import SqliteStore
from bot.telegram import Waits
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    choose_script,
    give_consent,
    labels,
    running_edge,
    settle,
)
from tests.test_telegram_e2e import ALLOWED, to_roleplay

TITLE, VERSION = "Asking for reassurance", "No, start the scene"


async def test_a_stop_request_mid_scene_asks_and_keep_going_shows_the_same_line(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say,
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db", access=ALLOWED)
    async with running_edge(config, loaded, store, clock=Clock(), waits=Waits(timers=0.05)):
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        await give_consent(ada)
        await choose_script(ada, TITLE)
        line = await to_roleplay(ada, TITLE, VERSION)

        await ada.send("please stop")
        asked = await ada.expect(say("stop.request"))
        assert labels(asked) == ["Stop everything", "Keep going"]
        await settle(fake_api, store)
        assert not ada.unread  # not the character's next line
        await ada.press("Keep going")
        [again] = await ada.next()
        assert again.text == line.text and "I said it" in labels(again)

        await ada.send("I want to stop")
        await ada.expect(say("stop.request"))
        await ada.press("Stop everything")
        await ada.expect(say("stop.confirm"))
        ledger = await store.ledger("tg:1001")
        assert [r.data for r in ledger if r.kind == "stopped"] == [{"via": "request"}]
        assert [r.data["choice"] for r in ledger if r.kind == "stop_request"] == [
            "asked", "keep-going", "asked"]


async def test_not_safe_with_a_partner_ends_the_exercise_with_the_partner_lines(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say,
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db", access=ALLOWED)
    async with running_edge(config, loaded, store, clock=Clock(), waits=Waits(timers=0.05)):
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        await give_consent(ada)
        await choose_script(ada, TITLE)
        for _ in range(3):
            await ada.until(lambda m: "Go on" in labels(m))
            await ada.press("Go on")
        for rating in ("3", "4"):
            await ada.until(lambda m: "10" in labels(m))
            await ada.press(rating)
        await ada.until(lambda m: VERSION in labels(m))
        await ada.press(VERSION)
        screen = await ada.expect(say("roleplay.partner_screen"))
        assert labels(screen) == ["I'm safe with my partner", "I'm not, or I'm not sure"]
        await ada.press("I'm not, or I'm not sure")
        lines = loaded.engine.resources.policy.lines()
        [reply] = await ada.next()
        assert all(line.name in reply.text for line in lines.lines["partner_abuse"])
        await settle(fake_api, store)
        assert not ada.unread
        ledger = await store.ledger("tg:1001")
        assert [r.data["answer"] for r in ledger if r.kind == "abuse_screen"] == [
            "not-safe-or-unsure"]
        assert [r.data["reason"] for r in ledger if r.kind == "session_ended"] == [
            "abuse-screen"]
