"""Sending: every message leaves through the outbox, paced under Telegram's limits.

Rows are sent in order per client, different clients concurrently; consecutive texts of one
chat go out as one message where they fit (:func:`message_runs`). A 429 holds sending for
``retry_after``; timeouts, dropped connections and 5xx are retried with backoff and never
dropped; "bot was blocked" counts as a halt. A message is removed from the outbox only
after Telegram accepted it, so after a crash unsent rows go out on restart (at least once:
a send that timed out after Telegram accepted it can arrive twice).

A message Telegram accepted is never sent again because the store could not record it (a
full disk, a read-only database): it is remembered as sent and recording it is retried, so
only a crash or stop before the record succeeds can send it once more.

A press's first reply goes into the pressed message by one edit while that message is the
chat's newest (`OutboxSender.pressed`), instead of a keyboard edit and a new message.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.config import SendingConfig
from bot.store import OutboxRow, Store, StoreError
from bot.telegram._recent import Recent

log = logging.getLogger(__name__)
_TAGS = re.compile(r"<[^>]+>")
#: Seconds by which one request may reach Telegram later than the next (`Pacer.wait`).
LATENESS = 0.2
#: The longest text of one message (Telegram's limit), counted on its HTML source, tags and
#: all: a merged message never comes near what Telegram refuses.
MESSAGE_LIMIT = 4096
#: Between the texts of one merged message: a blank line.
JOINER = "\n\n"
#: Longest sleep of the sender: deferred rows (a retry after a 5xx, a timeout or a 429, or
#: rows deferred before a restart) become ready without anything waking the sender.
IDLE_CHECK_SECONDS = 1.0


@dataclass
class Pacer:
    """Token buckets: ``burst`` messages at once per chat, then ``per_chat`` a second; under
    ``overall`` a second in all (a burst of one second's worth).

    Telegram allows short bursts to one chat, so a reply of a few messages arrives together,
    while a long run of messages to one chat slows to ``per_chat``. A rate of 0 switches that
    limit off (benchmarks against a server without limits).
    """

    per_chat: float = 1.0
    overall: float = 30.0
    burst: int = 3
    clock: Callable[[], float] = time.monotonic
    _chats: dict[int, tuple[float, float]] = field(default_factory=dict)
    _overall: tuple[float, float] | None = None
    _hold_until: float = 0.0

    @classmethod
    def configured(cls, sending: SendingConfig) -> Pacer:
        """The pacing ``sending`` (the configuration's section) asks for."""
        return cls(per_chat=sending.per_chat_per_second, overall=sending.global_per_second,
                   burst=sending.per_chat_burst)

    def wait(self, chat_id: int, *, urgent: bool = False, calls: int = 1) -> float:
        """Seconds until ``calls`` requests may go to this chat (0: now).

        An urgent message (a crisis response) waits only for the overall limit and a 429,
        never for the chat's own pace: Telegram allows short bursts to one chat.
        """
        now = self.clock()
        waits = [self._hold_until - now]
        if self.overall > 0:
            # Requests reach Telegram after varying delays, so several sent a little apart
            # can arrive closer together than they left: keep LATENESS seconds' worth spare.
            waits.append(_bucket_wait(self._overall, self.overall, self._overall_size, now,
                                      calls + self.overall * LATENESS))
        if self.per_chat > 0 and not urgent:
            waits.append(_bucket_wait(self._chats.get(chat_id), self.per_chat, self.burst, now,
                                      calls))
        return max(0.0, *waits)

    def take(self, chat_id: int) -> None:
        """Record a request to this chat (a message sent, or a keyboard edited away)."""
        now = self.clock()
        if self.overall > 0:
            self._overall = _bucket_take(self._overall, self.overall, self._overall_size, now)
        if self.per_chat > 0:
            tokens, at = _bucket_take(self._chats.get(chat_id), self.per_chat, self.burst, now)
            # A chat's burst used up: its next request is paced, and may reach Telegram up to
            # LATENESS late; refilling from LATENESS later keeps it a pace, not a near miss.
            self._chats[chat_id] = (tokens, at + LATENESS if tokens < 1 else at)
            if len(self._chats) > 10_000:
                self._forget(now)

    @property
    def _overall_size(self) -> int:
        return max(1, int(self.overall))

    def hold(self, seconds: float) -> None:
        """Send nothing at all for a while (after a 429)."""
        self._hold_until = max(self._hold_until, self.clock() + seconds)

    def _forget(self, now: float) -> None:
        full = [c for c, (_, at) in self._chats.items() if now - at > self.burst / self.per_chat]
        for chat in full:
            del self._chats[chat]


def _bucket_wait(
    bucket: tuple[float, float] | None, rate: float, size: int, now: float, needed: float
) -> float:
    needed = min(needed, size)  # a bucket never holds more than its size
    tokens = _tokens(bucket, rate, size, now)
    return 0.0 if tokens >= needed else (needed - tokens) / rate


def _bucket_take(
    bucket: tuple[float, float] | None, rate: float, size: int, now: float
) -> tuple[float, float]:
    return (_tokens(bucket, rate, size, now) - 1, now)


def _tokens(bucket: tuple[float, float] | None, rate: float, size: int, now: float) -> float:
    if bucket is None:
        return float(size)
    tokens, at = bucket
    return min(float(size), tokens + (now - at) * rate)


def message_runs(rows: Sequence[OutboxRow], limit: int = MESSAGE_LIMIT) -> list[list[OutboxRow]]:
    """Split one chat's rows, in order, into runs that each go out as one message.

    A run is consecutive texts of one client, joined by a blank line (:func:`joined`) within
    ``limit`` characters; it may end with one text that carries buttons (they go on the
    message). A file, a therapist alert and a keyboard replacement each go alone, and a crisis
    response (urgent) never shares a message with what came before it, so its first message
    starts with the crisis lines. A text too long to join starts the next run.
    """
    runs: list[list[OutboxRow]] = []
    length = 0  # of the last run's text
    for row in rows:
        size = len(_text(row))
        if runs and _joins(runs[-1][-1], row) and length + len(JOINER) + size <= limit:
            runs[-1].append(row)
            length += len(JOINER) + size
        else:
            runs.append([row])
            length = size
    return runs


def joined(run: Sequence[OutboxRow]) -> str:
    """The text of a run's one message: its texts, each stripped, a blank line apart."""
    return JOINER.join(_text(row) for row in run)


def _text(row: OutboxRow) -> str:
    return str(row.payload.get("text", "")).strip()


def _joins(last: OutboxRow, row: OutboxRow) -> bool:
    """Whether ``row`` may go on the same message as ``last``, the row before it."""
    return (_mergeable(last) and _mergeable(row) and not last.payload.get("buttons")
            and row.client_id == last.client_id
            and bool(row.payload.get("urgent")) == bool(last.payload.get("urgent")))


def _mergeable(row: OutboxRow) -> bool:
    payload = row.payload
    return not (payload.get("file") or payload.get("alert") or payload.get("replace_keyboard"))


@dataclass(frozen=True, slots=True)
class Press:
    """A button press waiting for its reply (`OutboxSender.pressed`).

    Attributes:
        message_id: The message whose button was pressed.
        text: That message's text as Telegram HTML.
        label: The pressed button's label.
    """

    message_id: int
    text: str
    label: str

    @property
    def head(self) -> str:
        """The pressed message's text and the choice: what a reply goes under."""
        return f"{self.text}\n\n» <i>{html.escape(self.label)}</i>\n\n"


#: A press whose message takes a run by one edit, the text above the reply, and the reply.
_Fold = tuple[Press, str, str]


class OutboxSender:
    """Sends queued messages through the Bot API.

    Args:
        bot: The python-telegram-bot ``Bot``.
        store: Where the outbox lives.
        clock: Current UTC time.
        on_blocked: Called with a client id when Telegram says the bot was blocked.
        pacer: Rate limits.
        backoff: Seconds to wait after the 1st, 2nd, … failed attempt (the last repeats).
        connections: The bot's HTTP connections: half of them send to different chats at
            once (each chat's own messages always go one by one), the rest answer presses.
    """

    def __init__(
        self,
        bot: Bot,
        store: Store,
        clock: Callable[[], datetime],
        on_blocked: Callable[[str, int], Awaitable[None]],
        pacer: Pacer | None = None,
        backoff: Sequence[float] = (1, 2, 5, 10, 30, 60),
        connections: int = 8,
    ) -> None:
        self.bot = bot
        self.store = store
        self.clock = clock
        self.on_blocked = on_blocked
        self.pacer = pacer or Pacer()
        self.backoff = tuple(backoff)
        self._chats_at_once = max(1, connections // 2)
        self.wake = asyncio.Event()
        #: The message showing each chat's live keyboard (recent chats only).
        self._keyboards: Recent[int, int] = Recent()
        #: Each chat's newest message, the bot's or the client's (recent chats only).
        self._newest: Recent[int, int] = Recent()
        #: Each chat's press whose reply is not sent yet (recent chats only).
        self._presses: Recent[int, Press] = Recent()
        #: Chats with rows in hand not sent yet: a press's reply would come after them.
        self._behind: Recent[int, bool] = Recent()
        #: Each chat's last message a reply went into, and the text above the reply.
        self._heads: Recent[int, tuple[int, str]] = Recent()
        #: Messages Telegram accepted that the store could not record yet: outbox id ->
        #: (when sent, Telegram's message ids). They are never sent again.
        self._unrecorded: dict[int, tuple[datetime, list[int]]] = {}
        #: No send starts after this moment (``time.monotonic()``; see :meth:`finish_by`).
        self._deadline = math.inf

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set, sleeping when nothing is ready; then drain.

        Draining sends what is ready until the outbox is empty or the deadline of
        :meth:`finish_by` has passed; rows held back (after a failed send, say) stay in the
        outbox for the next start.
        """
        while True:
            self.wake.clear()
            try:
                delay = await self.send_ready()
            except Exception:  # a store error, say: never let the sender die silently
                log.exception("sending from the outbox failed; trying again")
                delay = IDLE_CHECK_SECONDS
            if stop.is_set():
                if delay is None or time.monotonic() + delay >= self._deadline:
                    break
                await asyncio.sleep(delay)
                continue
            if delay == 0:
                continue
            timeout = IDLE_CHECK_SECONDS if delay is None else min(delay, IDLE_CHECK_SECONDS)
            waiter = asyncio.create_task(self.wake.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
        if not await self._record_unrecorded():
            log.error("%d sent messages could not be recorded as sent; they go out once more "
                      "at the next start", len(self._unrecorded))

    def finish_by(self, deadline: float) -> None:
        """Start no send after ``deadline`` (``time.monotonic()``): the bot is stopping."""
        self._deadline = deadline

    async def send_ready(self) -> float | None:
        """Send what may go now; return 0 to go on at once, seconds to wait, or None if idle.

        Different chats are served concurrently (half the HTTP connections at once),
        each chat's messages one after another, in order. Messages sent but not recorded
        yet are recorded first, and never sent again.
        """
        await self._record_unrecorded()
        rows = [row for row in await self.store.pending_outbox(self.clock(), limit=200)
                if row.id not in self._unrecorded]
        if not rows:
            return None
        by_chat: dict[int, list[OutboxRow]] = {}
        for row in rows:
            if row.chat_id is not None:
                by_chat.setdefault(row.chat_id, []).append(row)
        # Clients' crisis responses first, then strangers' crisis lines, then clients, then
        # anything else for strangers: a flood of strangers never delays a client's reply
        # (the semaphore lets the chats' tasks in in the order they were created).
        def priority(queue: list[OutboxRow]) -> int:
            urgent = any(row.payload.get("urgent") for row in queue)
            stranger = bool(queue[0].payload.get("stranger"))
            return (0 if urgent else 2) + stranger

        by_chat = dict(sorted(by_chat.items(), key=lambda item: priority(item[1])))
        slots = asyncio.Semaphore(self._chats_at_once)

        async def serve(chat: int, queue: list[OutboxRow]) -> tuple[bool, float]:
            async with slots:
                return await self._send_in_order(chat, queue)

        results = await asyncio.gather(*(serve(chat, queue) for chat, queue in by_chat.items()))
        if any(sent for sent, _ in results):
            return 0
        return min((wait for _, wait in results), default=0.5)

    async def _send_in_order(self, chat: int, rows: list[OutboxRow]) -> tuple[bool, float]:
        """Send one chat's rows while its pace allows: (whether any went, seconds to wait).

        Consecutive texts go as one message (:func:`message_runs`). Each sent row is recorded
        while the next message is sent (the records share group commits), and all are
        recorded before this returns, so none is fetched to be sent again.
        """
        # A crisis response waiting behind earlier messages takes them along at once, so the
        # chat's order is kept and the crisis lines are not paced.
        urgent = any(row.payload.get("urgent") for row in rows)
        records: list[asyncio.Task[None]] = []
        self._behind.put(chat, True)
        try:
            for index, run in enumerate(message_runs(rows)):
                if time.monotonic() >= self._deadline:
                    return index > 0, math.inf
                fold = self._fold(chat, run)
                wait = self.pacer.wait(chat, urgent=urgent, calls=self._calls(chat, run, fold))
                if wait > 0:
                    return index > 0, wait
                self.pacer.take(chat)
                if not await self._deliver(run, chat, records, fold):
                    return True, 0.05  # deferred or halted: the rest of this chat waits
            self._behind.pop(chat)
            return True, 0.0
        finally:
            await asyncio.gather(*records)

    def _calls(self, chat: int, run: list[OutboxRow], fold: _Fold | None) -> int:
        """Requests sending ``run`` (one message; ``fold``: see `_fold`) takes: 1 more for
        each keyboard it edits away (a live one a new keyboard replaces, a pressed one its
        reply does not fold into)."""
        payload = run[-1].payload
        tidies = (bool(payload.get("buttons")) and not payload.get("replace_keyboard")
                  and self._keyboards.get(chat) is not None)
        unfolded = chat in self._presses and fold is None
        return 1 + tidies + unfolded

    def seen(self, chat_id: int, message_id: int) -> None:
        """Note a message in a chat (one the bot sent, or the client's): a press above it no
        longer takes its reply (`pressed`)."""
        self._newest.put(chat_id, max(message_id, self._newest.get(chat_id) or 0))

    def pressed(self, chat_id: int, message_id: int, press: Press | None) -> bool:
        """Note a press on ``message_id``; True when its reply is to go into that message.

        While the pressed message is the chat's newest, the first row sent to the chat after
        the press goes into it by one ``editMessageText`` (its text, the choice, the reply),
        unless `_fold` finds it must be a message of its own. False (the message is not the
        newest, rows for the chat wait to be sent, an earlier press waits for its reply, or
        there is no ``press``: no text, or a button it does not show): edit the keyboard
        away now (`keyboard_answered`).
        """
        if self._keyboards.get(chat_id) == message_id:
            self._keyboards.pop(chat_id)
        if (press is None or self._newest.get(chat_id) != message_id
                or chat_id in self._behind):
            return False
        if self._presses.get(chat_id) is not None:
            # A second press before the first one's reply (a double tap): neither reply goes
            # into the message, so none shows under the wrong choice.
            self._presses.pop(chat_id)
            return False
        self._presses.put(chat_id, press)
        return True

    async def keyboard_answered(self, chat_id: int, message_id: int) -> None:
        """Edit the keyboard away from a message whose button was pressed."""
        await self._remove_keyboard(chat_id, message_id)

    async def unanswered(self, chat_id: int, message_id: int) -> None:
        """A press on ``message_id`` that `pressed` kept brought no reply (or failed): edit
        its keyboard away, unless a row went into its message meanwhile."""
        press = self._presses.get(chat_id)
        if press is not None and press.message_id == message_id:
            self._presses.pop(chat_id)
            await self._remove_keyboard(chat_id, message_id)

    def _fold(self, chat: int, run: list[OutboxRow]) -> _Fold | None:
        """The press whose message takes ``run`` (one message) by one edit, the text above
        the reply and the reply; None when the run is a message of its own: it is urgent (a
        crisis response notifies), a file, a therapist alert, too long together with the
        pressed message, or the pressed message is no longer the chat's newest. A row that
        replaces the keyboard (a toggle, always a run of one) replaces the reply shown
        before, under the same text."""
        press = self._presses.get(chat)
        payload = run[0].payload  # a file, an alert or a replacement is a run of one
        if (press is None or run[-1].payload.get("urgent") or payload.get("alert")
                or "file" in payload or self._newest.get(chat) != press.message_id):
            return None
        head = press.head
        if payload.get("replace_keyboard"):
            shown = self._heads.get(chat)
            head = shown[1] if shown is not None and shown[0] == press.message_id else ""
        reply = joined(run)
        fits = len(html.unescape(_TAGS.sub("", head + reply))) <= MESSAGE_LIMIT
        return (press, head, reply) if fits else None

    async def _deliver(
        self, run: list[OutboxRow], chat: int, records: list[asyncio.Task[None]],
        fold: _Fold | None,
    ) -> bool:
        """Send a run of rows as one message (into the pressed message, with ``fold``);
        False when it was deferred or the chat halted.

        Every row of the run shares the message's fate: recorded as sent (tasks in
        ``records``), deferred, or halted together.
        """
        first, last = run[0], run[-1]
        text = joined(run)
        markup = _markup(last.payload.get("buttons"))
        file = first.payload.get("file")  # a file, an alert or a replacement is a run of one
        press = self._presses.get(chat)
        folded = False
        try:
            ids = None if fold is None else await self._edit_in(chat, *fold, markup)
            folded = ids is not None
            if ids is None and isinstance(file, dict):
                ids = await self._send_file(chat, str(file["name"]), str(file["content"]))
            elif ids is None:
                ids = await self._send(chat, text, markup,
                                       bool(first.payload.get("replace_keyboard")))
        except RetryAfter as exc:
            seconds = exc.retry_after if isinstance(exc.retry_after, int | float) else (
                exc.retry_after.total_seconds())
            self.pacer.hold(float(seconds))
            await self._defer(run, float(seconds), count=False)
            return False
        except Forbidden:
            if first.payload.get("alert"):  # the therapist's chat: never a halt of the client
                log.warning("a therapist alert could not be delivered (the therapist's chat "
                            "refused it: never started or blocked the bot); dropping it")
                await self._record_sent(first, [])
                return True
            log.info("a client blocked the bot; treating it as a halt")
            await self.on_blocked(first.client_id, first.id)
            return False
        except BadRequest as exc:
            await self._replied(chat, press, folded=False)
            return await self._bad_request(run, chat, text, markup, exc, records)
        except TelegramError as exc:  # timeouts, dropped connections, 5xx, anything else
            log.warning("sending failed (%s); will retry", type(exc).__name__)
            await self._defer(run, self.backoff[min(first.attempts, len(self.backoff) - 1)])
            return False
        await self._replied(chat, press, folded=folded)
        self._record_run(run, ids, records)
        return True

    async def _replied(self, chat: int, press: Press | None, *, folded: bool) -> None:
        """A chat's message is done: a press waiting for its reply is answered; its keyboard
        is edited away unless the message went into it."""
        if press is None:
            return
        self._presses.pop(chat)
        if not folded:
            await self._remove_keyboard(chat, press.message_id)

    def _record_run(
        self, run: list[OutboxRow], message_ids: list[int], records: list[asyncio.Task[None]]
    ) -> None:
        """Start recording every row of a sent run (one message) as sent, as tasks."""
        records.extend(asyncio.create_task(self._record_sent(row, message_ids)) for row in run)

    async def _record_sent(self, row: OutboxRow, message_ids: list[int]) -> None:
        """Remove a sent message from the outbox, or remember it as sent if that fails."""
        sent_at = self.clock()
        try:
            await self.store.mark_sent(row.id, sent_at, message_ids)
        except StoreError as exc:
            self._unrecorded[row.id] = (sent_at, message_ids)
            # SQLite's message: it never quotes what a client typed.
            log.error("could not record outbox message %d as sent (%s); recording it again "
                      "shortly, it is not sent again", row.id, exc)

    async def _record_unrecorded(self) -> bool:
        """Record the messages sent but not recorded yet; True once none is left."""
        for row_id, (sent_at, message_ids) in list(self._unrecorded.items()):
            try:
                await self.store.mark_sent(row_id, sent_at, message_ids)
            except StoreError:
                return False
            del self._unrecorded[row_id]
        return True

    async def _edit_in(
        self, chat: int, press: Press, head: str, reply: str,
        markup: InlineKeyboardMarkup | None,
    ) -> list[int] | None:
        """Put a reply into the pressed message under ``head`` (see `_fold`); None when
        Telegram refuses the edit (the message was deleted, or is too old to edit): then it
        is sent anew."""
        try:
            await self._call("editMessageText", chat_id=chat, message_id=press.message_id,
                             text=head + reply, parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # else it shows the reply already
                log.info("could not put a reply into the pressed message (%s); sending it as "
                         "a message of its own", exc.message)
                return None
        self._heads.put(chat, (press.message_id, head))
        if markup is not None:
            self._keyboards.put(chat, press.message_id)
        return [press.message_id]

    async def _send(
        self, chat: int, text: str, markup: InlineKeyboardMarkup | None, replace: bool
    ) -> list[int]:
        previous = self._keyboards.get(chat)
        if replace and previous is not None:
            try:
                await self._call("editMessageText", chat_id=chat, message_id=previous, text=text,
                                 parse_mode=ParseMode.HTML, reply_markup=markup)
                return []
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    return []
        if markup is not None and previous is not None:
            self._keyboards.pop(chat)
            await self._remove_keyboard(chat, previous)
        sent = await self._call("sendMessage", chat_id=chat, text=text,
                                parse_mode=ParseMode.HTML, reply_markup=markup)
        message_id = int(sent["message_id"])
        self.seen(chat, message_id)
        if markup is not None:
            self._keyboards.put(chat, message_id)
        return [message_id]

    async def _call(self, method: str, **params: object) -> Any:
        """One Bot API request through python-telegram-bot's own route (``Bot._post``: its
        HTTP, its retries, its errors as exceptions), its result left as Telegram's JSON.

        The sender reads only a sent message's id; building a `Message` (python-telegram-bot
        parses every HTML entity of the text it returns) cost about as much CPU as the
        request itself. The poller reads updates the same way (`_edge._get_updates`).
        """
        return await self.bot._post(method, {k: v for k, v in params.items() if v is not None})

    async def _send_file(self, chat: int, name: str, content: str) -> list[int]:
        message = await self.bot.send_document(chat, io.BytesIO(content.encode()),
                                               filename=name)
        self.seen(chat, message.message_id)
        return [message.message_id]

    async def _bad_request(
        self, run: list[OutboxRow], chat: int, text: str, markup: InlineKeyboardMarkup | None,
        exc: BadRequest, records: list[asyncio.Task[None]],
    ) -> bool:
        """A message Telegram refuses: send it as plain text once (with its buttons: a merged
        message's last text may carry them), else drop it (logged)."""
        if "parse entities" in str(exc).lower():
            try:
                plain = html.unescape(_TAGS.sub("", text))
                message: Message = await self.bot.send_message(chat, plain[:MESSAGE_LIMIT],
                                                               reply_markup=markup)
            except TelegramError as retry_exc:
                exc = retry_exc if isinstance(retry_exc, BadRequest) else exc
            else:
                self.seen(chat, message.message_id)
                if markup is not None:
                    self._keyboards.put(chat, message.message_id)
                self._record_run(run, [message.message_id], records)
                return True
        log.error("Telegram refused outbox message %s (%s); dropping it",
                  ", ".join(str(row.id) for row in run), exc.message)
        self._record_run(run, [], records)
        return True

    async def _defer(self, run: list[OutboxRow], seconds: float, *, count: bool = True) -> None:
        """Hold every row of a run back for ``seconds``, so that they come back together."""
        not_before = self.clock() + timedelta(seconds=seconds)
        for row in run:
            await self.store.defer_outbox(row.id, not_before,
                                          row.attempts + 1 if count else row.attempts)

    async def _remove_keyboard(self, chat: int, message_id: int) -> None:
        # Cosmetic: a press on a keyboard left behind is answered kindly anyway. The edit
        # counts against the chat's limits like a message.
        self.pacer.take(chat)
        with contextlib.suppress(TelegramError):
            await self._call("editMessageReplyMarkup", chat_id=chat, message_id=message_id)


def _markup(rows: object) -> InlineKeyboardMarkup | None:
    if not isinstance(rows, list) or not rows:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(str(label), callback_data=str(data)) for label, data in row]
        for row in rows
    ])
