"""The one place where an update meets the gatekeepers, in order, then the engine.

`Handlers.handle` makes one pass over each update (one conversion, one turn of the client,
one read of their state); a gatekeeper that answers ends the pass:

* **private chats only**: groups and channels get one polite refusal, ever (the store
  remembers them).
* **access**: invite codes (``/start CODE``, rate-limited) or the allowlist.
  Strangers still get crisis resources when they write crisis language.
* **therapists' commands**, only for ids in ``telegram.admins``: ``/invite SCRIPT
  [MAX_LEVEL]``, ``/clients``, ``/report CLIENT``, ``/clearhold CLIENT``, ``/guardian CLIENT``,
  ``/outcomes CLIENT on|off``, ``/safetyplan CLIENT [part: text …]`` (see `_therapist`;
  ``/safetyplan`` alone is the client's own). From anyone else they fall through to the
  engine, which answers them as unknown commands.
* **the engine**: every admitted update becomes an engine event. Inside the engine the
  remaining gatekeepers run before any script logic: crisis language first, then ``/stop``
  and the STOP-like words (opt-out), then consent.

A failure is an exception out of `Handlers.handle` (the edge decides whether the update is
fetched again). Script state lives in the store, never in python-telegram-bot.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from telegram import CallbackQuery, Update
from telegram import Message as TelegramMessage
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError

from bot.config import Config
from bot.crisis import Detection
from bot.engine import Blocked, Command, Message, Redeemed, Start
from bot.render import Renderer
from bot.service import Handled, Rehearsal, Versioned
from bot.telegram._convert import Incoming, client_key, convert
from bot.telegram._invites import code_hash
from bot.telegram._recent import Recent
from bot.telegram._sender import OutboxSender, Press
from bot.telegram._strangers import StrangerGate
from bot.telegram._therapist import CLIENT_TOO, THERAPIST_COMMANDS, Reply, TherapistDesk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A client the access gate let in.

    Attributes:
        stored: Their stored state and version when the gate read them (not cached), so
            that the engine's pass does not read them again.
    """

    stored: Versioned | None = None


class Handlers:
    """The gatekeepers and the dispatcher, sharing the service and the sender."""

    def __init__(
        self,
        config: Config,
        service: Rehearsal,
        sender: OutboxSender,
        texts: Renderer,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.service = service
        self.sender = sender
        self.bot = sender.bot
        self.texts = texts
        self.crisis = service.engine.resources.crisis
        self.clock = clock
        access = config.access
        self.strangers = StrangerGate(access.stranger_replies_per_minute,
                                      access.stranger_codes_per_minute)
        self.desk = TherapistDesk(config, service, clock, lambda: sender.bot.username)
        #: Clients let in lately (a cache of the store; bounded, so flat in idle clients).
        self._admitted: Recent[str, bool] = Recent()
        #: Groups refused (a cache of `Store.refuse_group`; bounded alike).
        self._refused_groups: Recent[int, bool] = Recent()
        #: Button presses being answered while their update is handled (`settled`).
        self._presses: set[asyncio.Task[None]] = set()

    async def handle(self, update: Update) -> None:
        """One pass over an update: the gatekeepers in order, then the engine.

        Raises:
            Exception: Whatever failed (storage, the network, a bug); nothing after the
                failing gatekeeper ran, and the edge decides whether to try again.
        """
        chat = update.effective_chat
        if chat is not None and chat.type != ChatType.PRIVATE:
            await self._refuse_group(update, chat.id)
            return
        incoming = convert(update)
        if incoming is None:
            return
        if update.message is not None:  # before any turn: a press above it keeps its reply out
            self.sender.seen(incoming.chat_id, update.message.message_id)
        async with self.service.turn(incoming.client_id):
            admitted = await self._access(incoming)
            if admitted is None or await self._clinician(incoming):
                return
            await self._dispatch(update, incoming, admitted)

    async def settled(self) -> None:
        """Wait until every button press in hand has been answered."""
        while self._presses:
            await asyncio.gather(*self._presses, return_exceptions=True)

    # -- gatekeepers ------------------------------------------------------------------------
    async def _refuse_group(self, update: Update, chat_id: int) -> None:
        """Refuse groups and channels, once per chat ever: the store remembers them across
        restarts (and workers); the cache in front spares it a write per group message."""
        if update.message is None or chat_id in self._refused_groups:
            return
        new = await self.service.store.refuse_group(chat_id)
        self._refused_groups.put(chat_id, True)
        if new:
            await self._reply(chat_id, self.texts.system("group.refusal"))

    async def _access(self, incoming: Incoming) -> Admitted | None:
        """Let admitted clients through (None: the gate answered, or ignored the update);
        handle invite codes and strangers."""
        event = incoming.event
        if isinstance(event, Start) and event.payload:
            admitted = await self._admission(incoming.client_id)
            if await self._redeem(incoming, event.payload, event.display_name, admitted):
                return None
            return admitted
        admitted = await self._admission(incoming.client_id)
        if admitted is not None or isinstance(event, Blocked):
            return admitted
        # Strangers, including clients who erased their data, are answered in a crisis too:
        # crisis language anywhere, and /sos (published in everyone's command menu).
        detection = self.crisis.scan(incoming.free_text)
        if detection or (isinstance(event, Command) and event.name == "sos"):
            await self._stranger_crisis(incoming, detection)
        elif self.strangers.may_greet(int(incoming.client_id.removeprefix("tg:")),
                                      asked=_asks_for_greeting(event)):
            await self._reply(incoming.chat_id, self.texts.system("access.invite_needed"))
        return None

    def forget_admitted(self) -> None:
        """Drop the cache of admitted clients (the store changed behind the bot's back)."""
        self._admitted = Recent()

    async def _admission(self, client_id: str) -> Admitted | None:
        """Whether a client may use the bot: allowlisted, an admin, or redeemed an invite."""
        if self._admitted.get(client_id):
            return Admitted()
        user_id = int(client_id.removeprefix("tg:"))
        listed = self.config.access.mode == "allowlist" and user_id in self.config.access.allowlist
        stored = await self.service.store.load_versioned(client_id)
        if listed or stored[0] is not None or user_id in self.config.telegram.admins:
            self._admitted.put(client_id, True)
            return Admitted(stored)
        return None

    async def _redeem(
        self, incoming: Incoming, code: str, name: str | None, admitted: Admitted | None
    ) -> bool:
        """Try an invite code; True when it was redeemed and handled."""
        store, now = self.service.store, self.clock()
        access = self.config.access
        window = timedelta(minutes=access.wrong_code_window_minutes)
        if admitted is None and not self.strangers.may_try_code():
            return False  # a flood of guesses: not checked, not recorded, not answered
        if await store.failed_codes(incoming.client_id, now, window) >= access.wrong_code_limit:
            if admitted is not None or self.strangers.may_reply():
                await self._reply(incoming.chat_id, self.texts.system("access.too_many_codes"))
            return False
        invite = await store.redeem_invite(code_hash(code), incoming.client_id, now)
        if invite is None:
            await store.record_failed_code(incoming.client_id, now, window)
            if admitted is None and self.strangers.may_reply():
                await self._reply(incoming.chat_id, self.texts.system("access.bad_code"))
            return False
        self._admitted.put(incoming.client_id, True)
        event = Redeemed(script_id=invite.script_id, max_level=invite.max_level,
                         display_name=name)
        stored = None if admitted is None else admitted.stored
        await self._after(incoming, await self.service.handle(
            incoming.client_id, incoming.event_id, event, stored))
        return True

    async def _stranger_crisis(self, incoming: Incoming, detection: Detection) -> None:
        """Crisis lines for someone the bot has no state for (the region their language
        suggests, else the practice's); the fact and kinds are logged, never the text."""
        policy = self.service.engine.resources.policy
        lines = policy.lines(policy.suggest_region(incoming.event.language))
        log.warning("crisis support shown to someone without an invite (kinds: %s)",
                    ", ".join(k.value for k in detection.kinds) or "sos")
        text = self.texts.system("crisis.resources",
                                 **lines.crisis_context(detection or None, running=False))
        await self.service.reply_to_stranger(incoming.client_id, incoming.event_id,
                                             [Message(text=str(text).strip(), urgent=True)])
        self.sender.wake.set()

    # -- therapists' commands ---------------------------------------------------------------
    async def _clinician(self, incoming: Incoming) -> bool:
        """Therapists' commands from an admin account (True: answered); anyone else's
        fall through."""
        event = incoming.event
        if not isinstance(event, Command) or event.name not in THERAPIST_COMMANDS:
            return False
        if event.name in CLIENT_TOO and not event.args:
            return False  # the therapist's own /safetyplan, as a client
        user_id = int(incoming.client_id.removeprefix("tg:"))
        if user_id not in self.config.telegram.admins:
            return False  # the engine answers it as an unknown command
        reply = await self.desk.answer(event.name, event.args.split(), incoming.client_id,
                                       incoming.event_id, text=event.args)
        await self._send_reply(incoming.chat_id, reply)
        return True

    async def _send_reply(self, chat_id: int, reply: Reply) -> None:
        for text in reply.texts:
            await self._reply(chat_id, text)
        if reply.document is None:
            return
        name, content = reply.document
        try:
            sent = await self.bot.send_document(chat_id, io.BytesIO(content), filename=name)
        except TelegramError:
            log.warning("could not send a report to a therapist")
            return
        if reply.about is not None:  # erasing the client deletes it from this chat too
            await self.service.store.record_sent(reply.about, chat_id, [sent.message_id],
                                                 self.clock())

    # -- the dispatcher ---------------------------------------------------------------------
    async def _dispatch(self, update: Update, incoming: Incoming, admitted: Admitted) -> None:
        """Hand an admitted update to the engine through the service."""
        query = update.callback_query
        pressed = None  # the pressed message, while its reply may go into it
        if query is not None:
            if query.message is not None and self.sender.pressed(
                    incoming.chat_id, query.message.message_id, _press(query)):
                pressed = query.message.message_id
            # Telegram requests the engine need not wait for, nor the poller: they run while
            # the press is handled, and the edge waits for them before it stops (`settled`).
            press = asyncio.create_task(self._settle_press(query, incoming.chat_id,
                                                           waits=pressed is not None))
            self._presses.add(press)
            press.add_done_callback(self._presses.discard)
        replied = False
        try:
            handled = await self.service.handle(incoming.client_id, incoming.event_id,
                                                incoming.event, admitted.stored)
            replied = handled.outcome is not None and bool(handled.outcome.messages)
        finally:
            if pressed is not None and not replied:
                await self.sender.unanswered(incoming.chat_id, pressed)
        await self._after(incoming, handled)

    async def _settle_press(self, query: CallbackQuery, chat_id: int, *, waits: bool) -> None:
        """Stop the pressed button's spinner and, unless its reply is to go into the pressed
        message (``waits``), edit its keyboard away, both at once."""

        async def answer() -> None:
            try:
                await query.answer()
            except TelegramError:
                log.info("could not answer a button press; handling it anyway")

        try:
            if query.message is None or waits:
                await answer()
            else:
                await asyncio.gather(
                    answer(), self.sender.keyboard_answered(chat_id, query.message.message_id))
        except Exception as error:  # the press is handled anyway; its spinner times out
            log.warning("could not settle a button press (%s)", type(error).__name__)

    async def _after(self, incoming: Incoming, handled: Handled) -> None:
        """Carry out what only this edge can do: send an export, finish an erasure."""
        chat_id = incoming.chat_id
        if handled.export is not None:  # after "here is your data", through the outbox
            data = json.dumps(handled.export, ensure_ascii=False, indent=2)
            await self.service.send_file(incoming.client_id, incoming.event_id,
                                         "rehearse-my-data.json", data)
        self.sender.wake.set()
        if handled.erased:
            self._admitted.pop(client_key(chat_id))
            deleted = 0
            for chat, message_id in handled.deletable:
                try:
                    deleted += bool(await self.bot.delete_message(chat, message_id))
                except TelegramError:
                    continue
            await self._reply(chat_id, self.texts.system("delete.done", deleted_messages=deleted))

    async def _reply(self, chat_id: int, text: str) -> None:
        """Answer outside the outbox: only for people with no stored state at all."""
        try:
            await self.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
        except TelegramError as exc:
            log.warning("could not answer a chat (%s)", type(exc).__name__)


def _press(query: CallbackQuery) -> Press | None:
    """The pressed message's text and the pressed button's label, for its reply to go into
    it; None for a message without text or a button it does not show (a forged press)."""
    message = query.message
    if not isinstance(message, TelegramMessage) or not message.text or not message.reply_markup:
        return None
    labels = [button.text for row in message.reply_markup.inline_keyboard for button in row
              if button.callback_data == query.data]
    return Press(message.message_id, message.text_html, labels[0]) if labels else None


def _asks_for_greeting(event: object) -> bool:
    """A stranger's ``/start`` or ``/help``: answered each time (within the budget)."""
    return isinstance(event, Start) or (isinstance(event, Command) and event.name == "help")
