"""Therapists in Telegram, end to end: /invite, /clients and /report against the fake Bot API.

The real bot (python-telegram-bot over HTTP) runs on a real database (the invite, report and
caseload flows on SQLite and on PostgreSQL). A therapist invites a
client in the chat, the client redeems the code and consents in the chat, and practises
through the same running bot's service (the real engine); the share rows are committed as
the in-chat summary flow will commit them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.report import SHARE_ITEMS
from bot.store import Store
from bot.telegram import TelegramEdge
from tests.conftest import Clock, edge_config
from tests.support.engine_driver import ServiceClient
from tests.support.fake_bot_api import FakeBotApi
from tests.support.practice import practise, share
from tests.support.telegram_client import TelegramClient, give_consent, running_edge, settle

LEE, RIVERA, ADA = 9000, 9001, 2001


@pytest.fixture
async def bot(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str, clock: Clock
) -> AsyncIterator[TelegramEdge]:
    """Invite-only, two therapists, on the test clock."""
    config = edge_config(fake_api, database,
                         telegram={"poll_timeout": 1, "admins": [LEE, RIVERA]})
    async with running_edge(config, loaded, store, clock=clock) as edge:
        yield edge


async def invited_client(lee: TelegramClient, fake_api: FakeBotApi) -> TelegramClient:
    """Dr Lee invites Ada in the chat; Ada redeems the code and consents, sharing."""
    await lee.send("/invite first-steps 2")
    [reply] = await lee.next()
    link = re.search(r"start=(\S+)", reply.text)
    assert link is not None and "becomes yours" in reply.text
    ada = TelegramClient(fake_api, ADA, "Ada")
    await ada.send(f"/start {link.group(1)}")
    await give_consent(ada, share=True)
    return ada


@pytest.mark.backends
async def test_a_therapist_gets_their_clients_report_and_another_therapist_is_refused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store, clock: Clock
) -> None:
    lee = TelegramClient(fake_api, LEE, "Dr Lee")
    rivera = TelegramClient(fake_api, RIVERA, "Dr Rivera")
    ada = await invited_client(lee, fake_api)
    await settle(fake_api, store)
    entry = await store.therapist_of("tg:2001")
    assert entry is not None and entry.therapist == "tg:9000"

    practising = ServiceClient(bot.service, "tg:2001")
    days = []
    for before, after in ((5, 2), (4, 1), (6, 2)):
        session = await practise(practising, before=before, after=after)
        await share(store, "tg:2001", session, SHARE_ITEMS, clock.advance(minutes=30))
        days.append(session.date().isoformat())
        clock.advance(days=1)
    await settle(fake_api, store)

    await lee.send("/report 2001")
    intro, document = await lee.next(2)
    assert "progress report of tg:2001" in intro.text
    assert document.document is not None
    assert document.document["file_name"] == f"rehearse-report-2001-{clock.now:%Y-%m-%d}.html"
    page = document.document["content"].decode()
    assert page.startswith("<!DOCTYPE html>") and page.count('data-chart="') == 4
    assert all(day in page for day in days) and "<script" not in page
    ledger = await store.ledger("tg:2001")
    assert (ledger[-1].kind, ledger[-1].data) == (
        "data_read", {"reader": "tg:9000", "what": "report"})

    # Another therapist: refused, and the client's ledger says so; nobody at all: the same
    # answer, and nothing written anywhere.
    await rivera.send("/report tg:2001")
    [refused] = await rivera.next()
    assert refused.text == "tg:2001 is not one of your clients. /clients lists yours."
    await rivera.send("/report 5555")
    [nobody] = await rivera.next()
    assert nobody.text == "tg:5555 is not one of your clients. /clients lists yours."
    await rivera.send("/clearhold 2001")
    await rivera.next()
    await settle(fake_api, store)
    assert all(m.document is None for m in rivera.messages)
    rows = [(r.kind, r.data) for r in (await store.ledger("tg:2001"))[len(ledger):]]
    assert rows == [("access_refused", {"reader": "tg:9001", "what": "report"}),
                    ("access_refused", {"reader": "tg:9001", "what": "clear-hold"})]
    assert await store.ledger("tg:5555") == []

    # The client sees every read in /mydata; a client typing /report gets the engine's
    # answer to an unknown command, never a report.
    await ada.send("/report 2001")
    await settle(fake_api, store)
    assert all(m.document is None for m in ada.messages)
    assert [r.kind for r in await store.ledger("tg:2001")][-1] != "data_read"

    # Erasing the client deletes the report from the therapist's chat too.
    await ada.send("/delete")
    await ada.until(lambda m: "Yes, delete everything" in str(m.reply_markup))
    await ada.press("Yes, delete everything")
    await fake_api.wait_for(lambda: fake_api.messages(LEE)[-1].deleted, 5)
    assert document.message_id == fake_api.messages(LEE)[-1].message_id


@pytest.mark.backends
async def test_clients_lists_only_the_therapists_own_clients_with_their_flags(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store, clock: Clock
) -> None:
    lee = TelegramClient(fake_api, LEE, "Dr Lee")
    rivera = TelegramClient(fake_api, RIVERA, "Dr Rivera")
    ada = await invited_client(lee, fake_api)
    await ada.send("I want to kill myself")
    await ada.until(lambda m: "safe" in str(m.reply_markup).lower())
    await settle(fake_api, store)

    await lee.send("/clients")
    [overview] = await lee.next()
    assert "Your clients (1)" in overview.text
    assert "tg:2001</b> · crisis hold · level 1/2 ⚑ new: crisis hold" in overview.text
    await rivera.send("/clients")
    [empty] = await rivera.next()
    assert empty.text.startswith("No clients yet.")
    await settle(fake_api, store)
    reads = [r.data for r in await store.ledger("tg:2001") if r.kind == "data_read"]
    assert reads == [{"reader": "tg:9000", "what": "caseload"}]

    # Once Dr Lee has read the report, the hold is no longer news.
    await lee.send("/report 2001")
    await lee.next(2)
    clock.advance(minutes=5)
    await lee.send("/clients")
    [again] = await lee.next()
    assert "⚑" not in again.text and "crisis hold" in again.text


async def test_reports_stay_off_telegram_when_the_practice_says_so(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, tmp_path: Path, clock: Clock
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         telegram={"poll_timeout": 1, "admins": [LEE],
                                   "send_reports": False})
    async with running_edge(config, loaded, store, clock=clock):
        lee = TelegramClient(fake_api, LEE, "Dr Lee")
        await invited_client(lee, fake_api)
        await settle(fake_api, store)
        await lee.send("/report 2001")
        [reply] = await lee.next()
        assert "rehearse report tg:2001" in reply.text
        await settle(fake_api, store)
    assert all(m.document is None for m in lee.messages)
    assert "data_read" not in [r.kind for r in await store.ledger("tg:2001")]


async def test_a_report_command_is_answered_with_its_usage(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store
) -> None:
    lee = TelegramClient(fake_api, LEE, "Dr Lee")
    for wrong in ("/report", "/report ada", "/report 1 2", "/report ²"):
        await lee.send(wrong)
        [usage] = await lee.next()
        assert usage.text.startswith("Usage: /report CLIENT")
    await settle(fake_api, store)
    assert all(m.document is None for m in lee.messages)
