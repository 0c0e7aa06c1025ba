"""A fake Telegram Bot API server for tests and benchmarks.

:class:`FakeBotApi` is a real HTTP server on 127.0.0.1 (random free port) that speaks the Bot API
wire format, so the real python-telegram-bot ``Application``/``Bot`` can talk to it unmodified::

    async with FakeBotApi(token="123:ABC") as api:
        app = Application.builder().token(api.token).base_url(api.base_url).build()
        async with run_polling(app):
            await api.send_text(42, "/start")
            [reply] = await api.wait_for_messages(42, 1)

As a pytest fixture (pytest-asyncio, ``asyncio_mode = "auto"``)::

    @pytest.fixture
    async def bot_api() -> AsyncIterator[FakeBotApi]:
        async with FakeBotApi() as api:
            yield api

The test side plays the users (``send_text``, ``press_button``, ``block``, ...), inspects what the
bot did (``messages``, ``requests``, ``callback_answers``, ``commands``) and injects faults
(``fail``, ``delay``, ``drop``, ``garble``, ``outage``, optional flood limits; ``send_raw``
serves malformed updates verbatim and ``hold_updates`` gathers several into one batch).
After ``setWebhook`` it delivers updates as Telegram does instead: each POSTed to the URL
with the ``X-Telegram-Bot-Api-Secret-Token`` header, at most ``max_connections`` at a time
and one per user at a time, an update leaving the queue only when answered 200 (otherwise it
is posted again shortly); ``getUpdates`` is then refused with 409. Errors
are answered exactly as Telegram does (``{"ok": false, "error_code": ..., "description": ...}``),
so PTB raises its real ``BadRequest``, ``Forbidden``, ``RetryAfter``, ``NetworkError`` and
``TimedOut``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Self, TypedDict, TypeVar, Unpack

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

if TYPE_CHECKING:
    from telegram.ext import Application

JSONDict = dict[str, Any]
ChatType = Literal["private", "group", "supergroup"]
_T = TypeVar("_T")

MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
DEFAULT_GROUP_CHAT_ID = -4_000_000_001
DEFAULT_SUPERGROUP_CHAT_ID = -1_001_000_000_001

_TOKEN_RE = re.compile(r"\d+:[\w-]+")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_HTML_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_HTML_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

# PTB sends every non-string value JSON-encoded; these are the names we decode back.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
    }
)
_INT_PARAMS = frozenset(
    {"chat_id", "message_id", "offset", "limit", "message_thread_id", "cache_time", "user_id",
     "max_connections"}
)
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "disable_web_page_preview",
        "allow_sending_without_reply",
    }
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
#: Key of a queued update that is served as raw JSON text (see :meth:`FakeBotApi.send_raw`).
_RAW = "\x00raw"
_RATE_LIMITED = frozenset({"sendmessage", "editmessagetext", "editmessagereplymarkup"})

_MEMBER: JSONDict = {"status": "member"}
_KICKED: JSONDict = {"status": "kicked", "until_date": 0}
_BLOCKED = "Forbidden: bot was blocked by the user"
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """An error answer of the Bot API.

    Args:
        status: HTTP status and ``error_code``.
        description: Telegram's ``description``, e.g. ``"Bad Request: chat not found"``.
        retry_after: Seconds for ``parameters.retry_after`` (flood control).
    """

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


class ApiRequest(NamedTuple):
    """One request the bot made: canonical method name, decoded parameters, and when it
    arrived (``time.monotonic()``)."""

    method: str
    params: JSONDict
    at: float = 0.0


@dataclass
class SentMessage:
    """Current state of a message the bot sent.

    Attributes:
        chat_id: Chat it was sent to.
        message_id: Its id within the chat.
        text: Text as the bot sent it (with markup, before entity parsing).
        parse_mode: Parse mode as sent, or None.
        reply_markup: Reply markup as sent (any kind of keyboard), or None.
        plain_text: Text after entity parsing, as Telegram shows it.
        entities: Entities produced by parsing ``text``.
        date: Unix time it was sent.
        edit_date: Unix time of the last edit, or None.
        deleted: Whether the bot deleted it.
        document: For a ``sendDocument`` message: ``file_name``, ``mime_type`` and the uploaded
            ``content`` (bytes); None for text messages. Its caption is ``text``.
    """

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_markup: JSONDict | None
    plain_text: str
    entities: list[JSONDict]
    date: int
    edit_date: int | None = None
    deleted: bool = False
    document: JSONDict | None = None


@dataclass(frozen=True)
class CallbackAnswer:
    """An ``answerCallbackQuery`` call."""

    callback_query_id: str
    text: str | None
    show_alert: bool


class Sender(TypedDict, total=False):
    """Who sends a simulated message, and where.

    ``chat_id`` defaults to the user's private chat, or to :data:`DEFAULT_GROUP_CHAT_ID` /
    :data:`DEFAULT_SUPERGROUP_CHAT_ID` for group chats.
    """

    first_name: str
    chat_type: ChatType
    chat_id: int | None


@dataclass
class _Fault:
    method: str | None
    times: int | None
    kind: Literal["fail", "delay", "drop", "garble"]
    processed: bool
    status: int = 500
    description: str = ""
    retry_after: int | None = None
    seconds: float = 0.0


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def wait(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class _HtmlError(Exception):
    pass


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Parse Telegram HTML into plain text and entities, with tdlib's error messages."""
    if "<" not in text and "&" not in text:
        return text, []

    def at(pos: int) -> str:
        return f"at byte offset {len(text[:pos].encode())}"

    out: list[str] = []
    entities: list[JSONDict] = []
    stack: list[tuple[str, dict[str, str], int]] = []
    utf16 = 0
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "&" and (match := _HTML_ENTITY_RE.match(text, i)):
            decoded = _decode_entity(match)
            out.append(decoded)
            utf16 += _utf16_len(decoded)
            i = match.end()
        elif char != "<":
            j = i + 1
            while j < n and text[j] not in "<&":
                j += 1
            out.append(text[i:j])
            utf16 += _utf16_len(text[i:j])
            i = j
        elif text.startswith("</", i):
            end = text.find(">", i)
            if end < 0:
                raise _HtmlError(f"Unclosed end tag {at(i)}")
            if not stack:
                raise _HtmlError(f"Unexpected end tag {at(i)}")
            name = text[i + 2 : end].strip().lower()
            tag, attrs, begin = stack.pop()
            if name and name != tag:
                raise _HtmlError(
                    f'Unmatched end tag {at(i)}, expected "</{tag}>", found "</{name}>"'
                )
            if utf16 > begin:
                _add_entity(entities, tag, attrs, begin, utf16 - begin)
            i = end + 1
        else:
            j = i + 1
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            if j >= n:
                raise _HtmlError(f"Unclosed start tag {at(i)}")
            tag = text[i + 1 : j].lower()
            if tag not in _HTML_TAG_TYPES:
                raise _HtmlError(f'Unsupported start tag "{tag}" {at(i)}')
            attrs, j = _parse_attributes(text, j, tag, i, at)
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise _HtmlError(f'Tag "span" must have class "tg-spoiler" {at(i)}')
            if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
                raise _HtmlError("Invalid custom emoji identifier specified")
            stack.append((tag, attrs, utf16))
            i = j
    if stack:
        raise _HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _decode_entity(match: re.Match[str]) -> str:
    dec, hexa, named = match.groups()
    return _HTML_NAMED[named] if named else chr(int(dec or hexa, 10 if dec else 16))


def _parse_attributes(
    text: str, i: int, tag: str, start: int, at: Callable[[int], str]
) -> tuple[dict[str, str], int]:
    """Parse the attributes of the tag opened at ``start``; return them and the end index."""
    attrs: dict[str, str] = {}
    n = len(text)
    where = at(start)
    unclosed = _HtmlError(f"Unclosed start tag {where}")
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise unclosed
        if text[i] == ">":
            return attrs, i + 1
        j = i
        while j < n and not text[j].isspace() and text[j] not in "=>/\"'":
            j += 1
        name = text[i:j].lower()
        if not name:
            raise _HtmlError(f'Empty attribute name in the tag "{tag}" {where}')
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise unclosed
        if text[j] != "=":
            attrs[name] = ""
            i = j
            continue
        j += 1
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise unclosed
        if text[j] in "\"'":
            end = text.find(text[j], j + 1)
            if end < 0:
                raise unclosed
            attrs[name] = _HTML_ENTITY_RE.sub(_decode_entity, text[j + 1 : end])
            i = end + 1
        else:
            k = j
            while k < n and ((text[k].isascii() and text[k].isalnum()) or text[k] in ".-"):
                k += 1
            if k < n and not text[k].isspace() and text[k] != ">":
                raise _HtmlError(f"Unexpected end of name token {at(k)}")
            attrs[name] = text[j:k].lower()
            i = k


def _add_entity(
    entities: list[JSONDict], tag: str, attrs: dict[str, str], offset: int, length: int
) -> None:
    entity: JSONDict = {"type": _HTML_TAG_TYPES[tag], "offset": offset, "length": length}
    if tag == "a":
        if not attrs.get("href"):
            return
        entity["url"] = attrs["href"]
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs["emoji-id"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "code" and attrs.get("class", "").startswith("language-"):
        entity["language"] = attrs["class"].removeprefix("language-")
    elif tag == "pre" and entities and entities[-1]["type"] == "code":
        inner = entities[-1]
        if (inner["offset"], inner["length"]) == (offset, length):
            entities.pop()
            if "language" in inner:
                entity["language"] = inner["language"]
    entities.append(entity)


def _render(text: Any, parse_mode: str | None) -> tuple[str, list[JSONDict]]:
    """Validate message text like Telegram and return it parsed (plain text, entities)."""
    raw = text.strip() if isinstance(text, str) else ""
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            plain, entities = _parse_html(raw)
        except _HtmlError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    elif mode in ("", "markdown", "markdownv2"):
        plain, entities = raw, []
    else:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    plain = plain.rstrip()
    if not plain.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(plain) > MAX_TEXT_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    size = _utf16_len(plain)
    clamped = []
    for entity in entities:
        length = min(entity["length"], size - entity["offset"])
        if length > 0:
            clamped.append({**entity, "length": length})
    return plain, clamped


def _text_content(text: str) -> JSONDict:
    """A user's text message content; a leading ``/command`` gets a bot_command entity."""
    content: JSONDict = {"text": text}
    if command := _COMMAND_RE.match(text):
        length = _utf16_len(command.group())
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return content


def _check_markup(markup: Any) -> JSONDict | None:
    """Validate ``reply_markup`` like Telegram; return it (None when absent)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button: rows expected")
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise ApiError(400, "Bad Request: can't parse inline keyboard button: text expected")
        if len(button) == 1:
            raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _coerce(name: str, value: Any) -> Any:
    """Turn a form value back into the type the Bot API expects for ``name``."""
    if not isinstance(value, str):
        return value
    try:
        if name in _JSON_PARAMS:
            return json.loads(value)
        if name in _INT_PARAMS:
            return int(value)
        if name in _FLOAT_PARAMS:
            return float(value)
    except ValueError:
        if name in _JSON_PARAMS:
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
        return value
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value


def _int_param(params: JSONDict, name: str, missing: str) -> int:
    value = params.get(name)
    if not isinstance(value, int):
        raise ApiError(400, f"Bad Request: {missing}")
    return value


def _error_response(error: ApiError) -> web.Response:
    body: JSONDict = {"ok": False, "error_code": error.status, "description": error.description}
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return _json_response(body, error.status)


def _json_response(body: JSONDict, status: int = 200) -> web.Response:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(body=payload, status=status, content_type="application/json")


def _updates_response(batch: list[JSONDict]) -> web.Response:
    """A getUpdates answer; raw updates (:meth:`FakeBotApi.send_raw`) go in verbatim."""
    parts = [
        update[_RAW] if _RAW in update else json.dumps(update, ensure_ascii=False)
        for update in batch
    ]
    payload = ('{"ok":true,"result":[' + ",".join(parts) + "]}").encode()
    return web.Response(body=payload, content_type="application/json")


class FakeBotApi:
    """A fake Telegram Bot API server; use it as an async context manager.

    Args:
        token: The only token accepted; others get 401 Unauthorized (404 if malformed).
        username: The bot's username, as returned by ``getMe``.
        rate_limits: Enforce Telegram-like flood limits on send/edit methods: about one message
            per second per chat (bursts of 3) and 30 per second overall, answered with 429.

    Attributes:
        requests: Every request received, in order.
        callback_answers: Every ``answerCallbackQuery`` that succeeded, in order.
        commands: The command list of the last ``setMyCommands`` ([] after ``deleteMyCommands``).
        sent_count: Messages sent by ``sendMessage`` so far, in all chats.
        deliveries: How often each update id was handed out by ``getUpdates`` or posted to
            the webhook.
        webhook_answers: The HTTP status of every webhook delivery, in order.
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        username: str = "rehearse_test_bot",
        rate_limits: bool = False,
    ) -> None:
        if not _TOKEN_RE.fullmatch(token):
            raise ValueError(f"malformed bot token {token!r}")
        self.token = token
        self.requests: list[ApiRequest] = []
        #: The most calls of a method (lower case) in progress at once: in all, and to one chat.
        self.peak_calls: Counter[str] = Counter()
        self.peak_calls_per_chat: Counter[str] = Counter()
        #: Requests refused with 429 by the flood limits (``rate_limits``).
        self.flood_refusals = 0
        self._calls: Counter[tuple[str, object]] = Counter()
        self.callback_answers: list[CallbackAnswer] = []
        self.commands: list[JSONDict] = []
        self.sent_count = 0
        self.deliveries: Counter[int] = Counter()
        self._bot_user: JSONDict = {
            "id": int(token.split(":", maxsplit=1)[0]),
            "is_bot": True,
            "first_name": "Rehearse",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._bot_from = {key: self._bot_user[key] for key in ("id", "is_bot", "first_name")}
        self._bot_from["username"] = username
        self._rate_limits = rate_limits
        self._methods: dict[str, tuple[str, Callable[[JSONDict], Awaitable[Any]]]] = {
            name.lower(): (name, handler)
            for name, handler in [
                ("getMe", self._get_me),
                ("getUpdates", self._get_updates),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("setMyCommands", self._set_my_commands),
                ("getMyCommands", self._get_my_commands),
                ("deleteMyCommands", self._delete_my_commands),
                ("sendMessage", self._send_message),
                ("editMessageText", self._edit_message_text),
                ("editMessageReplyMarkup", self._edit_message_reply_markup),
                ("deleteMessage", self._delete_message),
                ("answerCallbackQuery", self._answer_callback_query),
                ("sendChatAction", self._send_chat_action),
                ("sendDocument", self._send_document),
                ("close", self._true),
                ("logOut", self._true),
            ]
        }
        self._cond = asyncio.Condition()
        self._closing = asyncio.Event()
        self._updates: deque[tuple[str, JSONDict]] = deque()
        self._last_update_id = 0
        self._holding = False
        self._poll_generation = 0
        self._allowed_updates: frozenset[str] | None = None
        self._chats: dict[int, JSONDict] = {}
        self._names: dict[int, str] = {}
        self._languages: dict[int, str] = {}
        self._blocked: set[int] = set()
        self._next_message_id: dict[int, int] = {}
        self._sent: dict[int, dict[int, SentMessage]] = {}
        self._incoming: dict[int, dict[int, JSONDict]] = {}
        self._open_queries: set[str] = set()
        self._last_query_id = 0
        self._last_file_id = 0
        self._command_sets: dict[tuple[str, str], list[JSONDict]] = {}
        self._faults: list[_Fault] = []
        self._outage_until = 0.0
        self._outage_drops = False
        self._buckets: dict[int | None, _Bucket] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.webhook_answers: list[int] = []
        self._webhook: JSONDict | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._posting: set[int] = set()  # update ids being posted right now

    # Lifecycle

    @property
    def port(self) -> int:
        """The TCP port the server listens on (after :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The value for PTB's ``base_url`` (``.../bot``; PTB appends the token)."""
        return f"http://127.0.0.1:{self._port}/bot"

    async def start(self) -> None:
        """Start listening on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Answer pending long polls and delays, then stop the server."""
        self._closing.set()
        await self._notify()
        await self._stop_webhook()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Simulated users

    def add_user(self, user_id: int, first_name: str = "Ada") -> None:
        """Make a private chat known without an update, as if the user started the bot earlier."""
        self._chat(user_id, first_name, "private", None)

    async def send_text(self, user_id: int, text: str, **sender: Unpack[Sender]) -> int:
        """Queue a text message from a user; a leading ``/command`` gets a bot_command entity.

        Returns:
            The update_id.
        """
        return await self._user_message(user_id, _text_content(text), sender)

    async def send_sticker(self, user_id: int, emoji: str = "🙂", **sender: Unpack[Sender]) -> int:
        """Queue a regular sticker from a user; returns the update_id."""
        sticker = self._file(
            width=512, height=512, type="regular", is_animated=False, is_video=False, emoji=emoji
        )
        return await self._user_message(user_id, {"sticker": sticker}, sender)

    async def send_photo(
        self, user_id: int, caption: str | None = None, **sender: Unpack[Sender]
    ) -> int:
        """Queue a photo (two sizes) from a user; returns the update_id."""
        sizes = [self._file(width=90, height=90), self._file(width=1280, height=1280)]
        return await self._user_message(user_id, {"photo": sizes, "caption": caption}, sender)

    async def send_voice(self, user_id: int, duration: int = 3, **sender: Unpack[Sender]) -> int:
        """Queue a voice note from a user; returns the update_id."""
        voice = self._file(duration=duration, mime_type="audio/ogg")
        return await self._user_message(user_id, {"voice": voice}, sender)

    async def send_document(
        self,
        user_id: int,
        file_name: str = "notes.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        **sender: Unpack[Sender],
    ) -> int:
        """Queue a document from a user; returns the update_id."""
        document = self._file(file_name=file_name, mime_type=mime_type)
        return await self._user_message(user_id, {"document": document, "caption": caption}, sender)

    async def send_location(
        self, user_id: int, latitude: float, longitude: float, **sender: Unpack[Sender]
    ) -> int:
        """Queue a location from a user; returns the update_id."""
        location = {"latitude": latitude, "longitude": longitude}
        return await self._user_message(user_id, {"location": location}, sender)

    async def edit_text(
        self, user_id: int, message_id: int, new_text: str, chat_id: int | None = None
    ) -> int:
        """Queue an ``edited_message`` update for a text the user sent earlier.

        Args:
            user_id: The author.
            message_id: The user's message (see :meth:`user_messages`).
            new_text: Its new text.
            chat_id: The chat, if not the user's private chat.

        Returns:
            The update_id.
        """
        where = user_id if chat_id is None else chat_id
        message = self._incoming.get(where, {}).get(message_id)
        if message is None or message["from"]["id"] != user_id or "text" not in message:
            raise ValueError(f"user {user_id} sent no text message {message_id} in {where}")
        message.pop("entities", None)
        message.update(_text_content(new_text), edit_date=int(time.time()))
        return await self._queue_update("edited_message", dict(message))

    async def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        verify: bool = True,
    ) -> int:
        """Queue a callback_query for an inline button of a bot message.

        Args:
            user_id: Who presses it.
            message_id: The bot message carrying the keyboard.
            data: The button's callback_data.
            chat_id: The message's chat, if not the user's private chat.
            verify: Require that the message exists and shows a button with this data; with
                False, forged or stale presses are delivered too (for a missing or deleted
                message, Telegram's InaccessibleMessage is referenced).

        Returns:
            The update_id; the callback query id is the string form of a counter.
        """
        where = user_id if chat_id is None else chat_id
        if where == user_id:
            self.add_user(user_id, self._names.get(user_id, "Ada"))
        if where not in self._chats:
            raise ValueError(f"chat {where} is unknown")
        sent = self._sent.get(where, {}).get(message_id)
        if verify:
            buttons = [
                button.get("callback_data")
                for row in ((sent.reply_markup or {}).get("inline_keyboard", []) if sent else [])
                for button in row
            ]
            if sent is None or sent.deleted or data not in buttons:
                raise ValueError(f"message {message_id} in {where} shows no button {data!r}")
        self._last_query_id += 1
        query_id = str(self._last_query_id)
        self._open_queries.add(query_id)
        message = (
            self._message_json(sent)
            if sent is not None and not sent.deleted
            else {"chat": self._chats[where], "message_id": message_id, "date": 0}
        )
        query = {
            "id": query_id,
            "from": self._user(user_id),
            "chat_instance": str(where),
            "message": message,
            "data": data,
        }
        return await self._queue_update("callback_query", query)

    def text_update(self, user_id: int, text: str, **sender: Unpack[Sender]) -> JSONDict:
        """A text message update as :meth:`send_text` would queue it, not queued yet.

        The update id is taken (later updates get higher ones); change the dict as an attack
        needs and queue it with :meth:`send_raw`.
        """
        chat = self._chat(
            user_id,
            sender.get("first_name", "Ada"),
            sender.get("chat_type", "private"),
            sender.get("chat_id"),
        )
        message: JSONDict = {
            "message_id": self._new_message_id(chat["id"]),
            "from": self._user(user_id),
            "chat": chat,
            "date": int(time.time()),
            **_text_content(text),
        }
        self._last_update_id += 1
        return {"update_id": self._last_update_id, "message": message}

    async def send_raw(self, update: JSONDict | str, *, update_id: int | None = None) -> int:
        """Queue an update that is served exactly as given, however malformed.

        Args:
            update: A dict, served as JSON (ASCII-escaped, so lone surrogates survive as
                ``\\ud800``), whatever its fields; or JSON text, spliced into the
                ``getUpdates`` result unparsed (it may be invalid or nested 100,000 deep).
            update_id: The id by which this server confirms it: an ``offset`` above it
                confirms it, as with Telegram. Defaults to the dict's ``update_id`` when that
                is an int, else to a new id.

        Returns:
            That id.
        """
        own = update.get("update_id") if isinstance(update, dict) else None
        if update_id is None:
            update_id = own if isinstance(own, int) and not isinstance(own, bool) else (
                self._last_update_id + 1)
        self._last_update_id = max(self._last_update_id, update_id)
        raw = json.dumps(update) if isinstance(update, dict) else update
        self._updates.append(("raw", {"update_id": update_id, _RAW: raw}))
        await self._notify()
        return update_id

    def hold_updates(self) -> None:
        """Deliver no updates until :meth:`release_updates` (to make one batch of several)."""
        self._holding = True

    async def release_updates(self) -> None:
        """Deliver held updates again: the next ``getUpdates`` gets them all at once."""
        self._holding = False
        await self._notify()

    async def block(self, user_id: int) -> int:
        """Block the bot: later sends to the user's chat get 403; queues ``my_chat_member``."""
        self._blocked.add(user_id)
        return await self._member_update(user_id, _MEMBER, _KICKED)

    async def unblock(self, user_id: int) -> int:
        """Unblock the bot again; queues ``my_chat_member`` (kicked → member)."""
        self._blocked.discard(user_id)
        return await self._member_update(user_id, _KICKED, _MEMBER)

    # Inspection

    def messages(self, chat_id: int) -> list[SentMessage]:
        """What the bot sent to a chat, oldest first, in its current state (edits, deletes)."""
        return list(self._sent.get(chat_id, {}).values())

    def user_messages(self, chat_id: int) -> list[JSONDict]:
        """The Message objects simulated users sent to a chat (current state), oldest first."""
        return list(self._incoming.get(chat_id, {}).values())

    def calls(self, method: str) -> list[JSONDict]:
        """The parameters of every request to ``method`` (case-insensitive)."""
        method = method.lower()
        return [request.params for request in self.requests if request.method.lower() == method]

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by the bot."""
        return len(self._updates)

    async def wait_for(
        self,
        predicate: Callable[[], _T],
        timeout: float = 5.0,  # noqa: ASYNC109 - a default deadline keeps test code short
    ) -> _T:
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate is re-evaluated after every request and every queued update.

        Raises:
            TimeoutError: If it stays falsy for ``timeout`` seconds.
        """
        async with self._cond:
            try:
                async with asyncio.timeout(timeout):
                    return await self._cond.wait_for(predicate)
            except TimeoutError:
                raise TimeoutError(f"condition not met within {timeout} s") from None

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - as in wait_for
    ) -> list[SentMessage]:
        """Wait until the bot has sent at least ``count`` messages to a chat; return them all.

        Raises:
            TimeoutError: If fewer arrive within ``timeout`` seconds.
        """
        try:
            return await self.wait_for(
                lambda: self.messages(chat_id) if len(self._sent.get(chat_id, {})) >= count else [],
                timeout,
            )
        except TimeoutError:
            texts = [message.text for message in self.messages(chat_id)]
            raise TimeoutError(
                f"expected {count} messages in chat {chat_id} within {timeout} s, got {texts}"
            ) from None

    # Fault injection

    def fail(
        self,
        method: str | None = None,
        *,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        processed: bool = False,
    ) -> None:
        """Answer the next calls of ``method`` (None: any method) with an error.

        Args:
            method: Bot API method name (case-insensitive), or None for every method.
            status: HTTP status / error_code; 429 gets ``retry_after`` 1 unless given.
            description: Defaults to Telegram's wording for the status.
            retry_after: Seconds for ``parameters.retry_after`` (PTB raises RetryAfter).
            times: How many calls fail; None for all until :meth:`clear_faults`.
            processed: Carry out the call first (Telegram acted, but the answer is an error).
        """
        if status == HTTPStatus.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 1
        if description is None:
            description = HTTPStatus(status).phrase
            if retry_after is not None:
                description += f": retry after {retry_after}"
        self._add_fault(
            _Fault(
                method,
                times,
                "fail",
                processed,
                status=status,
                description=description,
                retry_after=retry_after,
            )
        )

    def delay(
        self,
        method: str | None,
        seconds: float,
        *,
        times: int | None = 1,
        processed: bool = False,
    ) -> None:
        """Answer the next calls of ``method`` (None: any) ``seconds`` late.

        Args:
            method: Bot API method name, or None for every method.
            seconds: Added latency.
            times: How many calls; None for all until :meth:`clear_faults`.
            processed: Carry out the call before waiting (a client that times out and retries
                then causes a duplicate, as with the real API); otherwise only after the wait,
                and not at all if the client hangs up first.
        """
        self._add_fault(_Fault(method, times, "delay", processed, seconds=seconds))

    def drop(
        self, method: str | None = None, *, times: int | None = 1, processed: bool = False
    ) -> None:
        """Close the connection instead of answering the next calls of ``method`` (None: any).

        Args:
            method: Bot API method name, or None for every method.
            times: How many calls; None for all until :meth:`clear_faults`.
            processed: Carry out the call before dropping the connection.
        """
        self._add_fault(_Fault(method, times, "drop", processed))

    def garble(
        self, method: str | None = None, *, times: int | None = 1, processed: bool = False
    ) -> None:
        """Answer the next calls of ``method`` (None: any) "ok" with a result of the wrong
        type (``5``), which python-telegram-bot cannot read (a broken server or proxy).

        Args:
            method: Bot API method name, or None for every method.
            times: How many calls; None for all until :meth:`clear_faults`.
            processed: Carry out the call first.
        """
        self._add_fault(_Fault(method, times, "garble", processed))

    def outage(self, seconds: float, *, drop: bool = False) -> None:
        """Fail every request for ``seconds``: 502 Bad Gateway, or dropped connections."""
        self._outage_until = time.monotonic() + seconds
        self._outage_drops = drop

    def clear_faults(self) -> None:
        """Remove all pending faults and end any outage."""
        self._faults.clear()
        self._outage_until = 0.0

    # HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        token, _, method = path.removeprefix("bot").partition("/")
        name, handler = self._methods.get(method.lower(), (method, None))
        calling: list[tuple[str, object]] = []
        try:
            params = await self._read_params(request)
            self.requests.append(ApiRequest(name, params, time.monotonic()))
            calling = [(name.lower(), None), (name.lower(), params.get("chat_id"))]
            self._count_call(calling, +1)
            if time.monotonic() < self._outage_until:
                if self._outage_drops:
                    self._hang_up(request)
                    return web.Response()
                raise ApiError(502, "Bad Gateway")
            if not path.startswith("bot") or token != self.token:
                if _TOKEN_RE.fullmatch(token):
                    raise ApiError(401, "Unauthorized")
                raise ApiError(404, "Not Found")
            if handler is None:
                raise ApiError(404, "Not Found")
            fault = self._take_fault(name)
            if fault and fault.kind == "garble" and not fault.processed:
                return _json_response({"ok": True, "result": 5})
            if fault and not fault.processed and await self._apply_fault(fault, request):
                return web.Response()
            if self._rate_limits and name.lower() in _RATE_LIMITED:
                self._check_rate(params.get("chat_id"), time.monotonic())
            result = await handler(params)
            if fault and fault.kind == "garble":
                return _json_response({"ok": True, "result": 5})
            if fault and fault.processed and await self._apply_fault(fault, request):
                return web.Response()
            if name == "getUpdates":
                return _updates_response(result)
            return _json_response({"ok": True, "result": result})
        except ApiError as error:
            return _error_response(error)
        finally:
            self._count_call(calling, -1)
            await self._notify()

    def _count_call(self, keys: list[tuple[str, object]], change: int) -> None:
        for key in keys:
            self._calls[key] += change
        if change > 0:
            (method, _), (_, chat) = keys
            self.peak_calls[method] = max(self.peak_calls[method], self._calls[method, None])
            if chat is not None:
                self.peak_calls_per_chat[method] = max(self.peak_calls_per_chat[method],
                                                       self._calls[method, chat])

    async def _read_params(self, request: web.Request) -> JSONDict:
        raw: JSONDict = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                raw.update(body)
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    raw[key] = value.file.read()
                    raw[f"{key}_filename"] = value.filename
                    raw[f"{key}_mime_type"] = value.content_type
                else:
                    raw[key] = value
        return {key: _coerce(key, value) for key, value in raw.items()}

    def _add_fault(self, fault: _Fault) -> None:
        fault.method = fault.method.lower() if fault.method else None
        self._faults.append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        method = method.lower()
        for fault in self._faults:
            if fault.method in (None, method):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    async def _apply_fault(self, fault: _Fault, request: web.Request) -> bool:
        """Carry out a fault; return whether the connection was closed."""
        if fault.kind == "fail":
            raise ApiError(fault.status, fault.description, fault.retry_after)
        if fault.kind == "drop":
            self._hang_up(request)
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), fault.seconds)
        return False

    @staticmethod
    def _hang_up(request: web.Request) -> None:
        """Close the connection; aiohttp then silently drops the response."""
        if request.transport is not None:
            request.transport.close()

    def _check_rate(self, chat_id: Any, now: float) -> None:
        keys = [chat_id if isinstance(chat_id, int) else 0, None]
        buckets = [
            self._buckets.setdefault(
                key, _Bucket(30.0, 30.0, 30.0, now) if key is None else _Bucket(1.0, 3.0, 3.0, now)
            )
            for key in keys
        ]
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            self.flood_refusals += 1
            retry_after = math.ceil(wait)
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        for bucket in buckets:
            bucket.tokens -= 1

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # Bot API methods

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return self._bot_user

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is "
                                "active; use deleteWebhook to delete the webhook first")
        offset = params.get("offset", 0)
        limit = params.get("limit", 100)
        limit = min(max(limit, 1), 100) if isinstance(limit, int) else 100
        timeout = params.get("timeout", 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if isinstance(offset, int) and offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        elif isinstance(offset, int):
            # Every update below the offset is confirmed, wherever it is in the queue.
            self._updates = deque(u for u in self._updates if u[1]["update_id"] >= offset)
        self._poll_generation += 1
        generation = self._poll_generation
        batch = self._deliverable(limit)
        if batch or not isinstance(timeout, int | float) or timeout <= 0:
            return self._deliver(batch)
        await self._notify()  # wakes an older long poll, which then ends with 409 Conflict
        async with self._cond:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._cond.wait_for(
                        lambda: (
                            generation != self._poll_generation
                            or self._closing.is_set()
                            or bool(self._deliverable(1))
                        )
                    )
        if generation != self._poll_generation:
            raise ApiError(409, _CONFLICT)
        return self._deliver(self._deliverable(limit))

    def _deliver(self, batch: list[JSONDict]) -> list[JSONDict]:
        self.deliveries.update(update["update_id"] for update in batch)
        return batch

    def _deliverable(self, limit: int) -> list[JSONDict]:
        if self._holding:
            return []
        allowed = self._allowed_updates
        batch: list[JSONDict] = []
        for kind, update in self._updates:
            if kind == "raw" or (
                (kind not in _NOT_DELIVERED_BY_DEFAULT) if allowed is None else (kind in allowed)
            ):
                batch.append(update)
                if len(batch) >= limit:
                    break
        return batch

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        await self._stop_webhook()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {
            "url": (self._webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
            "max_connections": (self._webhook or {}).get("max_connections", 40),
        }

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        await self._stop_webhook()
        self._webhook = {"url": url, "secret_token": secret,
                         "max_connections": params.get("max_connections") or 40}
        self._webhook_task = asyncio.create_task(self._post_updates(dict(self._webhook)))
        return True

    async def _stop_webhook(self) -> None:
        self._webhook = None
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _post_updates(self, webhook: JSONDict) -> None:
        """Telegram's side of a webhook: post queued updates until the webhook goes."""
        headers = {"Content-Type": "application/json"}
        if webhook["secret_token"]:
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
        slots = asyncio.Semaphore(int(webhook["max_connections"]))
        posts: set[asyncio.Task[None]] = set()
        # A connection per post, as Telegram opens several: workers listening on one port
        # each get some.
        async with ClientSession(timeout=ClientTimeout(total=30),
                                 connector=TCPConnector(force_close=True)) as session:

            async def post(update: JSONDict) -> None:
                body = update[_RAW] if _RAW in update else json.dumps(update,
                                                                      ensure_ascii=False)
                try:
                    async with session.post(webhook["url"], data=body.encode(),
                                            headers=headers) as answer:
                        status = answer.status
                except (ClientError, TimeoutError):
                    status = 0
                finally:
                    slots.release()
                self.webhook_answers.append(status)
                self.deliveries[update["update_id"]] += 1
                if status == HTTPStatus.OK:
                    self._updates = deque(u for u in self._updates if u[1] is not update)
                else:
                    await asyncio.sleep(0.2)  # Telegram tries again later
                self._posting.discard(update["update_id"])
                await self._notify()

            try:
                while True:
                    async with self._cond:
                        await self._cond.wait_for(lambda: bool(self._postable()))
                    for update in self._postable():
                        await slots.acquire()
                        self._posting.add(update["update_id"])
                        task = asyncio.create_task(post(update))
                        posts.add(task)
                        task.add_done_callback(posts.discard)
            finally:
                for task in posts:
                    task.cancel()
                await asyncio.gather(*posts, return_exceptions=True)
                self._posting.clear()

    def _postable(self) -> list[JSONDict]:
        """The oldest queued update of each user who has none being posted."""
        busy = {self._sender_of(u) for u in self._updates_by_id(self._posting)}
        chosen: list[JSONDict] = []
        for update in self._deliverable(len(self._updates) or 1):
            sender = self._sender_of(update)
            if update["update_id"] in self._posting or sender in busy:
                continue
            busy.add(sender)
            chosen.append(update)
        return chosen

    def _updates_by_id(self, ids: set[int]) -> list[JSONDict]:
        return [update for _, update in self._updates if update["update_id"] in ids]

    @staticmethod
    def _sender_of(update: JSONDict) -> object:
        for payload in update.values():
            if isinstance(payload, dict) and isinstance(payload.get("from"), dict):
                return payload["from"].get("id")
        return ("update", update["update_id"])

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not str(command.get("description", "")).strip():
                raise ApiError(400, "Bad Request: command description must be non-empty")
        self._command_sets[self._commands_key(params)] = commands
        self.commands = commands
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self._command_sets.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self._command_sets.pop(self._commands_key(params), None)
        self.commands = []
        return True

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._target_chat(params)
        parse_mode = params.get("parse_mode")
        plain, entities = _render(params.get("text"), parse_mode)
        markup = _check_markup(params.get("reply_markup"))
        sent = SentMessage(
            chat_id=chat["id"],
            message_id=self._new_message_id(chat["id"]),
            text=params["text"],
            parse_mode=parse_mode,
            reply_markup=markup,
            plain_text=plain,
            entities=entities,
            date=int(time.time()),
        )
        self._sent.setdefault(chat["id"], {})[sent.message_id] = sent
        self.sent_count += 1
        return self._message_json(sent)

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        sent = self._message_to_edit(params)
        if sent.document is not None:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        parse_mode = params.get("parse_mode")
        plain, entities = _render(params.get("text"), parse_mode)
        markup = _check_markup(params.get("reply_markup"))
        if (plain, entities, markup) == (sent.plain_text, sent.entities, sent.reply_markup):
            raise ApiError(400, _NOT_MODIFIED)
        sent.text, sent.parse_mode, sent.plain_text = params["text"], parse_mode, plain
        sent.entities, sent.reply_markup = entities, markup
        sent.edit_date = int(time.time())
        return self._message_json(sent)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        sent = self._message_to_edit(params)
        markup = _check_markup(params.get("reply_markup"))
        if markup == sent.reply_markup:
            raise ApiError(400, _NOT_MODIFIED)
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        return self._message_json(sent)

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._target_chat(params)
        message_id = _int_param(params, "message_id", "message identifier is not specified")
        sent = self._sent.get(chat["id"], {}).get(message_id)
        if sent is not None and not sent.deleted:
            sent.deleted = True
        elif self._incoming.get(chat["id"], {}).pop(message_id, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_queries:
            raise ApiError(400, _QUERY_INVALID)
        self._open_queries.discard(query_id)
        self.callback_answers.append(
            CallbackAnswer(query_id, params.get("text"), bool(params.get("show_alert")))
        )
        return True

    async def _send_document(self, params: JSONDict) -> JSONDict:
        """A multipart upload (``document`` is the file's bytes) or a file_id/URL string."""
        chat = self._target_chat(params)
        upload = params.get("document")
        if upload in (None, b"", ""):
            raise ApiError(400, "Bad Request: there is no document in the request")
        caption = params.get("caption")
        parse_mode = params.get("parse_mode")
        plain, entities = ("", []) if not caption else _render(caption, parse_mode)
        markup = _check_markup(params.get("reply_markup"))
        content = upload if isinstance(upload, bytes) else None
        file_name = params.get("document_filename") or (
            "document" if content is not None else str(upload).rsplit("/", 1)[-1]
        )
        sent = SentMessage(
            chat_id=chat["id"],
            message_id=self._new_message_id(chat["id"]),
            text=str(caption or ""),
            parse_mode=parse_mode,
            reply_markup=markup,
            plain_text=plain,
            entities=entities,
            date=int(time.time()),
            document={
                **self._file(
                    file_name=file_name,
                    mime_type=params.get("document_mime_type") or "application/octet-stream",
                ),
                "file_name": file_name,
                "content": content,
            },
        )
        self._sent.setdefault(chat["id"], {})[sent.message_id] = sent
        return self._message_json(sent)

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # Helpers

    def _target_chat(self, params: JSONDict) -> JSONDict:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat["id"] in self._blocked:
            raise ApiError(403, _BLOCKED)
        return chat

    def _message_to_edit(self, params: JSONDict) -> SentMessage:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._target_chat(params)
        message_id = _int_param(params, "message_id", "message identifier is not specified")
        sent = self._sent.get(chat["id"], {}).get(message_id)
        if sent is None or sent.deleted:
            if message_id in self._incoming.get(chat["id"], {}):
                raise ApiError(400, "Bad Request: message can't be edited")
            raise ApiError(400, "Bad Request: message to edit not found")
        return sent

    def _message_json(self, sent: SentMessage) -> JSONDict:
        message: JSONDict = {
            "message_id": sent.message_id,
            "from": self._bot_from,
            "chat": self._chats[sent.chat_id],
            "date": sent.date,
        }
        if sent.document is not None:
            message["document"] = {k: v for k, v in sent.document.items() if k != "content"}
            if sent.plain_text:
                message["caption"] = sent.plain_text
            if sent.entities:
                message["caption_entities"] = sent.entities
        else:
            message["text"] = sent.plain_text
            if sent.entities:
                message["entities"] = sent.entities
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        return message

    def _new_message_id(self, chat_id: int) -> int:
        self._next_message_id[chat_id] = self._next_message_id.get(chat_id, 0) + 1
        return self._next_message_id[chat_id]

    def _user(self, user_id: int) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False,
                          "first_name": self._names.get(user_id, "Ada")}
        if user_id in self._languages:
            user["language_code"] = self._languages[user_id]
        return user

    def set_language(self, user_id: int, language_code: str) -> None:
        """The IETF language code Telegram reports for a user from now on (``de``)."""
        self._languages[user_id] = language_code

    def _chat(
        self, user_id: int, first_name: str, chat_type: ChatType, chat_id: int | None
    ) -> JSONDict:
        self._names[user_id] = first_name
        if chat_type == "private":
            if chat_id not in (None, user_id):
                raise ValueError("a private chat's id is the user's id")
            chat: JSONDict = {"id": user_id, "type": "private", "first_name": first_name}
        else:
            default = DEFAULT_GROUP_CHAT_ID if chat_type == "group" else DEFAULT_SUPERGROUP_CHAT_ID
            chat_id = default if chat_id is None else chat_id
            if chat_id >= 0:
                raise ValueError("group chat ids are negative")
            chat = {"id": chat_id, "type": chat_type, "title": "Test group"}
        self._chats[chat["id"]] = chat
        return chat

    def _file(self, **fields: Any) -> JSONDict:
        self._last_file_id += 1
        number = self._last_file_id
        return {"file_id": f"file-{number}", "file_unique_id": f"unique-{number}", **fields}

    async def _user_message(self, user_id: int, content: JSONDict, sender: Sender) -> int:
        chat = self._chat(
            user_id,
            sender.get("first_name", "Ada"),
            sender.get("chat_type", "private"),
            sender.get("chat_id"),
        )
        message: JSONDict = {
            "message_id": self._new_message_id(chat["id"]),
            "from": self._user(user_id),
            "chat": chat,
            "date": int(time.time()),
            **{key: value for key, value in content.items() if value is not None},
        }
        self._incoming.setdefault(chat["id"], {})[message["message_id"]] = message
        return await self._queue_update("message", dict(message))

    async def _member_update(self, user_id: int, old: JSONDict, new: JSONDict) -> int:
        chat = self._chat(user_id, self._names.get(user_id, "Ada"), "private", None)
        update = {
            "chat": chat,
            "from": self._user(user_id),
            "date": int(time.time()),
            "old_chat_member": {"user": self._bot_from, **old},
            "new_chat_member": {"user": self._bot_from, **new},
        }
        return await self._queue_update("my_chat_member", update)

    async def _queue_update(self, kind: str, payload: JSONDict) -> int:
        self._last_update_id += 1
        self._updates.append((kind, {"update_id": self._last_update_id, kind: payload}))
        await self._notify()
        return self._last_update_id


@contextlib.asynccontextmanager
async def run_polling(app: Application[Any, Any, Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Run a PTB application with fast long polling (1 s) and shut it down cleanly afterwards."""
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
