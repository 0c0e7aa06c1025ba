"""The contract as a living agreement, end to end: a therapist proposes a change with
``/contract CLIENT`` in Telegram or ``rehearse contract`` at the command line; the client gets
one message and agrees (or asks to talk first); only then does it take effect; both see the
history. Real bot (python-telegram-bot over HTTP against the fake Bot API), real SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.engine import ClientState
from bot.service import Rehearsal
from bot.store import SqliteStore, Store
from tests.conftest import Clock
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    TelegramClient,
    button_data,
    labels,
    plain,
    settle,
)
from tests.test_therapist_telegram import (
    LEE,
    RIVERA,
    bot,  # noqa: F401  (the running bot these tests use: the same fixture)
    invited_client,
)
from tests.test_therapists import client_of, config_with_admins

AGREE, TALK = "Agree", "I'd like to talk about it first"


async def contract_of(store: Store, client: str = "tg:2001") -> ClientState:
    raw = await store.load_state(client)
    assert raw is not None
    return ClientState.model_validate(raw)


async def lee_and_ada(fake_api: FakeBotApi, store: Store
                      ) -> tuple[TelegramClient, TelegramClient]:
    """Dr Lee, and Ada who redeemed Dr Lee's invite and consented (sharing), all sent."""
    lee = TelegramClient(fake_api, LEE, "Dr Lee")
    ada = await invited_client(lee, fake_api)
    await settle(fake_api, store)
    return lee, ada


@pytest.mark.usefixtures("bot")
async def test_a_therapist_proposes_the_client_agrees_and_only_then_it_takes_effect(
    fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lee_and_ada(fake_api, store)
    seen = len(ada.messages)

    await lee.send("/contract 2001\nmax_level: 3\nsession_minutes: 10")
    [answer] = await lee.next()
    assert answer.text == ("Proposed to tg:2001: Max level: 3; Session length: up to 10 "
                           "minutes. It takes effect only once they agree; /contract tg:2001 "
                           "shows their answer.")
    await settle(fake_api, store)
    [told] = ada.messages[seen:]  # one message, with the change in plain words
    assert "proposes a change to your agreement" in told.text
    assert "up to level 3 of 5" in told.text and "up to 10 minutes" in told.text
    assert labels(told) == [AGREE, TALK]
    state = await contract_of(store)
    assert (state.contract.max_level, state.contract.session_minutes) == (2, 15)  # not yet

    await ada.press(AGREE, told)
    await ada.until(lambda m: "Your agreement now says" in m.text)
    await settle(fake_api, store)
    state = await contract_of(store)
    assert (state.contract.max_level, state.contract.session_minutes) == (3, 10)
    assert state.level == 1  # nobody is moved up by it

    await lee.send("/contract 2001")
    [shown] = await lee.next()
    text = plain(shown.text)
    assert "Max level: 3" in text and "Session length: up to 10 minutes" in text
    assert "by tg:9000: Max level: 3; Session length: up to 10 minutes — agreed (" in text

    await ada.send("/contract")
    [overview] = (await ada.until(lambda m: "How it changed" in m.text))[-1:]
    assert "your therapist proposed" in overview.text and "You agreed." in overview.text
    kinds = [r.kind for r in await store.ledger("tg:2001")]
    assert kinds.count("contract_proposed") == kinds.count("contract_answered") == 1
    assert "data_read" in kinds  # the therapist's look at the agreement is a read


@pytest.mark.usefixtures("bot")
async def test_another_therapist_is_refused_and_a_bad_term_proposes_nothing(
    fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lee_and_ada(fake_api, store)
    rivera = TelegramClient(fake_api, RIVERA, "Dr Rivera")
    seen, rows = len(ada.messages), len(await store.ledger("tg:2001"))

    await rivera.send("/contract 2001\nmax_level: 5")
    [refused] = await rivera.next()
    assert refused.text == "tg:2001 is not one of your clients. /clients lists yours."
    for wrong, says in (("/contract 2001\nmax_level: 6", "Nothing was proposed: max_level"),
                        ("/contract 2001\ncolour: blue", "Nothing was proposed: unknown term"),
                        ("/contract 2001 max_level 4", "Usage: /contract CLIENT"),
                        ("/contract ada", "Usage: /contract CLIENT"),
                        ("/contract 2001\nmax_level: 2", "says that already")):
        await lee.send(wrong)
        [reply] = await lee.next()
        assert says in reply.text, (wrong, reply.text)
    await settle(fake_api, store)
    assert ada.messages[seen:] == []  # nothing reached the client
    new = [(r.kind, r.data) for r in (await store.ledger("tg:2001"))[rows:]]
    assert new == [("access_refused", {"reader": "tg:9001", "what": "contract"})]
    assert (await contract_of(store)).contract.max_level == 2


@pytest.mark.usefixtures("bot")
async def test_talk_first_and_a_replaced_proposals_buttons(
    fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lee_and_ada(fake_api, store)
    await lee.send("/contract 2001 max_level: 3")
    await lee.next()
    [first] = (await ada.until(lambda m: AGREE in labels(m)))[-1:]
    stale = button_data(first, AGREE)
    await lee.send("/contract 2001\noff_limits: family")
    await lee.next()
    [second] = (await ada.until(lambda m: AGREE in labels(m)))[-1:]
    assert "Topics left out: family" in second.text
    assert labels(ada.messages[first.message_id - ada.messages[0].message_id]) == []
    await ada.press_data(first, stale)  # the replaced proposal's button: stale
    [again] = (await ada.until(lambda m: "belongs to an earlier message" in m.text))[-1:]
    assert (await contract_of(store)).contract.max_level == 2
    assert AGREE in labels(again)  # asked again, in the same message
    await ada.press(TALK, again)
    await ada.until(lambda m: "talk about it first" in m.text)
    await settle(fake_api, store)
    state = await contract_of(store)
    assert state.contract.off_limit_topics == [] and state.proposal is None
    await lee.send("/contract 2001")
    [shown] = await lee.next()
    assert "replaced by a newer proposal" in shown.text
    assert "asked to talk about it first" in shown.text


def test_the_command_line_proposes_shows_the_history_and_refuses_another_therapist(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "rehearse.db", config_with_admins(tmp_path, [LEE, RIVERA])
    common = ["--db", str(db), "--config", str(config)]
    clock = Clock()

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            await client_of(Rehearsal(loaded.engine, store, clock), "tg:5", "tg:9000")

    asyncio.run(prepare())
    assert rehearse(["contract", "tg:5", "--max-level", "4", "--assign",
                     "first-steps,setting-a-limit", "--by", "9000", *common]) == 0
    assert capsys.readouterr().out.strip() == (
        "proposed to tg:5: Max level: 4; Exercises assigned: First steps in sharing, "
        "Setting a limit kindly; it takes effect once they agree")
    assert rehearse(["contract", "tg:5", "--max-level", "5", "--by", "9001", *common]) == 1
    assert "tg:5 is not a client of 9001" in capsys.readouterr().err
    assert rehearse(["contract", "tg:5", "--max-level", "9", *common]) == 2
    assert "nothing proposed: max_level" in capsys.readouterr().err
    assert rehearse(["contract", "tg:6", "--max-level", "4", *common]) == 1  # nobody

    assert rehearse(["contract", "tg:5", *common]) == 0
    out = capsys.readouterr().out
    assert "Max level: 3" in out  # not agreed yet
    assert "by tg:9000: Max level: 4; Exercises assigned" in out
    assert "waiting for the client's answer" in out

    async def ledger() -> list[tuple[str, dict[str, object]]]:
        async with SqliteStore(db) as store:
            return [(r.kind, r.data) for r in await store.ledger("tg:5")]

    rows = asyncio.run(ledger())
    assert ("access_refused", {"reader": "tg:9001", "what": "contract"}) in rows
    assert rows[-1] == ("data_read", {"reader": "operator", "what": "contract"})
    assert [k for k, _ in rows].count("contract_proposed") == 1
