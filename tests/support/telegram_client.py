"""A simulated Telegram client for end-to-end tests of the bot against the fake Bot API.

:class:`TelegramClient` plays one person in their private chat with the bot: it types text,
presses buttons by their label, and reads the bot's messages in order, remembering which ones
it has already read. The bot sends consecutive texts as one message, a blank line apart
(``bot.telegram._sender.message_runs``), so :meth:`TelegramClient.expect` reads one text at
a time, which may be the first, a middle or the last part of a message. A reply the bot put
into the pressed message (one ``editMessageText``: the question, the choice, the reply) is
read like a new message, the reply part alone::

    ada = TelegramClient(fake_api, 1001, "Ada")
    await ada.send("/start")
    intro = await ada.expect(texts.system("consent.intro"))
    await ada.press("I agree")

:func:`settle` waits (without sleeping blindly) until the bot has handled every queued update
and sent everything in its outbox, so a test can then assert that nothing more was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta

from bot.app import Loaded
from bot.config import Config
from bot.store import Store
from bot.telegram import Pacer, TelegramEdge, Waits
from bot.telegram._sender import JOINER
from tests.support.fake_bot_api import FakeBotApi, JSONDict, SentMessage

_TAGS = re.compile(r"<[^>]+>")
FAR_FUTURE_YEARS = 50


def plain(text: str) -> str:
    """A Telegram-HTML text as the client sees it (tags removed, entities decoded)."""
    return html.unescape(_TAGS.sub("", text)).strip()


#: A choice line the bot put into a pressed message above its reply (see `choice_line`).
_CHOICE = re.compile(r"\n\n» <i>[^<]*</i>\n\n")


def transcript(texts: Iterable[str]) -> str:
    """Texts (of messages, or of outbox rows) as one, each stripped, a blank line apart: the
    same however the bot merged them into messages or put a reply into a pressed message
    (choice lines are left out), so nothing lost, doubled or reordered shows."""
    return _CHOICE.sub(JOINER, JOINER.join(text.strip() for text in texts))


def parts(text: str, known: Collection[str]) -> list[str] | None:
    """The ``known`` texts (stripped) a message's ``text`` is made of, a blank line apart, in
    order; None when it is not made of them (an apology, say)."""
    whole, wanted = text.strip(), {k.strip() for k in known}

    @functools.cache
    def split(at: int) -> tuple[str, ...] | None:
        for part in wanted:
            end = at + len(part)
            if not whole.startswith(part, at):
                continue
            if end == len(whole):
                return (part,)
            rest = split(end + len(JOINER)) if whole.startswith(JOINER, end) else None
            if rest is not None:
                return (part, *rest)
        return None

    found = split(0)
    return None if found is None else list(found)


def opens(whole: str, text: str) -> bool:
    """Whether ``text`` is all of a message's text ``whole`` or its first part (the crisis
    lines, say)."""
    whole, part = whole.strip(), text.strip()
    return whole == part or whole.startswith(part + JOINER)


def labels(message: SentMessage) -> list[str]:
    """The button labels a message shows now (empty once its keyboard was edited away)."""
    markup = message.reply_markup or {}
    return [button["text"] for row in markup.get("inline_keyboard", []) for button in row]


def choice_line(label: str) -> str:
    """The line recording a pressed button's label in the message a reply went into."""
    return f"\n\n» <i>{html.escape(label)}</i>\n\n"


def button_data(message: SentMessage, label: str) -> str:
    """The callback data of the button labelled ``label`` (exact, or its only prefix match)."""
    markup = message.reply_markup or {}
    buttons = [button for row in markup.get("inline_keyboard", []) for button in row]
    exact = [b for b in buttons if b["text"] == label]
    found = exact or [b for b in buttons if b["text"].startswith(label)]
    if len(found) != 1:
        raise AssertionError(
            f"message {message.message_id} has no single button {label!r}: {labels(message)}"
        )
    return str(found[0]["callback_data"])


class ReplyInPressed(SentMessage):
    """A reply the bot put into the pressed message, read as a message of its own: the
    reply's text as it came; the message's buttons and state as they are now."""

    def __init__(self, message: SentMessage, text: str, plain_text: str) -> None:
        self._message = message
        self.chat_id, self.message_id, self.date = message.chat_id, message.message_id, message.date
        self.text, self.plain_text, self.parse_mode = text, plain_text, message.parse_mode
        self.entities, self.document = [], None

    @property  # type: ignore[override]
    def reply_markup(self) -> JSONDict | None:
        """The buttons the message shows now."""
        return self._message.reply_markup

    @property  # type: ignore[override]
    def edit_date(self) -> int | None:
        """When the message was last edited."""
        return self._message.edit_date

    @property  # type: ignore[override]
    def deleted(self) -> bool:
        """Whether the bot deleted the message."""
        return self._message.deleted


class TelegramClient:
    """One person chatting with the bot through the fake server.

    Args:
        api: The fake Bot API server.
        user_id: Their Telegram user id (also their private chat id).
        name: Their first name.
    """

    def __init__(self, api: FakeBotApi, user_id: int, name: str = "Ada") -> None:
        self.api = api
        self.user_id = user_id
        self.name = name
        self.read = 0
        #: Characters of the first unread message read by :meth:`expect` (its first parts).
        self.read_of_next = 0
        #: The last press whose reply may still go into its message: (message id, its text
        #: when pressed, the label).
        self._pressed: tuple[int, str, str] | None = None
        api.add_user(user_id, name)

    # -- what the bot sent ------------------------------------------------------------------
    @property
    def messages(self) -> list[SentMessage]:
        """Every message the bot sent to this chat, oldest first, in its current state."""
        return self.api.messages(self.user_id)

    @property
    def texts(self) -> list[str]:
        """The raw (HTML) texts of every message, oldest first."""
        return [message.text for message in self.messages]

    @property
    def unread(self) -> list[SentMessage]:
        """Messages not yet returned by :meth:`next` (a message partly read included): a
        reply put into the pressed message first (as a message of the reply's text and
        buttons), then the new messages."""
        reply = self._reply_in_pressed()
        return ([] if reply is None else [reply]) + self.messages[self.read:]

    def _reply_in_pressed(self) -> SentMessage | None:
        """The reply the bot put into the last pressed message, once it is there."""
        if self._pressed is None:
            return None
        message_id, before, label = self._pressed
        message = next(m for m in self.messages if m.message_id == message_id)
        line, plain_line = choice_line(label), f"\n\n» {label}\n\n"
        at, plain_at = message.text.rfind(line), message.plain_text.rfind(plain_line)
        if message.text == before or at < 0 or plain_at < 0:
            return None
        return ReplyInPressed(message, message.text[at + len(line):],
                              message.plain_text[plain_at + len(plain_line):])

    def _take(self, count: int) -> list[SentMessage]:
        """Mark the first ``count`` unread messages read; return them."""
        taken = self.unread[:count]
        if self._reply_in_pressed() is not None:
            self._pressed = None
            count -= 1
        self.read += count
        self.read_of_next = 0
        return taken

    async def next(self, count: int = 1, timeout: float = 5.0) -> list[SentMessage]:  # noqa: ASYNC109
        """Wait for the bot's next ``count`` messages (a message partly read first) and mark
        them read."""
        try:
            await self.api.wait_for(lambda: len(self.unread) >= count, timeout)
        except TimeoutError:
            texts = [plain(m.text)[:60] for m in self.unread]
            raise TimeoutError(f"expected {count} messages in chat {self.user_id} within "
                               f"{timeout} s, got {texts}") from None
        return self._take(count)

    async def next_one(self, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """Wait for the bot's next message and mark it read."""
        [message] = await self.next(1, timeout)
        return message

    async def until(
        self,
        condition: Callable[[SentMessage], bool] | str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Read messages up to and including the first that matches; return all read.

        ``condition`` is a predicate, or a text the message must equal (HTML, stripped).
        """
        if isinstance(condition, str):
            wanted = condition.strip()

            def equal(message: SentMessage) -> bool:
                return message.text.strip() == wanted

            matches: Callable[[SentMessage], bool] = equal
        else:
            matches = condition

        def found() -> int | None:
            return next((index for index, message in enumerate(self.unread)
                         if matches(message)), None)

        try:
            await self.api.wait_for(lambda: found() is not None, timeout)
        except TimeoutError:
            unread = [plain(m.text)[:60] for m in self.unread]
            raise AssertionError(f"no message matched; unread: {unread}") from None
        position = found()
        assert position is not None
        return self._take(position + 1)

    async def expect(self, text: str, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """The next text must be exactly ``text`` (HTML, compared stripped): all that is
        left of the next message, or its next part (then the rest stays unread).

        Returns:
            The message carrying it (its buttons are those of the message's last part).
        """
        try:
            await self.api.wait_for(lambda: bool(self.unread), timeout)
        except TimeoutError:
            raise TimeoutError(f"expected {plain(text)[:60]!r} in chat {self.user_id} within "
                               f"{timeout} s; nothing came") from None
        message = self.unread[0]
        rest, wanted = message.text.strip()[self.read_of_next:], text.strip()
        if rest == wanted:
            self._take(1)
        elif rest.startswith(wanted + JOINER):
            self.read_of_next += len(wanted + JOINER)
        else:
            raise AssertionError(f"expected {plain(wanted)[:80]!r}, got {plain(rest)[:80]!r}")
        return message

    async def before(self, text: str, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        """Read up to and including the next text ``text`` (a whole part of a message);
        return the texts read before it, a blank line apart ("" if it came next)."""
        wanted = text.strip()

        def found() -> tuple[str, int] | None:
            # The unread texts as one stream, and where each message ends in it.
            unread = [m.text.strip() for m in self.unread]
            if unread:
                unread[0] = unread[0][self.read_of_next:]
            stream = JOINER.join(unread)
            at = 0
            while (at := stream.find(wanted, at)) >= 0:
                end = at + len(wanted)
                if ((at == 0 or stream[:at].endswith(JOINER))
                        and (end == len(stream) or stream[end:].startswith(JOINER))):
                    return stream[:at].removesuffix(JOINER), end
                at += 1
            return None

        try:
            await self.api.wait_for(lambda: found() is not None, timeout)
        except TimeoutError:
            unread = [plain(m.text)[:60] for m in self.unread]
            raise AssertionError(f"{plain(wanted)[:60]!r} never came; unread: {unread}") from None
        result = found()
        assert result is not None
        earlier, end = result
        for message in self.unread:  # move the reading position to ``end`` of the stream
            rest = len(message.text.strip()) - self.read_of_next
            if end < rest:
                self.read_of_next += end + len(JOINER)
                break
            self._take(1)
            end -= rest + len(JOINER)
            if end < 0:
                break
        return earlier

    def keyboard(self) -> SentMessage:
        """The newest message that still shows buttons."""
        for message in reversed(self.messages):
            if labels(message):
                return message
        raise AssertionError(f"no message with buttons in chat {self.user_id}")

    # -- acting -----------------------------------------------------------------------------
    async def send(self, text: str) -> int:
        """Type a text (or a /command); returns the update id."""
        return await self.api.send_text(self.user_id, text, first_name=self.name)

    async def press(self, label: str, message: SentMessage | None = None) -> SentMessage:
        """Press the button labelled ``label`` on ``message`` (default: the newest keyboard).

        Returns:
            The message whose button was pressed.
        """
        target = message or self.keyboard()
        data = button_data(target, label)
        shown = next(m for m in self.messages if m.message_id == target.message_id)
        exact = [b["text"] for row in (shown.reply_markup or {}).get("inline_keyboard", [])
                 for b in row if b["callback_data"] == data]
        self._pressed = (target.message_id, shown.text, exact[0])
        await self.api.press_button(self.user_id, target.message_id, data)
        return target

    async def press_data(self, message: SentMessage, data: str) -> int:
        """Press a button by its callback data, even one no longer shown (a stale press)."""
        return await self.api.press_button(self.user_id, message.message_id, data, verify=False)


async def settle(api: FakeBotApi, store: Store, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the bot confirmed every update and its outbox is empty.

    An update is confirmed (leaves the fake server's queue) only after the bot committed the
    whole batch it came in, or, with a webhook or several workers, stored it (then it waits
    in the store's queue until handled); a message leaves the outbox only after Telegram
    accepted it. So afterwards nothing more arrives until the client writes or a timer fires.
    """
    far = datetime.now(UTC) + timedelta(days=365 * FAR_FUTURE_YEARS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await api.wait_for(lambda: api.pending_updates == 0, max(0.1, deadline - loop.time()))
        if (not await store.pending_outbox(far, limit=1) and not await store.queued_updates()
                and api.pending_updates == 0):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the bot did not settle: updates or outbox messages are left")


# -- running the bot ------------------------------------------------------------------------
def pacing_off() -> Pacer:
    """No client-side rate limits (the fake server has none unless asked)."""
    return Pacer(per_chat=0, overall=0)


#: ``say(key, **values)``: a system text exactly as the bot sends it (the ``say`` fixture).
Say = Callable[..., str]


@contextlib.asynccontextmanager
async def running_edge(
    config: Config,
    loaded: Loaded,
    store: Store,
    clock: Callable[[], datetime] | None = None,
    pacer: Pacer | None = None,
    waits: Waits | None = None,
    edge_class: type[TelegramEdge] = TelegramEdge,
) -> AsyncIterator[TelegramEdge]:
    """Start the real bot against the fake server; stop it gracefully afterwards."""
    waits = waits or Waits()
    edge = (
        edge_class(config, loaded, store, clock=clock, pacer=pacer or pacing_off(), waits=waits)
        if clock is not None
        else edge_class(config, loaded, store, pacer=pacer or pacing_off(), waits=waits)
    )
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop(drain_seconds=2)


# -- common paths through the bot -----------------------------------------------------------
async def give_consent(
    client: TelegramClient,
    *,
    free_text: bool = False,
    share: bool = False,
    reminders: tuple[str, str] | None = None,
    alert: bool = False,
) -> None:
    """Answer the consent questions (the intro must be the newest keyboard).

    Args:
        client: The client.
        free_text: Opt in to storing typed answers.
        share: Opt in to sharing with the therapist.
        reminders: ``(time zone, "HH:MM")`` to opt in to reminders, None to decline.
        alert: Opt in to the safety alert to the therapist.
    """
    def yes_no(flag: bool) -> str:
        return "Yes, please" if flag else "No, thanks"

    await client.until(lambda m: "I agree" in labels(m))
    await client.press("I agree")
    await client.until(lambda m: labels(m) == ["Yes", "No"])
    await client.press("Yes")
    for flag in (free_text, share, reminders is not None, alert):
        await client.until(lambda m: "Yes, please" in labels(m))
        await client.press(yes_no(flag))
    if reminders is not None:
        zone, at = reminders
        await client.until(lambda m: "time zone" in m.text)
        await client.send(zone)
        await client.until(lambda m: "What time" in m.text)
        await client.send(at)


async def choose_script(client: TelegramClient, title: str) -> None:
    """Pick an exercise from the menu (which must be on its way or shown)."""
    await client.until(lambda m: any(label.startswith(title) for label in labels(m)))
    await client.press(title)


async def wait_until(
    check: Callable[[], Awaitable[object]],
    timeout: float = 5.0,  # noqa: ASYNC109
    what: str = "condition",
) -> None:
    """Wait until an async check (a store query, say) returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)
