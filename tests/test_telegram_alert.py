"""The consented alert to the therapist on Telegram (issue 11 §8).

The real bot against the fake Bot API server: a client who opted in writes crisis language
and the therapist's account gets one message within seconds (the client's own therapist, else
the accounts in ``telegram.admins``), retried through the outbox on 429s and 5xx, never with
the client's words; without the opt-in nothing is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.store import SqliteStore
from bot.telegram import TelegramEdge
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    TelegramClient,
    give_consent,
    plain,
    running_edge,
    settle,
)

CLIENT = 1001
ADMIN = 9000
THERAPIST = 9100
WORDS = "i want to kill myself tonight"
QUESTION = "Are you safe right now?"


@pytest.fixture
async def bot(fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
              tmp_path: Path) -> AsyncIterator[TelegramEdge]:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [CLIENT]},
                         telegram={"poll_timeout": 1, "admins": [ADMIN, THERAPIST]})
    async with running_edge(config, loaded, store) as edge:
        yield edge


async def _in_crisis(fake_api: FakeBotApi, store: SqliteStore, *, alert: bool
                     ) -> TelegramClient:
    ada = TelegramClient(fake_api, CLIENT)
    await ada.send("/start")
    await give_consent(ada, alert=alert)
    await settle(fake_api, store)
    await ada.send(WORDS)
    await ada.until(lambda m: QUESTION in m.text)
    return ada


async def _alert_rows(store: SqliteStore) -> list[dict[str, object]]:
    return [r.data for r in await store.ledger(f"tg:{CLIENT}") if r.kind == "therapist_alert"]


async def test_a_client_in_crisis_alerts_the_admins(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    admin = TelegramClient(fake_api, ADMIN, name="Dr Lee")
    other = TelegramClient(fake_api, THERAPIST, name="Dr Kim")
    ada = await _in_crisis(fake_api, store, alert=True)
    [alert] = await admin.next(timeout=5)
    text = plain(alert.text)
    assert "Rehearse safety alert" in text and "Ada" in text and f"tg:{CLIENT}" in text
    assert "suicide or self-harm" in text and "kill" not in text and "tonight" not in text
    [copy] = await other.next(timeout=5)  # every admin, without a therapist
    assert plain(copy.text) == text
    await ada.press("No, I'm not safe")
    [follow] = await admin.next(timeout=5)
    assert "follow-up" in plain(follow.text) and "NOT safe" in plain(follow.text)
    await settle(fake_api, store)
    rows = await _alert_rows(store)
    assert [(r["signal"], r["sent"], r["to"]) for r in rows] == [
        ("crisis", True, "admins"), ("not_safe", True, "admins")]
    assert "kill" not in str(rows)
    # the client sees every alert in /mydata
    export = await store.export(f"tg:{CLIENT}")
    assert [r for r in export["ledger"] if r["kind"] == "therapist_alert"]  # type: ignore[index, union-attr]


async def test_the_clients_own_therapist_gets_it_alone(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    admin = TelegramClient(fake_api, ADMIN, name="Dr Lee")
    therapist = TelegramClient(fake_api, THERAPIST, name="Dr Kim")
    ada = TelegramClient(fake_api, CLIENT)
    await ada.send("/start")
    await give_consent(ada, alert=True)
    await bot.service.assign(f"tg:{CLIENT}", f"tg:{THERAPIST}", by="operator")
    await ada.send("/sos")
    [alert] = await therapist.next(timeout=5)
    assert "they used /sos" in plain(alert.text)
    await settle(fake_api, store)
    assert admin.messages == []
    assert (await _alert_rows(store))[-1]["to"] == "therapist"


@pytest.mark.parametrize("status", [429, 500])
async def test_a_failed_alert_is_retried_and_arrives_once(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, status: int
) -> None:
    admin = TelegramClient(fake_api, ADMIN, name="Dr Lee")
    TelegramClient(fake_api, THERAPIST, name="Dr Kim")
    ada = TelegramClient(fake_api, CLIENT)
    await ada.send("/start")
    await give_consent(ada, alert=True)
    await settle(fake_api, store)
    fake_api.fail("sendMessage", status=status, times=None)
    await ada.send(WORDS)

    def tried() -> bool:
        return any(c.get("chat_id") == ADMIN for c in fake_api.calls("sendMessage"))

    await fake_api.wait_for(tried, 5)
    assert admin.messages == []  # refused so far
    fake_api.clear_faults()
    [alert] = await admin.next(timeout=10)
    assert "Rehearse safety alert" in plain(alert.text)
    await ada.until(lambda m: QUESTION in m.text, timeout=10)
    await settle(fake_api, store)
    assert len(admin.messages) == 1


async def test_without_the_opt_in_nothing_is_sent(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    admin = TelegramClient(fake_api, ADMIN, name="Dr Lee")
    ada = await _in_crisis(fake_api, store, alert=False)
    await ada.press("No, I'm not safe")
    [told, *_] = await ada.until(lambda m: "Practice waits until" in m.text)
    assert "Your therapist is not notified automatically" in plain(told.text)
    await settle(fake_api, store)
    assert admin.messages == [] and await _alert_rows(store) == []


async def test_an_admin_who_blocked_the_bot_halts_nobody(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    TelegramClient(fake_api, ADMIN, name="Dr Lee")
    await fake_api.block(ADMIN)
    therapist = TelegramClient(fake_api, THERAPIST, name="Dr Kim")
    await _in_crisis(fake_api, store, alert=True)
    await settle(fake_api, store)
    assert len(therapist.messages) == 1  # the other admin still got it
    state = await bot.service.state_of(f"tg:{CLIENT}")
    assert not state.halted
    assert "stopped" not in [r.kind for r in await store.ledger(f"tg:{CLIENT}")]
