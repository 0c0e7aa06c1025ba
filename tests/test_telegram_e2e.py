"""End to end: the real python-telegram-bot ``Application`` over HTTP to the fake Bot API.

Real engine, scripts, texts and database — every test runs on SQLite and on PostgreSQL;
only Telegram is replaced (by :class:`tests.support.fake_bot_api.FakeBotApi` on 127.0.0.1).
The client side is played by :class:`tests.support.telegram_client.TelegramClient`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Update

from bot import cli
from bot.app import Loaded
from bot.engine import COMMANDS, Start
from bot.service import Rehearsal
from bot.store import Commit, OutgoingMessage, Store, store_for
from bot.telegram import TelegramEdge, Waits, chat_of, install_token_redaction
from bot.telegram._logging import REDACTED
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import (
    DEFAULT_GROUP_CHAT_ID,
    DEFAULT_SUPERGROUP_CHAT_ID,
    FakeBotApi,
    SentMessage,
)
from tests.support.telegram_client import (
    Say,
    TelegramClient,
    button_data,
    choose_script,
    give_consent,
    labels,
    plain,
    running_edge,
    settle,
    transcript,
)

ALLOWED = {"mode": "allowlist", "allowlist": [1001, 1002]}
pytestmark = pytest.mark.backends


def consent_intro(loaded: Loaded) -> str:
    policy = loaded.engine.resources.policy
    return str(loaded.renderer.system(
        "consent.intro", retention_days=policy.retention_days, answers_days=policy.answers_days,
        therapist_delay=policy.therapist_delay,
        crisis_hold_hours=policy.crisis_hold_hours)).strip()


def crisis_resources(loaded: Loaded, words: str | None = None, *, running: bool = False) -> str:
    """The first crisis message: for what a client wrote, else for /sos."""
    resources = loaded.engine.resources
    detection = resources.crisis.scan(words) if words is not None else None
    return str(loaded.renderer.system("crisis.resources", **resources.policy.lines()
                                      .crisis_context(detection, running=running))).strip()


async def to_first_say(client: TelegramClient, title: str = "First steps in sharing") -> None:
    """/start, consent (all extras off), choose a script; its first message is next."""
    await client.send("/start")
    await give_consent(client)
    await choose_script(client, title)


async def to_roleplay(client: TelegramClient, title: str, version: str) -> SentMessage:
    """Through a role-play script's intro and check-in into the scene's first line."""
    for _ in range(3):
        await client.until(lambda m: "Go on" in labels(m))
        await client.press("Go on")
    await client.until(lambda m: "10" in labels(m))
    await client.press("3")  # distress before
    await client.until(lambda m: "10" in labels(m))
    await client.press("4")  # expected difficulty
    await client.until(lambda m: version in labels(m))
    await client.press(version)
    safe = "I'm safe with my partner"  # a partner scene asks first
    [*_, shown] = await client.until(lambda m: "Start" in labels(m) or safe in labels(m))
    if safe in labels(shown):
        await client.press(safe)
        await client.until(lambda m: "Start" in labels(m))  # the frame (a gentle pace)
    await client.press("Start")
    [*_, line] = await client.until(lambda m: "I said it" in labels(m))
    return line


# -- a whole script, from an invite to the end -----------------------------------------------
async def test_invite_then_first_steps_end_to_end(
    fake_api: FakeBotApi,
    store: Store,
    loaded: Loaded,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    say: Say,
) -> None:
    db = database
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake_api.token)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_api.base_url)
    monkeypatch.delenv("REHEARSE_CONFIG", raising=False)
    exit_code = await asyncio.to_thread(
        cli.main, ["invite", "--script", "first-steps", "--db", db])
    assert exit_code == 0
    link = re.search(r"https://t\.me/(\w+)\?start=(\S+)", capsys.readouterr().out)
    assert link is not None and link.group(1) == "rehearse_test_bot"
    code = link.group(2)

    async with running_edge(edge_config(fake_api, db), loaded, store):  # invite-only
        ada = TelegramClient(fake_api, 2001, "Ada")
        answered: list[tuple[SentMessage, str]] = []

        async def press(label: str) -> None:
            message = ada.keyboard()
            data = button_data(message, label)
            await ada.press(label, message)
            answered.append((message, data))

        await ada.send(f"/start {code}")
        await ada.expect(say("access.welcome", name="Ada"))
        await ada.expect(consent_intro(loaded))
        await press("I agree")
        await ada.expect(say("consent.adult"))
        await press("Yes")
        await ada.expect(say("consent.free_text"))
        await press("Yes, please")
        await ada.expect(say("consent.share"))
        await press("No, thanks")
        await ada.expect(say("consent.reminders"))
        await press("No, thanks")
        await ada.expect(say("consent.alert", alert_minutes=30))
        await press("No, thanks")
        await ada.expect(say("consent.done", opt_ins=["store_free_text"]))
        menu = await ada.expect(say("menu.choose"))
        assert labels(menu) == ["First steps in sharing"]  # only the invited script
        await press("First steps in sharing")

        assert "Hi Ada." in (await ada.next_one()).text
        await press("Go on")
        assert "For each prompt" in (await ada.next_one()).text
        await press("Go on")
        assert "keep something private" in (await ada.next_one()).text
        await press("Go on")
        await ada.expect(say("checkin.question"))
        await press("3")
        await ada.expect(say("checkin.expected"))
        await press("4")
        await ada.expect(say("checkin.thanks"))
        await ada.expect("Here's a first one.")
        prompt = await ada.next_one()
        assert labels(prompt) == ["I shared it", "Smaller step", "Skip", "Pause"]
        await ada.send("I enjoyed a walk by the river")  # free text answers the prompt
        await ada.expect(say("prompt.ack"))
        await ada.next_one()
        await press("Yes, one more")
        await ada.expect("Here's another, at the same level.")
        await ada.next_one()
        await press("Smaller step")
        assert (await ada.next_one()).text.startswith("Here's a smaller step:")
        await press("I shared it")
        await ada.expect(say("prompt.ack"))
        await ada.next_one()
        await press("One last one")
        await ada.expect("Here's the last one for today.")
        await ada.next_one()
        await press("Skip")
        await ada.expect(say("prompt.skip_reason"))
        await press("I'll keep this private")
        await ada.expect(say("prompt.skip_ack", reason="private"))
        assert "notice how you feel now" in (await ada.next_one()).text
        await press("Go on")
        await ada.expect(say("checkin.question"))
        await press("2")
        await ada.expect(say("checkin.actual"))
        await press("3")
        await ada.expect(say("checkin.relief"))
        await press("A little")
        await ada.expect(say("checkin.thanks"))
        closing = await ada.before(say("exercise.done", title="First steps in sharing"))
        assert closing.startswith("That's it for today.")
        # Her summary, hers alone: she did not opt in to sharing, so nothing can be shared;
        # she keeps what she types, so her typed answer is listed, and she may edit it.
        summary = await ada.next_one()
        assert "Your summary: First steps in sharing" in summary.text
        assert "yours alone" in summary.text
        assert "I enjoyed a walk by the river" in summary.text
        assert labels(summary) == ["It helped", "A little", "Not really", "Edit answer 1", "Done"]
        await press("Done")
        await ada.expect(say("summary.closed"))
        await settle(fake_api, store)
        assert not ada.unread

        # Every answered keyboard was edited away; no keyboard is left anywhere.
        assert all(message.reply_markup is None for message, _ in answered)
        assert all(m.reply_markup is None for m in ada.messages)
        assert len(fake_api.callback_answers) == len(answered)

        client = "tg:2001"
        ledger = [row.kind for row in await store.ledger(client)]
        assert ledger.count("prompt") == 2 and "session_ended" in ledger
        assert [a.text for a in await store.answers(client)] == ["I enjoyed a walk by the river"]

        # Pressing an answered button again: a kind word, and nothing changes.
        rows_before = await store.ledger(client)
        state_before = await store.load_state(client)
        old, data = answered[-1]
        await ada.press_data(old, data)
        await ada.expect(say("unexpected.stale_button"))
        await settle(fake_api, store)
        assert not ada.unread
        assert await store.ledger(client) == rows_before
        state_after = await store.load_state(client)
        assert state_before is not None and state_after is not None
        state_before.pop("last_active")
        state_after.pop("last_active")
        assert state_after == state_before
        assert len(fake_api.callback_answers) == len(answered) + 1  # the press was answered


# -- two clients at once ---------------------------------------------------------------------
async def test_two_clients_at_once_stay_apart_and_in_order(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, say: Say
) -> None:
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    await ada.send("/start")
    await bea.send("/start")
    await asyncio.gather(give_consent(ada), give_consent(bea))
    await asyncio.gather(choose_script(ada, "First steps"), choose_script(bea, "First steps"))
    for _ in range(3):
        for client in (ada, bea):
            await client.until(lambda m: "Go on" in labels(m))
            await client.press("Go on")
    await ada.until(lambda m: "10" in labels(m))
    await bea.until(lambda m: "10" in labels(m))

    # Interleaved, without waiting: each client's texts only make sense in their own order
    # (distress rating, then expected difficulty, then the answer to the first prompt).
    for text_a, text_b in (("3", "5"), ("4", "6"), ("Answer from Ada", "Answer from Bea")):
        await ada.send(text_a)
        await bea.send(text_b)
    await ada.until(lambda m: "Yes, one more" in labels(m))
    await bea.until(lambda m: "Yes, one more" in labels(m))
    await settle(fake_api, store)

    assert any("Hi Ada." in t for t in ada.texts) and not any("Bea" in t for t in ada.texts)
    assert any("Hi Bea." in t for t in bea.texts) and not any("Ada" in t for t in bea.texts)
    # The same conversation as the clients read it, however each one's texts were merged or
    # put into pressed messages (a pressed message's text comes back re-escaped by Telegram).
    assert (plain(transcript(ada.texts)).replace("Ada", "X")
            == plain(transcript(bea.texts)).replace("Bea", "X"))
    for client_id, distress, expected in (("tg:1001", 3, 4), ("tg:1002", 5, 6)):
        ledger = await store.ledger(client_id)
        [checkin] = [r.data for r in ledger if r.kind == "checkin"]
        [expectation] = [r.data for r in ledger if r.kind == "checkin_expected"]
        assert (checkin["distress"], expectation["expected"]) == (distress, expected)
        assert [r.data["response"] for r in ledger if r.kind == "prompt"] == ["text"]


async def test_python_telegram_bot_keeps_nothing_per_client(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store
) -> None:
    """State lives in the store: once the updates are handled, the edge holds no
    per-client lock or press, and python-telegram-bot no ``Application`` (whose user and
    chat id sets would grow with every client ever seen)."""
    strangers = range(5000, 5040)  # not admitted: each gets one "invite needed" reply
    for user in (1001, 1002, *strangers):
        await fake_api.send_text(user, "/start")
    await settle(fake_api, store)
    assert not hasattr(edge, "app")
    assert not len(edge.service._locks) and not edge.handlers._presses


# -- /stop in the middle of a role-play ------------------------------------------------------
@pytest.mark.parametrize(("title", "version"), [
    ("Setting a limit kindly", "Full scene"),
    ("Asking for reassurance", "No, start the scene"),
])
async def test_stop_mid_roleplay_sends_one_confirmation_then_nothing(
    fake_api: FakeBotApi,
    store: Store,
    loaded: Loaded,
    database: str,
    say: Say,
    title: str,
    version: str,
) -> None:
    clock = Clock()
    config = edge_config(fake_api, database, access=ALLOWED)
    async with running_edge(config, loaded, store, clock=clock,
                            waits=Waits(timers=0.05)) as edge:
        ada = TelegramClient(fake_api, 1001, "Ada")
        await ada.send("/start")
        await give_consent(ada, reminders=("Europe/London", "19:00"))
        await choose_script(ada, title)
        await to_roleplay(ada, title, version)
        assert await store.due_timers(clock.now + timedelta(days=2))  # a reminder is set

        await ada.send("/stop")
        confirm = await ada.expect(say("stop.confirm"))
        assert labels(confirm) == ["Only this exercise", "Withdraw consent and delete my data"]
        await settle(fake_api, store)
        assert not ada.unread

        # Time passes (the evening's reminder, the silence follow-up): nothing is sent.
        clock.advance(days=3)
        assert await edge.service.fire_due_timers() == 0
        assert not await store.due_timers(clock.now + timedelta(days=30))
        await settle(fake_api, store)
        assert not ada.unread
        ledger = await store.ledger("tg:1001")
        assert [r.data for r in ledger if r.kind == "stopped"] == [{"via": "command"}]
        assert ledger[-1].kind == "stopped"

        await ada.send("hello?")  # the client writes: the bot answers, once
        await ada.expect(say("stop.halted"))
        await settle(fake_api, store)
        assert not ada.unread


# -- crisis language while an answer is awaited ----------------------------------------------
@pytest.mark.parametrize("waiting_for", ["free text", "rating"])
async def test_crisis_text_mid_answer_gets_resources_at_once(
    edge: TelegramEdge,
    fake_api: FakeBotApi,
    store: Store,
    loaded: Loaded,
    say: Say,
    waiting_for: str,
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada, free_text=True)
    await choose_script(ada, "First steps")
    for _ in range(3):
        await ada.until(lambda m: "Go on" in labels(m))
        await ada.press("Go on")
    await ada.until(lambda m: "10" in labels(m))
    if waiting_for == "free text":
        await ada.press("3")
        await ada.until(lambda m: "10" in labels(m))
        await ada.press("4")
        await ada.until(lambda m: "I shared it" in labels(m))

    words = "honestly I just want to end it all tonight"
    await ada.send(words)
    # the numbers come first, and say that the running exercise is paused
    await ada.expect(crisis_resources(loaded, words, running=True))
    safe = await ada.expect(say("crisis.are_you_safe"))
    assert labels(safe) == ["Yes, I'm safe", "No, I'm not safe", "Not sure"]
    await ada.press("No, I'm not safe")
    policy = loaded.engine.resources.policy
    await ada.expect(say("crisis.not_safe", emergency=policy.emergency, unsure=False,
                         scene=False, plan="", alert="off"))

    ledger = await store.ledger("tg:1001")
    assert "crisis_language" in [r.kind for r in ledger]
    export = json.dumps(await store.export("tg:1001"))
    assert "end it all" not in export  # the text is scanned in memory, never stored


# -- restarts --------------------------------------------------------------------------------
async def test_restart_mid_script_resumes_at_the_same_step(
    fake_api: FakeBotApi, loaded: Loaded, database: str, say: Say
) -> None:
    config = edge_config(fake_api, database, access=ALLOWED)
    ada = TelegramClient(fake_api, 1001, "Ada")
    async with store_for(database) as store, running_edge(config, loaded, store):
        await to_first_say(ada)
        await ada.until(lambda m: "Hi Ada." in m.text)
        await ada.press("Go on")
        [shown] = await ada.until(lambda m: "For each prompt" in m.text)
        await settle(fake_api, store)

    # The bot is down; the client presses "Go on" on the message shown before.
    await ada.press("Go on", shown)
    async with store_for(database) as store, running_edge(config, loaded, store):
        assert "keep something private" in (await ada.next_one()).text
        assert shown.reply_markup is None
        await ada.press("Go on")
        await ada.expect(say("checkin.question"))
        await settle(fake_api, store)
        assert not ada.unread


async def test_unsent_outbox_rows_go_out_on_restart(
    fake_api: FakeBotApi,
    store: Store,
    loaded: Loaded,
    database: str,
    clock: Clock,
    say: Say,
) -> None:
    # While the bot is down (after a crash, say), commits queue messages.
    service = Rehearsal(loaded.engine, store, clock, chat_of)
    await service.handle("tg:1001", "tg:9001", Start(display_name="Ada"))
    await store.commit(Commit(
        event_id="test:queued", client_id="tg:1002", at=clock.now, state=None,
        outbox=[OutgoingMessage("tg:1002", 1002, {"text": f"queued {n}", "buttons": []})
                for n in range(1, 4)],
    ))
    fake_api.add_user(1001)
    fake_api.add_user(1002)
    config = edge_config(fake_api, database, access=ALLOWED)
    async with running_edge(config, loaded, store):
        ada, bea = TelegramClient(fake_api, 1001), TelegramClient(fake_api, 1002)
        intro = await ada.expect(consent_intro(loaded))
        assert labels(intro) == ["I agree", "No, thanks"]
        # one message: consecutive texts go out together
        assert [m.text for m in await bea.next()] == ["queued 1\n\nqueued 2\n\nqueued 3"]
        await settle(fake_api, store)
        assert not ada.unread and not bea.unread
        await ada.press("I agree")  # and the flow goes on from there
        await ada.expect(say("consent.adult"))


# -- what the bot cannot read, and where it does not talk ------------------------------------
async def test_other_message_kinds_get_a_kind_word_and_the_step_again(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await to_first_say(ada)
    [step] = await ada.until(lambda m: "Hi Ada." in m.text)
    shown = (step.text, labels(step))  # (the keyboard moves on to each repetition)
    my_start = fake_api.user_messages(1001)[0]["message_id"]
    senders: dict[str, Callable[[], Awaitable[int]]] = {
        "photo": lambda: fake_api.send_photo(1001, caption="me"),
        "sticker": lambda: fake_api.send_sticker(1001),
        "voice": lambda: fake_api.send_voice(1001),
        "document": lambda: fake_api.send_document(1001),
        "location": lambda: fake_api.send_location(1001, 51.5, -0.1),
        "edited message": lambda: fake_api.edit_text(1001, my_start, "/start again"),
    }
    for kind, send in senders.items():
        await send()
        await ada.expect(say("unexpected.non_text"))
        again = await ada.expect(shown[0])
        assert labels(again) == shown[1], kind
        assert labels(step) == [], kind  # only the newest message shows buttons
        step = again
    await ada.press("Go on")  # the step still works
    assert "For each prompt" in (await ada.next_one()).text

    # At a rating step, too.
    await ada.press("Go on")
    await ada.until(lambda m: "keep something private" in m.text)
    await ada.press("Go on")
    buttons = labels(await ada.expect(say("checkin.question")))
    await fake_api.send_sticker(1001)
    await ada.expect(say("unexpected.non_text"))
    assert labels(await ada.expect(say("checkin.question"))) == buttons
    await settle(fake_api, store)
    assert not ada.unread


async def test_groups_get_one_polite_refusal_then_silence(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, say: Say
) -> None:
    await fake_api.send_text(1001, "/start", chat_type="group")
    [refusal] = await fake_api.wait_for_messages(DEFAULT_GROUP_CHAT_ID, 1)
    assert refusal.text.strip() == say("group.refusal")
    await fake_api.send_text(1002, "hello bot", chat_type="group")
    await fake_api.send_text(1001, "I want to end it all", chat_type="group")
    await fake_api.send_sticker(1001, chat_type="group")
    await settle(fake_api, store)
    assert len(fake_api.messages(DEFAULT_GROUP_CHAT_ID)) == 1
    assert fake_api.messages(1001) == [] and fake_api.messages(1002) == []
    assert await store.client_ids() == []  # nothing about group members is stored


async def test_a_refused_group_stays_refused_after_a_restart(
    fake_api: FakeBotApi, loaded: Loaded, database: str, say: Say
) -> None:
    config = edge_config(fake_api, database, access=ALLOWED)
    async with store_for(database) as store, running_edge(config, loaded, store):
        await fake_api.send_text(1001, "/start", chat_type="group")
        [refusal] = await fake_api.wait_for_messages(DEFAULT_GROUP_CHAT_ID, 1)
        assert refusal.text.strip() == say("group.refusal")
        await settle(fake_api, store)

    async with store_for(database) as store, running_edge(config, loaded, store):
        await fake_api.send_text(1002, "is anyone there?", chat_type="group")
        await fake_api.send_text(1001, "/start", chat_type="supergroup")  # another group
        [other] = await fake_api.wait_for_messages(DEFAULT_SUPERGROUP_CHAT_ID, 1)
        assert other.text.strip() == say("group.refusal")
        await settle(fake_api, store)
        assert len(fake_api.messages(DEFAULT_GROUP_CHAT_ID)) == 1
        assert await store.client_ids() == []


# -- the client's data -----------------------------------------------------------------------
async def test_mydata_sends_the_export_as_a_json_document_after_its_intro(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada)
    await ada.until(lambda m: "First steps in sharing" in labels(m))
    await ada.send("/mydata")
    await ada.expect(say("mydata.intro"))
    document = await ada.next_one()
    assert document.document is not None
    assert document.document["file_name"] == "rehearse-my-data.json"
    assert document.document["mime_type"] == "application/json"
    export = json.loads(document.document["content"])
    assert export["client_id"] == "tg:1001"
    kinds = [row["kind"] for row in export["ledger"]]
    assert "consent" in kinds and kinds[-1] == "export_requested"


async def test_mydata_file_goes_through_the_outbox_and_is_retried(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, say: Say
) -> None:
    """Telegram fails the upload (a 502): the file stays queued, is sent on the retry, and
    leaves the outbox only once Telegram took it."""
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada)
    await ada.until(lambda m: "First steps in sharing" in labels(m))
    fake_api.fail("sendDocument", status=502)
    await ada.send("/mydata")
    await ada.expect(say("mydata.intro"))
    await fake_api.wait_for(lambda: fake_api.calls("sendDocument"))
    far = datetime.now(UTC) + timedelta(days=1)
    [queued] = [row for row in await store.pending_outbox(far) if "file" in row.payload]
    assert queued.payload["file"]["name"] == "rehearse-my-data.json"  # type: ignore[index]
    document = await ada.next_one(timeout=10)
    assert document.document is not None
    assert json.loads(document.document["content"])["client_id"] == "tg:1001"
    assert len(fake_api.calls("sendDocument")) == 2
    await settle(fake_api, store)
    assert not ada.unread


async def test_delete_erases_the_client_and_the_bots_recent_messages(
    edge: TelegramEdge, fake_api: FakeBotApi, store: Store, loaded: Loaded, say: Say
) -> None:
    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    await give_consent(ada)
    await ada.until(lambda m: "First steps in sharing" in labels(m))
    await ada.send("/mydata")
    await ada.expect(say("mydata.intro"))
    document = await ada.next_one()
    await ada.send("/delete")
    await ada.expect(say("delete.confirm"))
    await ada.press("Yes, delete everything")
    sent_before = len(ada.messages)
    done = await ada.next_one()
    assert done.text.strip() == say("delete.done", deleted_messages=sent_before)
    assert all(m.deleted for m in ada.messages[:sent_before])
    assert document.deleted  # the export file, sent outside the outbox, too
    assert not done.deleted
    await settle(fake_api, store)
    assert await store.client_ids() == []
    assert await store.ledger("tg:1001") == []
    await ada.send("/start")  # still on the allowlist: welcomed as a new client
    await ada.expect(consent_intro(loaded))


# -- start-up and shutdown -------------------------------------------------------------------
async def test_start_publishes_commands_and_deletes_the_webhook(
    edge: TelegramEdge, fake_api: FakeBotApi, say: Say
) -> None:
    assert fake_api.calls("deleteWebhook")
    expected = [{"command": name, "description": say(f"commands.{name}")} for name in COMMANDS]
    assert fake_api.commands == expected
    assert {"start", "stop", "pause", "resume", "sos", "mydata", "delete"} <= set(COMMANDS)
    await fake_api.wait_for(lambda: fake_api.calls("getUpdates"))
    methods = [r.method for r in fake_api.requests]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")


async def test_graceful_stop_finishes_in_flight_updates_and_flushes_the_outbox(
    fake_api: FakeBotApi,
    loaded: Loaded,
    database: str,
    backend: str,
    say: Say,
) -> None:
    config = edge_config(fake_api, database, access=ALLOWED)
    ada, bea = TelegramClient(fake_api, 1001, "Ada"), TelegramClient(fake_api, 1002, "Bea")
    store = store_for(database)
    await store.open()
    edge = TelegramEdge(config, loaded, store, pacer=None)
    await edge.start()
    for client in (ada, bea):
        await client.send("/start")
        await client.expect(consent_intro(loaded))
    await settle(fake_api, store)

    # Both presses are being handled (answering the button takes a while) when stop comes.
    fake_api.delay("answerCallbackQuery", 0.5, times=2)
    await ada.press("I agree")
    await bea.press("I agree")
    await fake_api.wait_for(lambda: len(fake_api.calls("answerCallbackQuery")) == 2)
    await edge.stop()

    # The in-flight updates finished, were confirmed, and their replies went out.
    await ada.expect(say("consent.adult"))
    await bea.expect(say("consent.adult"))
    assert fake_api.pending_updates == 0
    assert not await store.pending_outbox(Clock().now + timedelta(days=3650))
    await store.close()
    if backend == "sqlite":
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


# -- the token never appears in logs ---------------------------------------------------------
async def test_the_token_never_appears_in_any_log(
    fake_api: FakeBotApi,
    store: Store,
    loaded: Loaded,
    database: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = fake_api.token
    undo = install_token_redaction(token)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root_level = root.level
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "telegram", "bot"):
        caplog.set_level(logging.DEBUG, logger=name)  # even httpx, which logs request URLs
    try:
        config = edge_config(fake_api, database, access=ALLOWED)
        async with running_edge(config, loaded, store,
                                waits=Waits(refetch_after_failure=0.1)) as edge:
            raised: list[int] = []

            handle = edge.handlers.handle

            async def fail_once(update: Update) -> None:  # after the update was handled
                await handle(update)
                if not raised:
                    raised.append(update.update_id)
                    raise RuntimeError(f"boom at {fake_api.base_url}{token}/sendMessage")

            monkeypatch.setattr(edge.handlers, "handle", fail_once)
            ada = TelegramClient(fake_api, 1001, "Ada")
            fake_api.fail("sendMessage", status=500)  # a warning, then a retry
            await ada.send("/start")
            await give_consent(ada)
            await choose_script(ada, "First steps")
            await ada.until(lambda m: "Go on" in labels(m))
            await settle(fake_api, store)
            assert raised
    finally:
        undo()
        root.removeHandler(handler)
        root.setLevel(root_level)

    captured = stream.getvalue() + caplog.text + "".join(
        f"{record.getMessage()}{record.exc_text or ''}" for record in caplog.records)
    assert token not in captured
    assert token.split(":", 1)[1] not in captured
    assert REDACTED in captured  # httpx did log request URLs, with the token redacted
    # The handler error was logged, by type and frames (its message may quote a client).
    assert "RuntimeError" in captured and "fail_once" in captured
    assert f"boom at {fake_api.base_url}" not in captured
    assert "sending failed" in captured  # and the 500's warning
