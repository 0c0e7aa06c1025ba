"""The weekly outcome check-in, end to end: a therapist switches it on with ``/outcomes CLIENT
on`` in Telegram or ``rehearse outcomes`` at the command line (their own clients only; anyone
else's is refused and ledgered), and the client is asked at their next session start. Real bot
(python-telegram-bot over HTTP against the fake Bot API), real SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.service import Rehearsal
from bot.store import SqliteStore, Store
from tests.conftest import Clock
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import TelegramClient, labels, settle
from tests.test_therapist_contract import contract_of, lee_and_ada
from tests.test_therapist_telegram import (
    LEE,
    RIVERA,
    bot,  # noqa: F401  (the running bot these tests use: the same fixture)
)
from tests.test_therapists import client_of, config_with_admins


@pytest.mark.usefixtures("bot")
async def test_a_therapist_switches_it_on_and_the_client_is_asked_at_their_next_start(
    fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lee_and_ada(fake_api, store)
    rivera = TelegramClient(fake_api, RIVERA, "Dr Rivera")
    seen = len(ada.messages)

    await rivera.send("/outcomes 2001 on")
    [refused] = await rivera.next()
    assert refused.text == "tg:2001 is not one of your clients. /clients lists yours."
    for wrong in ("/outcomes 2001", "/outcomes 2001 maybe", "/outcomes ada on"):
        await lee.send(wrong)
        [usage] = await lee.next()
        assert usage.text.startswith("Usage: /outcomes CLIENT on|off"), wrong
    await settle(fake_api, store)
    assert not (await contract_of(store)).outcomes

    await lee.send("/outcomes 2001 on")
    [done] = await lee.next()
    assert done.text.startswith("The weekly check-in is on for tg:2001.")
    await settle(fake_api, store)
    assert ada.messages[seen:] == []  # switching tells the client nothing by itself
    assert (await contract_of(store)).outcomes

    await ada.send("/start")
    [asked] = (await ada.until(lambda m: "weekly check-in" in m.text))[-1:]
    assert "how close did you feel to someone" in asked.text
    assert labels(asked)[-2:] == ["Skip this question", "Not this week"]
    await ada.press("8", asked)
    await ada.until(lambda m: "say what you need" in m.text)
    await ada.send("4")
    [last] = (await ada.until(lambda m: "reach out" in m.text))[-1:]
    await ada.press("Not this week", last)
    await ada.until(lambda m: "no check-in this week" in m.text)
    await settle(fake_api, store)

    rows = [(r.kind, r.data) for r in await store.ledger("tg:2001")]
    exported = await store.export("tg:2001")  # what /mydata sends the client
    ledger = exported["ledger"]
    assert isinstance(ledger, list)
    assert {"kind": "outcomes_switched", "data": {"on": True, "by": "tg:9000"}} in [
        {"kind": row["kind"], "data": row["data"]} for row in ledger]
    assert ("access_refused", {"reader": "tg:9001", "what": "outcomes"}) in rows
    assert ("outcomes_switched", {"on": True, "by": "tg:9000"}) in rows
    assert [d for k, d in rows if k == "outcome_rated"] == [
        {"item": "closeness", "value": 8}, {"item": "saying_needs", "value": 4}]
    assert ("outcomes_declined", {"item": "reaching_out"}) in rows


def test_the_command_line_switches_it_and_refuses_another_therapist(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "rehearse.db", config_with_admins(tmp_path, [LEE, RIVERA])
    common = ["--db", str(db), "--config", str(config)]

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            await client_of(Rehearsal(loaded.engine, store, Clock()), "tg:5", "tg:9000")

    asyncio.run(prepare())
    assert rehearse(["outcomes", "tg:5", "--on", "--by", "9000", *common]) == 0
    assert capsys.readouterr().out.strip() == "weekly check-in on for tg:5"
    assert rehearse(["outcomes", "tg:5", "--off", "--by", "9001", *common]) == 1
    assert "tg:5 is not a client of 9001" in capsys.readouterr().err
    assert rehearse(["outcomes", "tg:6", "--on", *common]) == 1  # nobody
    with pytest.raises(SystemExit):
        rehearse(["outcomes", "tg:5", *common])  # --on or --off is required
    with pytest.raises(SystemExit):
        rehearse(["outcomes", "tg:5", "--on", "--off", *common])
    assert rehearse(["outcomes", "tg:5", "--off", *common]) == 0

    async def read() -> tuple[bool, list[tuple[str, dict[str, object]]]]:
        async with SqliteStore(db) as store:
            state = await contract_of(store, "tg:5")
            return state.outcomes, [(r.kind, r.data) for r in await store.ledger("tg:5")]

    on, rows = asyncio.run(read())
    assert not on
    assert ("access_refused", {"reader": "tg:9001", "what": "outcomes"}) in rows
    assert [d for k, d in rows if k == "outcomes_switched"] == [
        {"on": True, "by": "tg:9000"}, {"on": False, "by": "operator"}]
