"""Tests for the fake Bot API server, driven by the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dtm
import re
import time
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from tests.support.fake_bot_api import DEFAULT_GROUP_CHAT_ID, FakeBotApi, run_polling

USER = 42
SHORT = dtm.timedelta(seconds=0.3)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    api.add_user(USER)
    async with Bot(api.token, base_url=api.base_url) as client:
        yield client


def build_app(api: FakeBotApi) -> Application:  # type: ignore[type-arg]
    """An application with /start (inline keyboard), a button handler and a text echo."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
        await update.message.reply_text(f"code {context.args}", reply_markup=keyboard)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("noted")
        await query.edit_message_text(f"you chose <b>{query.data}</b>", parse_mode="HTML")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)

    app = Application.builder().token(api.token).base_url(api.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


async def test_polling_app_echoes_and_handles_buttons(api: FakeBotApi) -> None:
    async with run_polling(build_app(api)):
        await api.send_text(USER, "/start CODE")
        [greeting] = await api.wait_for_messages(USER, 1)
        assert greeting.text == "code ['CODE']"
        assert greeting.reply_markup == {
            "inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]
        }

        await api.press_button(USER, greeting.message_id, "yes")
        await api.wait_for(lambda: greeting.edit_date is not None)
        assert [answer.text for answer in api.callback_answers] == ["noted"]
        assert (greeting.text, greeting.plain_text) == ("you chose <b>yes</b>", "you chose yes")
        # Editing the text without passing a markup drops the keyboard, as Telegram does.
        assert api.messages(USER)[0].reply_markup is None

        texts = [f"message {n}" for n in range(50)]
        for text in texts:
            await api.send_text(USER, text)
        sent = await api.wait_for_messages(USER, 51)
        assert [message.text for message in sent[1:]] == texts
        # User and bot messages share the chat's id sequence; the 50 texts were queued first.
        assert [message.message_id for message in sent] == [2, *range(53, 103)]
    assert api.pending_updates == 0
    assert api.sent_count == 51
    assert api.calls("deleteWebhook") and api.calls("getMe")


async def test_flood_error_raises_retry_after_then_recovers(api: FakeBotApi, bot: Bot) -> None:
    api.fail("sendMessage", status=429, retry_after=3, times=2)
    for _ in range(2):
        with pytest.raises(RetryAfter, match="Retry in 3 seconds"):
            await bot.send_message(USER, "hi")
    assert (await bot.send_message(USER, "hi")).text == "hi"
    assert len(api.calls("sendMessage")) == 3
    assert len(api.messages(USER)) == 1


async def test_rate_limits_allow_a_burst_then_answer_429() -> None:
    async with FakeBotApi(rate_limits=True) as api, Bot(api.token, base_url=api.base_url) as bot:
        api.add_user(USER)
        api.add_user(USER + 1)
        for n in range(3):
            await bot.send_message(USER, f"burst {n}")
        with pytest.raises(RetryAfter, match="Retry in 1 seconds"):
            await bot.send_message(USER, "one too many")
        await bot.send_message(USER + 1, "other chats are not limited")


async def test_blocking_forbids_sends_and_reports_my_chat_member(api: FakeBotApi) -> None:
    statuses: list[str] = []

    async def member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.my_chat_member is not None
        statuses.append(update.my_chat_member.new_chat_member.status)

    app = Application.builder().token(api.token).base_url(api.base_url).build()
    app.add_handler(ChatMemberHandler(member, ChatMemberHandler.MY_CHAT_MEMBER))
    async with run_polling(app):
        api.add_user(USER)
        await api.block(USER)
        await api.wait_for(lambda: statuses)
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await app.bot.send_message(USER, "still there?")
        with pytest.raises(Forbidden):
            await app.bot.send_chat_action(USER, "typing")
        await api.unblock(USER)
        await api.wait_for(lambda: len(statuses) == 2)
        await app.bot.send_message(USER, "welcome back")
    assert statuses == ["kicked", "member"]
    assert [message.text for message in api.messages(USER)] == ["welcome back"]


@pytest.mark.parametrize(("status", "error"), [(500, NetworkError), (502, NetworkError)])
async def test_server_errors_are_network_errors(
    api: FakeBotApi, bot: Bot, status: int, error: type[Exception]
) -> None:
    api.fail(status=status)
    with pytest.raises(error) as caught:
        await bot.send_message(USER, "hi")
    assert not isinstance(caught.value, BadRequest | Forbidden | TimedOut)
    assert api.messages(USER) == []


async def test_persistent_faults_last_until_cleared(api: FakeBotApi, bot: Bot) -> None:
    api.fail("getMe", status=502, times=None)
    for _ in range(3):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.get_me()
    api.clear_faults()
    assert (await bot.get_me()).username == "rehearse_test_bot"


async def test_processed_failure_still_delivers(api: FakeBotApi, bot: Bot) -> None:
    api.fail("sendMessage", status=500, processed=True)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(USER, "hi")
    assert [message.text for message in api.messages(USER)] == ["hi"]


async def test_dropped_connections_and_outages(api: FakeBotApi, bot: Bot) -> None:
    api.drop("sendMessage")
    with pytest.raises(NetworkError, match="Server disconnected"):
        await bot.send_message(USER, "hi")
    api.outage(0.3)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    api.outage(0.3, drop=True)
    with pytest.raises(NetworkError, match="Server disconnected"):
        await bot.get_me()
    await asyncio.sleep(0.35)
    await bot.send_message(USER, "back")
    assert [message.text for message in api.messages(USER)] == ["back"]


async def test_slow_answers_time_out_with_or_without_effect(api: FakeBotApi) -> None:
    api.add_user(USER)
    request = HTTPXRequest(read_timeout=0.1)
    async with Bot(api.token, base_url=api.base_url, request=request) as bot:
        api.delay("sendMessage", 0.4)
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "lost")
        api.delay("sendMessage", 0.4, processed=True)
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "delivered anyway")
        await asyncio.sleep(0.5)
    assert [message.text for message in api.messages(USER)] == ["delivered anyway"]


async def test_long_poll_wakes_on_new_update_and_honours_offset(api: FakeBotApi, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=SHORT) == ()
    assert time.monotonic() - started >= 0.25

    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    update_id = await api.send_text(USER, "wake up")
    [update] = await poll
    assert time.monotonic() - started < 0.5
    assert update.update_id == update_id

    assert [u.update_id for u in await bot.get_updates()] == [update_id]  # not yet confirmed
    second = await api.send_text(USER, "again")
    assert [u.update_id for u in await bot.get_updates(offset=update_id + 1)] == [second]
    assert api.pending_updates == 1
    third = await api.send_text(USER, "and again")
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == [third]
    assert [u.update_id for u in await bot.get_updates(limit=1)] == [third]


async def test_second_long_poll_terminates_the_first(api: FakeBotApi, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    # A Bot has a single getUpdates connection, so the rival poll needs a second instance.
    async with Bot(api.token, base_url=api.base_url) as rival:
        second = asyncio.create_task(rival.get_updates(timeout=5))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first
        await api.send_text(USER, "hello")
        assert len(await second) == 1


async def test_allowed_updates_and_dropping_pending(api: FakeBotApi, bot: Bot) -> None:
    await api.send_text(USER, "hello")
    await bot.delete_webhook(drop_pending_updates=True)
    assert api.pending_updates == 0
    await api.send_text(USER, "hello")
    [sent] = [await bot.send_message(USER, "pick", reply_markup=_keyboard("a"))]
    await api.press_button(USER, sent.message_id, "a")
    [update] = await bot.get_updates(allowed_updates=["callback_query"])
    assert update.callback_query is not None
    assert [u.message is not None for u in await bot.get_updates(allowed_updates=[])] == [
        True,
        False,
    ]


async def test_user_updates_parse_as_the_right_types(api: FakeBotApi, bot: Bot) -> None:
    await api.send_text(USER, "hi all", first_name="Grace", chat_type="group")
    await api.send_sticker(USER, emoji="🐢")
    await api.send_photo(USER, caption="look")
    await api.send_voice(USER, duration=7)
    await api.send_document(USER, file_name="plan.txt", mime_type="text/plain")
    await api.send_location(USER, 52.5, 13.4)
    [text_message] = api.user_messages(DEFAULT_GROUP_CHAT_ID)
    await api.edit_text(USER, text_message["message_id"], "/help me", DEFAULT_GROUP_CHAT_ID)
    group, sticker, photo, voice, document, location, edited = await bot.get_updates()

    assert group.effective_chat is not None and group.effective_user is not None
    assert group.effective_chat.type == "group"
    assert group.effective_chat.id == DEFAULT_GROUP_CHAT_ID
    assert group.effective_user.first_name == "Grace"
    assert filters.ChatType.GROUPS.check_update(group)
    assert sticker.message is not None and sticker.message.sticker is not None
    assert sticker.message.sticker.emoji == "🐢"
    assert filters.Sticker.ALL.check_update(sticker)
    assert photo.message is not None and photo.message.caption == "look"
    assert filters.PHOTO.check_update(photo)
    assert voice.message is not None and voice.message.voice is not None
    assert voice.message.voice.to_dict()["duration"] == 7
    assert document.message is not None and document.message.document is not None
    assert document.message.document.file_name == "plan.txt"
    assert location.message is not None and location.message.location is not None
    assert location.message.location.latitude == 52.5
    assert edited.edited_message is not None
    assert edited.edited_message.text == "/help me"
    assert filters.COMMAND.check_update(edited)


async def test_group_buttons(api: FakeBotApi, bot: Bot) -> None:
    await api.send_text(USER, "/menu@rehearse_test_bot", chat_type="supergroup", chat_id=-100123)
    sent = await bot.send_message(-100123, "menu", reply_markup=_keyboard("x"))
    await api.press_button(USER + 1, sent.message_id, "x", chat_id=-100123)
    command, pressed = await bot.get_updates()
    assert command.message is not None and command.message.chat.type == "supergroup"
    assert filters.Command().check_update(command)
    assert pressed.callback_query is not None and pressed.callback_query.message is not None
    assert pressed.callback_query.message.chat.id == -100123
    assert pressed.callback_query.from_user.id == USER + 1


async def test_callback_query_references_the_bot_message(api: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=_keyboard("a", "b"))
    with pytest.raises(ValueError, match="shows no button"):
        await api.press_button(USER, sent.message_id, "c")
    await api.press_button(USER, sent.message_id, "b")
    await bot.delete_message(USER, sent.message_id)
    await api.press_button(USER, sent.message_id, "a", verify=False)
    pressed, stale = await bot.get_updates()
    assert pressed.callback_query is not None and pressed.callback_query.message is not None
    assert pressed.callback_query.message.message_id == sent.message_id
    assert pressed.callback_query.message.is_accessible
    assert stale.callback_query is not None and stale.callback_query.message is not None
    assert not stale.callback_query.message.is_accessible
    assert await pressed.callback_query.answer("ok")
    with pytest.raises(BadRequest, match="Query is too old"):
        await pressed.callback_query.answer("twice")
    assert api.messages(USER)[0].deleted


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("ü <3 you", 'Unsupported start tag "3" at byte offset 3'),
        ("a <", "Unclosed start tag at byte offset 2"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ('<a href="x>y', "Unclosed start tag at byte offset 0"),
    ],
)
async def test_invalid_html_is_rejected(bot: Bot, text: str, error: str) -> None:
    with pytest.raises(BadRequest, match=f"(?i)^can't parse entities: {re.escape(error)}"):
        await bot.send_message(USER, text, parse_mode="HTML")


async def test_valid_html_becomes_text_and_entities(api: FakeBotApi, bot: Bot) -> None:
    text = (
        '<b>Hi</b> &lt;you&gt; <a href="https://example.org/?a=1&amp;b=2">link</a> '
        '<span class="tg-spoiler">🙈</span> <pre><code class="language-py">x</code></pre>'
    )
    message = await bot.send_message(USER, text, parse_mode="HTML")
    assert message.text == "Hi <you> link 🙈 x"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 2),
        ("text_link", 9, 4),
        ("spoiler", 14, 2),
        ("pre", 17, 1),
    ]
    assert message.entities[1].url == "https://example.org/?a=1&b=2"
    assert message.entities[3].language == "py"
    nested = await bot.send_message(USER, "<b>a<i>b</i></b>", parse_mode="HTML")
    assert [(e.type, e.offset, e.length) for e in nested.entities] == [
        ("bold", 0, 2),
        ("italic", 1, 1),
    ]
    assert api.messages(USER)[0].text == text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": "x" * 4097}, "Message is too long"),
        ({"text": "  \n"}, "Message text is empty"),
        ({"text": "<b> </b>", "parse_mode": "HTML"}, "Message text is empty"),
        ({"text": "x", "reply_markup": "KEYBOARD"}, "Button_data_invalid"),
        ({"text": "x", "chat_id": 7}, "Chat not found"),
    ],
)
async def test_send_message_validation(bot: Bot, kwargs: dict[str, object], error: str) -> None:
    if kwargs.get("reply_markup") == "KEYBOARD":
        kwargs["reply_markup"] = _keyboard("x" * 65)
    assert (await bot.send_message(USER, "x" * 4096)).text == "x" * 4096
    with pytest.raises(BadRequest, match=error):
        await bot.send_message(**{"chat_id": USER, **kwargs})  # type: ignore[arg-type]


async def test_edits_and_deletes(api: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(USER, "v1", reply_markup=_keyboard("a"))
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("v1", USER, sent.message_id, reply_markup=_keyboard("a"))
    edited = await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=_keyboard("b"))
    assert isinstance(edited, type(sent)) and edited.edit_date is not None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=_keyboard("b"))
    await bot.edit_message_text("v2", USER, sent.message_id)
    [record] = api.messages(USER)
    assert (record.text, record.reply_markup, record.deleted) == ("v2", None, False)
    assert await bot.delete_message(USER, sent.message_id)
    assert record.deleted
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("v3", USER, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(USER, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("v3", USER, 999)


async def test_commands_are_stored_per_scope(api: FakeBotApi, bot: Bot) -> None:
    await bot.set_my_commands([("start", "Begin"), ("help", "Get help")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert api.commands == [
        {"command": "start", "description": "Begin"},
        {"command": "help", "description": "Get help"},
    ]
    assert await bot.get_my_commands(language_code="de") == ()
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Start", "Begin")])
    await bot.delete_my_commands()
    assert (await bot.get_my_commands(), api.commands) == ((), [])


async def test_token_and_unknown_methods(api: FakeBotApi, bot: Bot) -> None:
    assert api.base_url == f"http://127.0.0.1:{api.port}/bot"
    for token in ("999:WRONG", "not-a-token"):
        with pytest.raises(InvalidToken, match="was rejected by the server"):
            async with Bot(token, base_url=api.base_url):
                pass
    assert [request.method for request in api.requests[-2:]] == ["getMe", "getMe"]
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendRocket")
    assert await bot.close() and await bot.log_out()


async def test_wait_for_reports_what_arrived(api: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(USER, "only one")
    with pytest.raises(TimeoutError, match=r"expected 2 messages .* got \['only one'\]"):
        await api.wait_for_messages(USER, 2, timeout=0.1)


def _keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(item, callback_data=item) for item in data]])
