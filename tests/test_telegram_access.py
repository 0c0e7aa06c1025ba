"""Who may use the bot: invite codes by default, or an allowlist; admins always.

Everything runs through the real bot against the fake Bot API; invites are stored the way
``rehearse invite`` stores them (only the code's hash).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.store import Invite, SqliteStore
from bot.telegram import TelegramEdge, Waits, code_hash, new_code
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import Say, TelegramClient, labels, running_edge, settle

ADMIN = 3003


@pytest.fixture
async def bot(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, clock: Clock
) -> AsyncIterator[TelegramEdge]:
    """The bot with the default access rules (invite-only), one admin, on the test clock
    (which only moves by hand; the bot looks at its timers every 50 ms)."""
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         telegram={"poll_timeout": 1, "admins": [ADMIN]})
    assert config.access.mode == "invite" and not config.access.allowlist
    async with running_edge(config, loaded, store, clock=clock,
                            waits=Waits(timers=0.05)) as edge:
        yield edge


async def invite(store: SqliteStore, clock: Clock, *, days: float = 7) -> str:
    code = new_code()
    await store.add_invite(Invite(code_hash=code_hash(code), script_id="first-steps",
                                  max_level=2, expires_at=clock.now + timedelta(days=days),
                                  created_at=clock.now))
    return code


def consent_intro(loaded: Loaded) -> str:
    policy = loaded.engine.resources.policy
    return str(loaded.renderer.system(
        "consent.intro", retention_days=policy.retention_days, answers_days=policy.answers_days,
        therapist_delay=policy.therapist_delay,
        crisis_hold_hours=policy.crisis_hold_hours)).strip()


async def admitted_with(client: TelegramClient, code: str, loaded: Loaded, say: Say) -> None:
    await client.send(f"/start {code}")
    await client.expect(say("access.welcome", name=client.name))
    intro = await client.expect(consent_intro(loaded))
    assert labels(intro) == ["I agree", "No, thanks"]


async def invited_ada(
    api: FakeBotApi, store: SqliteStore, clock: Clock, loaded: Loaded, say: Say
) -> TelegramClient:
    """Ada, admitted with a fresh invite and shown the consent question."""
    ada = TelegramClient(api, 2001, "Ada")
    await admitted_with(ada, await invite(store, clock), loaded, say)
    return ada


# -- strangers -------------------------------------------------------------------------------
async def test_a_stranger_is_asked_for_an_invite_and_nothing_is_stored(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    eve = TelegramClient(fake_api, 6666, "Eve")
    for text in ("/start", "hello?", "/help"):
        await eve.send(text)
    await fake_api.send_sticker(6666)
    await settle(fake_api, store)
    # asked for (/start, /help) each time; anything else greeted once an hour at most
    assert [m.text.strip() for m in eve.unread] == [say("access.invite_needed")] * 2
    await eve.next(2)
    assert not eve.unread
    assert await store.client_ids() == []
    assert (await store.export("tg:6666"))["events"] == []


async def test_crisis_language_from_a_stranger_still_gets_crisis_resources(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded
) -> None:
    eve = TelegramClient(fake_api, 6666, "Eve")
    words = "i keep thinking i would be better off dead"
    await eve.send(words)
    policy = loaded.engine.resources.policy
    resources = await eve.next_one()
    detection = loaded.engine.resources.crisis.scan(words)
    assert resources.text.strip() == str(loaded.renderer.system(
        "crisis.resources", **policy.lines().crisis_context(detection, running=False))).strip()
    assert "988" in resources.text and policy.emergency in resources.text
    await settle(fake_api, store)
    assert not eve.unread
    assert await store.client_ids() == []  # the words were read in memory only


# -- invite codes ----------------------------------------------------------------------------
async def test_a_valid_code_admits_and_assigns_its_script(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
    clock: Clock, say: Say,
) -> None:
    ada = await invited_ada(fake_api, store, clock, loaded, say)
    state = await store.load_state("tg:2001")
    assert state is not None
    assert state["contract"]["scripts"] == ["first-steps"]  # type: ignore[index]
    assert state["contract"]["max_level"] == 2  # type: ignore[index]
    await ada.send("/help")  # admitted from now on, without the code
    await ada.expect(say("help"))
    [redeemed] = await store.list_invites()
    assert redeemed.redeemed_by == "tg:2001"


async def test_a_wrong_code_is_refused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, say: Say
) -> None:
    eve = TelegramClient(fake_api, 6666, "Eve")
    await eve.send("/start not-a-real-code")
    await eve.expect(say("access.bad_code"))
    await eve.send("/help")
    await eve.expect(say("access.invite_needed"))


async def test_repeated_wrong_codes_are_rate_limited_until_the_window_passes(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
    clock: Clock, say: Say,
) -> None:
    access = bot.config.access
    code = await invite(store, clock, days=1)
    eve = TelegramClient(fake_api, 6666, "Eve")
    for attempt in range(access.wrong_code_limit):
        await eve.send(f"/start guess-{attempt}")
        await eve.expect(say("access.bad_code"))
    await eve.send("/start guess-again")
    await eve.expect(say("access.too_many_codes"))
    await eve.send(f"/start {code}")  # even the right code, for now
    await eve.expect(say("access.too_many_codes"))
    [unused] = await store.list_invites()
    assert unused.redeemed_at is None

    clock.advance(minutes=access.wrong_code_window_minutes - 1)
    await eve.send(f"/start {code}")
    await eve.expect(say("access.too_many_codes"))
    clock.advance(minutes=2)  # the window has passed
    await admitted_with(eve, code, loaded, say)


async def test_a_code_binds_to_the_first_account_that_redeems_it(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
    clock: Clock, say: Say,
) -> None:
    code = await invite(store, clock)
    ada, bea = TelegramClient(fake_api, 2001, "Ada"), TelegramClient(fake_api, 2002, "Bea")
    await admitted_with(ada, code, loaded, say)
    await bea.send(f"/start {code}")
    await bea.expect(say("access.bad_code"))
    await bea.send("I agree")
    await bea.expect(say("access.invite_needed"))
    await settle(fake_api, store)
    assert await store.client_ids() == ["tg:2001"]
    [used] = await store.list_invites()
    assert used.redeemed_by == "tg:2001"


async def test_an_expired_code_is_refused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, clock: Clock, say: Say
) -> None:
    code = await invite(store, clock, days=1)
    clock.advance(days=1, seconds=1)
    ada = TelegramClient(fake_api, 2001, "Ada")
    await ada.send(f"/start {code}")
    await ada.expect(say("access.bad_code"))
    await settle(fake_api, store)
    assert await store.client_ids() == []


async def test_an_admin_is_admitted_without_a_code(
    bot: TelegramEdge, fake_api: FakeBotApi, loaded: Loaded
) -> None:
    admin = TelegramClient(fake_api, ADMIN, "Dr Rivera")
    await admin.send("/start")
    await admin.expect(consent_intro(loaded))


# -- the allowlist ---------------------------------------------------------------------------
async def test_allowlist_mode_admits_listed_ids_only(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path, say: Say
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [1001]})
    async with running_edge(config, loaded, store):
        listed, other = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002)
        await listed.send("/start")
        await listed.expect(consent_intro(loaded))
        await other.send("/start")
        await other.expect(say("access.invite_needed"))
        await settle(fake_api, store)
        assert await store.client_ids() == ["tg:1001"]


async def test_an_erasure_by_the_operator_ends_access_without_a_restart(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
    clock: Clock, say: Say,
) -> None:
    """`rehearse erase` from another process: the running bot lets the client in no more."""
    ada = await invited_ada(fake_api, store, clock, loaded, say)
    await ada.send("/help")
    await ada.expect(say("help"))
    erased = await asyncio.to_thread(
        rehearse, ["erase", "tg:2001", "--yes", "--db", str(store._path)])
    assert erased == 0
    await asyncio.sleep(2 * bot.waits.timers)  # the bot notices at its next timer tick
    await ada.send("/help")
    await ada.expect(say("access.invite_needed"))
    assert await store.load_state("tg:2001") is None
