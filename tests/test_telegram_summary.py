"""End to end: a client's session summary over the real python-telegram-bot and the fake
Bot API, on SQLite and PostgreSQL — shown at the session's end, shared item by item,
withdrawn from ``/summary`` later, and only what is shared in the therapist's report.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.app import Loaded
from bot.report import progress_report
from bot.service import OPERATOR, Rehearsal
from bot.store import Store
from bot.telegram import TelegramEdge
from tests.support.fake_bot_api import FakeBotApi, SentMessage
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    choose_script,
    give_consent,
    labels,
    settle,
)

pytestmark = pytest.mark.backends

#: What a plain client presses, first match wins, until the summary shows.
_PLAIN = ("Go on", "2", "I shared it", "Yes, one more", "One last one", "A little", "Done")


async def finish_first_steps(client: TelegramClient) -> SentMessage:
    """Through first-steps with plain answers; returns the summary that follows its end."""
    for _ in range(60):
        [*_, newest] = await client.until(lambda m: bool(labels(m)))
        if "Your summary" in newest.text:
            return newest
        await client.press(next(label for label in _PLAIN if label in labels(newest)))
    raise AssertionError("the session did not end")


async def test_share_at_the_end_withdraw_later_and_the_report_follows(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, loaded: Loaded, say: Say,
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada, share=True)
    await choose_script(ada, "First steps")
    summary = await finish_first_steps(ada)
    assert "Private" in summary.text and "Shared" not in summary.text
    assert "Share all of it" in labels(summary)

    await ada.press("Share my ratings")
    [*_, shown] = await ada.until(lambda m: "Stop sharing my ratings" in labels(m))
    assert "Stop sharing my ratings" in labels(shown) and "Shared" in shown.text
    await ada.press("Share the exercise")
    await ada.until(lambda m: "Stop sharing the exercise" in labels(m))
    await ada.press("Done")
    await ada.expect(say("summary.closed"))

    await ada.send("/summary")
    listed = await ada.expect(say("summary.list", page=1, pages=1, sharing=True))
    assert len(labels(listed)) == 2  # the one session, and "Done"
    await ada.press(labels(listed)[0])
    await ada.until(lambda m: "Stop sharing my ratings" in labels(m))
    await ada.press("Stop sharing my ratings")
    await settle(fake_api, store)

    client = "tg:1001"
    rows = [(r.kind, r.data["items"]) for r in await store.ledger(client)
            if r.kind.startswith("summary_")]
    assert rows == [("summary_shared", ["ratings"]), ("summary_shared", ["exercise"]),
                    ("summary_withdrawn", ["ratings"])]
    now = datetime.now(UTC)
    record = await Rehearsal(loaded.engine, store, lambda: now).read_record(client, OPERATOR)
    report = progress_report(record.state, record.ledger, now=now, default_zone="UTC",
                             scripts=loaded.scripts, therapist=record.therapist)
    assert report.shared_sessions == 1
    [distress] = [c for c in report.charts if c.key == "distress"]
    assert list(distress.table.rows) == []  # the ratings were withdrawn; the exercise stays
    assert len(report.sessions.rows) == 1


async def test_a_typed_answer_edited_and_shared_reaches_the_report_in_its_edited_version(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, loaded: Loaded,
) -> None:
    ada = TelegramClient(fake_api, 1002, "Ada")
    await ada.send("/start")
    await give_consent(ada, free_text=True, share=True)
    await choose_script(ada, "First steps")
    for _ in range(60):
        [*_, newest] = await ada.until(lambda m: bool(labels(m)))
        if "Your summary" in newest.text:
            break
        if "I shared it" in labels(newest):  # a prompt: the client writes it down instead
            await ada.send("zq7 the words I typed first")
        else:
            await ada.press(next(label for label in _PLAIN if label in labels(newest)))
    assert "What you wrote" in newest.text and "zq7 the words I typed first" in newest.text
    await ada.press("Edit answer 1")
    await ada.until(lambda m: "Type the new version of answer 1" in m.text)
    await ada.send("zq8 what I really meant")
    [*_, shown] = await ada.until(lambda m: "zq8 what I really meant" in m.text)
    assert "your edited version" in shown.text
    await ada.press("Share answer 1")
    await ada.until(lambda m: "Stop sharing answer 1" in labels(m))
    await settle(fake_api, store)

    client = "tg:1002"
    ledger = await store.ledger(client)
    assert [r.data["items"] for r in ledger if r.kind == "summary_shared"] == [["answer:0"]]
    assert [r.data["item"] for r in ledger if r.kind == "answer_edited"] == ["answer:0"]
    assert "zq8" not in str([r.data for r in ledger])  # the ledger holds the fact, not words
    assert "zq7 the words I typed first" in [a.text for a in await store.answers(client)]
    now = datetime.now(UTC)
    record = await Rehearsal(loaded.engine, store, lambda: now).read_record(client, OPERATOR)
    report = progress_report(record.state, record.ledger, now=now, default_zone="UTC",
                             scripts=loaded.scripts, therapist=record.therapist)
    [row] = report.sessions.rows
    assert row[-1] == "“zq8 what I really meant” (edited by the client)"
