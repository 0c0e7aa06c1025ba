"""A button press answered in the pressed message (issue 13 §3), against the fake Bot API.

While the pressed message is the chat's newest, the press's first reply goes into it by one
``editMessageText``: its text, a line with the choice, the reply and the reply's buttons.
Otherwise, and for crisis responses, files, therapist alerts, texts too long together and
edits Telegram refuses, the keyboard is edited away and the reply is a message of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telegram import Bot

from bot.app import Loaded
from bot.store import Commit, OutgoingMessage, SqliteStore
from bot.telegram import TelegramEdge
from bot.telegram._sender import OutboxSender, Press
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi, SentMessage
from tests.support.telegram_client import (
    TelegramClient,
    labels,
    pacing_off,
    plain,
    running_edge,
    settle,
    wait_until,
)
from tests.test_telegram_crisis_flow import ANSWERS, QUESTION, WORDS
from tests.test_telegram_e2e import to_first_say

CLIENT = 1001
#: The Bot API methods a press and its reply may cost.
METHODS = ("sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument")


def counts(api: FakeBotApi) -> dict[str, int]:
    return {method: len(api.calls(method)) for method in METHODS}


def since(api: FakeBotApi, before: dict[str, int]) -> dict[str, int]:
    """The requests of each method made after ``before`` was counted."""
    return {method: count - before[method] for method, count in counts(api).items()}


# -- through the whole bot ------------------------------------------------------------------
@pytest.fixture
async def bot(fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded,
              tmp_path: Path) -> AsyncIterator[TelegramEdge]:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [CLIENT]})
    async with running_edge(config, loaded, store) as edge:
        yield edge


async def intro(ada: TelegramClient) -> SentMessage:
    """/start, up to the consent intro (the newest message, with its buttons)."""
    await ada.send("/start")
    [*_, shown] = await ada.until(lambda m: "I agree" in labels(m))
    return shown


async def test_a_press_is_answered_in_the_pressed_message_by_one_edit(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    shown = await intro(ada)
    question = shown.plain_text
    await settle(fake_api, store)
    before = counts(fake_api)
    await ada.press("I agree")
    reply = await ada.next_one()
    await settle(fake_api, store)
    assert since(fake_api, before) == {"sendMessage": 0, "editMessageText": 1,
                                       "editMessageReplyMarkup": 0, "sendDocument": 0}
    assert reply.message_id == shown.message_id
    assert shown.plain_text == f"{question}\n\n» I agree\n\n{plain(reply.text)}"
    assert "18 or older" in reply.plain_text
    assert labels(shown) == labels(reply) == ["Yes", "No"]  # the reply's buttons
    [edit] = fake_api.calls("editMessageText")
    assert "<b>Welcome to Rehearse.</b>" in edit["text"]  # the question keeps its markup
    assert "\n\n» <i>I agree</i>\n\n" in edit["text"]
    # The outbox row is recorded as sent with the edited message, so /delete deletes it.
    sent = await store.recent_sent_messages(f"tg:{CLIENT}", datetime(2000, 1, 1, tzinfo=UTC))
    assert sent[-1] == (CLIENT, shown.message_id)


async def test_a_press_above_a_typed_message_is_answered_by_a_new_message(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    shown = await intro(ada)
    await settle(fake_api, store)
    text = shown.text
    fake_api.hold_updates()  # the press and the typed risk message arrive together
    await ada.press("I agree")
    await ada.send(WORDS)
    before = counts(fake_api)
    await fake_api.release_updates()
    [reply, crisis, *_] = await ada.until(lambda m: "988" in m.text)
    await settle(fake_api, store)
    assert shown.text == text and labels(shown) == []  # the keyboard edited away, no more
    assert reply.message_id > shown.message_id and "18 or older" in reply.text
    assert crisis.message_id > reply.message_id
    assert since(fake_api, before)["editMessageText"] == 0


async def test_a_crisis_response_to_a_press_is_always_a_new_message(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    await ada.send("/start")
    await ada.until(lambda m: "I agree" in labels(m))
    await ada.send("/sos")
    [*_, question] = await ada.until(lambda m: QUESTION in m.text)
    assert labels(question) == ANSWERS
    await settle(fake_api, store)
    text, before = question.text, counts(fake_api)
    await ada.press("No, I'm not safe")
    [first, *_] = await ada.until(lambda m: "Practice waits until" in m.text)
    await settle(fake_api, store)
    assert "Please call 911 now." in plain(first.text)
    assert first.message_id > question.message_id  # a message of its own: it notifies
    assert question.text == text and labels(question) == []
    requests = since(fake_api, before)
    assert requests["editMessageText"] == 0 and requests["editMessageReplyMarkup"] == 1


async def test_a_press_on_an_older_message_or_a_forged_one_edits_its_keyboard_away(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    ada = TelegramClient(fake_api, CLIENT)
    shown = await intro(ada)
    await ada.press_data(shown, "forged")  # no such button: nothing to record as the choice
    await settle(fake_api, store)
    assert labels(shown) == [] and "» " not in shown.plain_text
    assert not fake_api.calls("editMessageText")


async def test_a_toggle_replaces_only_the_reply_in_the_pressed_message(
    bot: TelegramEdge, fake_api: FakeBotApi, store: SqliteStore
) -> None:
    """Body cues, ticked one by one: each tick shows the same question with the new ticks,
    under the earlier question and its answer, by one edit."""
    ada = TelegramClient(fake_api, CLIENT)
    await to_first_say(ada, "Noticing the body")
    for _ in range(2):
        await ada.until(lambda m: "Go on" in labels(m))
        await ada.press("Go on")
    for rating in ("3", "4"):
        await ada.until(lambda m: "10" in labels(m))
        await ada.press(rating)
    [*_, cues] = await ada.until(lambda m: "Tight chest" in labels(m))
    await settle(fake_api, store)
    before, shown = counts(fake_api), plain(cues.text)
    for label in ("Tight chest", "Tense jaw"):
        await ada.press(label)
        await settle(fake_api, store)
    [message] = [m for m in ada.messages if m.message_id == cues.message_id]
    assert message.plain_text.endswith(f"\n\n» 4\n\n{shown}")  # the question once, ticked:
    assert labels(message)[:3] == ["✓ Tight chest", "Shallow breath", "✓ Tense jaw"]
    assert since(fake_api, before) == {"sendMessage": 0, "editMessageText": 2,
                                       "editMessageReplyMarkup": 0, "sendDocument": 0}


# -- the sender alone -----------------------------------------------------------------------
class Chat:
    """A sender at work on one chat: queue rows, press a message's button."""

    def __init__(self, api: FakeBotApi, store: SqliteStore, sender: OutboxSender) -> None:
        self.api, self.store, self.sender = api, store, sender
        self.rows = 0

    async def queue(self, *payloads: dict[str, object], client: int = CLIENT) -> None:
        self.rows += 1
        await self.store.commit(Commit(
            event_id=f"test:{self.rows}", client_id=f"tg:{CLIENT}", at=datetime.now(UTC),
            state={}, outbox=[OutgoingMessage(f"tg:{CLIENT}", client, p) for p in payloads]))
        self.sender.wake.set()

    async def sent(self, count: int) -> list[SentMessage]:
        """Wait until the chat holds ``count`` messages and the outbox is empty."""
        await self.api.wait_for_messages(CLIENT, count)
        far = datetime(9999, 1, 1, tzinfo=UTC)

        async def empty() -> bool:
            return not await self.store.pending_outbox(far, limit=1)

        await wait_until(empty, what="an empty outbox")
        return self.api.messages(CLIENT)

    async def question(self) -> SentMessage:
        """A question with buttons, pressed ("Yes"): its reply may go into it."""
        await self.queue({"text": "Ready?", "buttons": [[["Yes", "q:y"], ["No", "q:n"]]]})
        [shown] = await self.sent(1)
        assert self.sender.pressed(CLIENT, shown.message_id,
                                   Press(shown.message_id, "Ready?", "Yes"))
        return shown


@asynccontextmanager
async def sending(api: FakeBotApi, store: SqliteStore) -> AsyncIterator[Chat]:
    async def blocked(client_id: str, outbox_id: int) -> None:
        raise AssertionError("nobody blocked the bot")

    api.add_user(CLIENT)
    api.add_user(2002, "Theo")
    async with Bot(api.token, base_url=api.base_url) as bot:
        sender = OutboxSender(bot, store, lambda: datetime.now(UTC), blocked, pacing_off())
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        try:
            yield Chat(api, store, sender)
        finally:
            stop.set()
            await task


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "rehearse.db") as opened:
        yield opened


async def test_only_the_first_reply_row_goes_into_the_pressed_message(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        before = counts(fake_api)
        # Two messages (a text after buttons is not merged with them, §2): only the first
        # goes into the pressed message.
        await chat.queue({"text": "Good.", "buttons": [[["Go on", "n:g"]]]},
                         {"text": "Next?", "buttons": []})
        [edited, nxt] = await chat.sent(2)
    assert edited is shown and edited.plain_text == "Ready?\n\n» Yes\n\nGood."
    assert labels(edited) == ["Go on"] and labels(nxt) == [] and nxt.plain_text == "Next?"
    assert since(fake_api, before) == {"sendMessage": 1, "editMessageText": 1,
                                       "editMessageReplyMarkup": 0, "sendDocument": 0}


async def test_a_reply_of_texts_goes_into_the_pressed_message_as_one(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    """Consecutive texts are one message (§2), so all of them go into the pressed message."""
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        before = counts(fake_api)
        await chat.queue({"text": "Good.", "buttons": []},
                         {"text": "Next?", "buttons": [[["Go on", "n:g"]]]})
        [edited] = await chat.sent(1)
    assert edited is shown and edited.plain_text == "Ready?\n\n» Yes\n\nGood.\n\nNext?"
    assert labels(edited) == ["Go on"]
    assert since(fake_api, before) == {"sendMessage": 0, "editMessageText": 1,
                                       "editMessageReplyMarkup": 0, "sendDocument": 0}


@pytest.mark.parametrize("reply", [
    {"text": "x" * 4082, "buttons": []},  # with "Ready?" and the choice: 4,097 characters
    {"text": "Please call 911 now.", "buttons": [], "urgent": True},
    {"file": {"name": "rehearse-my-data.json", "content": "{}"}},
], ids=["too long", "urgent", "file"])
async def test_a_reply_that_cannot_go_into_the_pressed_message_is_a_new_one(
    fake_api: FakeBotApi, sqlite: SqliteStore, reply: dict[str, object]
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        before = counts(fake_api)
        await chat.queue(reply)
        [_, new] = await chat.sent(2)
    assert shown.plain_text == "Ready?" and labels(shown) == []
    assert new.message_id > shown.message_id
    requests = since(fake_api, before)
    assert requests["editMessageText"] == 0 and requests["editMessageReplyMarkup"] == 1


async def test_a_therapist_alert_never_takes_a_pressed_message(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        await chat.queue({"text": "An alert", "urgent": True, "alert": True}, client=2002)
        await chat.queue({"text": "Good.", "buttons": []})
        await chat.sent(1)
        await fake_api.wait_for(lambda: fake_api.messages(2002))
    assert shown.plain_text == "Ready?\n\n» Yes\n\nGood."
    assert [m.text for m in fake_api.messages(2002)] == ["An alert"]


@pytest.mark.parametrize("refusal", ["Bad Request: message to edit not found",
                                     "Bad Request: message can't be edited"])
async def test_an_edit_telegram_refuses_is_sent_as_a_new_message(
    fake_api: FakeBotApi, sqlite: SqliteStore, refusal: str
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        fake_api.fail("editMessageText", status=400, description=refusal)
        await chat.queue({"text": "Good.", "buttons": [[["Go on", "n:g"]]]})
        [_, new] = await chat.sent(2)
    assert shown.plain_text == "Ready?" and labels(shown) == []
    assert new.text == "Good." and labels(new) == ["Go on"]


async def test_an_edit_that_went_through_before_its_answer_failed_is_not_sent_again(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        fake_api.fail("editMessageText", processed=True)  # Telegram edited, then a 500
        await chat.queue({"text": "Good.", "buttons": []})
        await fake_api.wait_for(lambda: len(fake_api.calls("editMessageText")) == 2, 10)
        await chat.sent(1)
    assert shown.plain_text == "Ready?\n\n» Yes\n\nGood."  # "not modified": shown already
    assert len(fake_api.messages(CLIENT)) == 1


async def test_a_press_that_brings_no_reply_still_loses_its_keyboard(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        await chat.sender.unanswered(CLIENT, shown.message_id)
        await chat.queue({"text": "Later, a reminder.", "buttons": []})
        [_, reminder] = await chat.sent(2)
    assert shown.plain_text == "Ready?" and labels(shown) == []
    assert reminder.text == "Later, a reminder."
    assert len(fake_api.calls("editMessageReplyMarkup")) == 1


async def test_a_press_while_earlier_rows_wait_to_be_sent_keeps_no_reply_for_them(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    async with sending(fake_api, sqlite) as chat:
        await chat.queue({"text": "Ready?", "buttons": [[["Yes", "q:y"]]]})
        [shown] = await chat.sent(1)
        fake_api.fail("sendMessage")  # the next row waits for its retry, a second later
        await chat.queue({"text": "Queued before the press.", "buttons": []})
        await fake_api.wait_for(lambda: len(fake_api.calls("sendMessage")) == 2)
        assert not chat.sender.pressed(CLIENT, shown.message_id,
                                       Press(shown.message_id, "Ready?", "Yes"))
        await chat.sender.keyboard_answered(CLIENT, shown.message_id)
        [_, earlier] = await chat.sent(2)
    assert shown.plain_text == "Ready?" and labels(shown) == []
    assert earlier.text == "Queued before the press."


async def test_a_reply_that_replaces_the_keyboard_replaces_the_pressed_message(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    """A toggle (body cues ticked one by one): the same question with the new buttons."""
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        await chat.queue({"text": "Ready? (1 ticked)", "buttons": [[["✓ Yes", "q:y"]]],
                          "replace_keyboard": True})
        await fake_api.wait_for(lambda: shown.edit_date is not None)
        await chat.sent(1)
    assert shown.plain_text == "Ready? (1 ticked)" and labels(shown) == ["✓ Yes"]
    assert len(fake_api.calls("editMessageText")) == 1 and len(fake_api.messages(CLIENT)) == 1


async def test_a_double_tap_puts_no_reply_under_either_choice(
    fake_api: FakeBotApi, sqlite: SqliteStore
) -> None:
    """Two presses before the first one's reply (both in one batch of updates): the reply
    is a message of its own, never shown under the second press's label."""
    async with sending(fake_api, sqlite) as chat:
        shown = await chat.question()
        assert not chat.sender.pressed(CLIENT, shown.message_id,
                                       Press(shown.message_id, "Ready?", "No"))
        await chat.queue({"text": "Reply to Yes.", "buttons": []})
        [pressed, reply] = await chat.sent(2)
    assert pressed.plain_text == "Ready?" and "»" not in pressed.text
    assert reply.plain_text == "Reply to Yes."
