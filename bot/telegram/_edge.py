"""The Telegram edge's lifecycle: start, poll, send, fire timers, drain and stop.

Polling is at least once: an update's offset is confirmed to Telegram only after every
update of its batch was committed (or found to be a duplicate). If handling failed because
storage or the network did — a full disk, say — the batch is fetched again after a pause,
for as long as it takes, and dedup by update id makes the retry safe. Any other failure is
a bug, or data the store refuses, and would fail again: such an update is tried
:data:`MAX_ATTEMPTS` times, then given up (its sender is told something went wrong), so one
bad update cannot hold up everyone. An update python-telegram-bot cannot read at all is
given up at once (``_batch.py``). The next offset is always past the highest update id of
the batch.

Each loop (polling, sending, timers) is supervised: an unexpected exception restarts it
after a pause, and after :data:`MAX_RESTARTS` failures in a row the bot stops, so that
``rehearse run`` exits 1 instead of living on deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import signal
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.app import Loaded
from bot.config import Config
from bot.engine import COMMANDS, Blocked
from bot.service import Rehearsal
from bot.store import Store, StoreError
from bot.telegram._batch import Batch, read_batch, read_body
from bot.telegram._logging import keep_payloads_out_of_logs
from bot.telegram._registry import Handlers
from bot.telegram._sender import OutboxSender, Pacer

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


@dataclass(frozen=True, slots=True)
class Waits:
    """How long the edge waits, in seconds (tests pass shorter ones).

    Attributes:
        timers: Between two rounds of due timers (and of noticing operator commands).
        poll_backoff: After the 1st, 2nd, … failed ``getUpdates`` in a row (the last
            repeats), and between restarts of a failed loop. Capped low: while the bot waits
            it is deaf to ``/stop`` and crisis messages, and a failed poll costs Telegram
            almost nothing.
        refetch_after_failure: Before fetching a batch again whose handling failed for lack
            of storage or network (other failures are tried again at once).
        max_retry_after: The longest wait when Telegram answers ``getUpdates`` with 429 and
            a ``retry_after``: while waiting the bot is deaf to crisis messages, and asking
            again early costs one request that Telegram refuses again (the sender, by
            contrast, obeys ``retry_after`` in full).
        restart_forgiven_after: A loop that ran this long before it failed starts counting
            its failures afresh.
        purge: Between two retention purges.
    """

    timers: float = 1.0
    poll_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 10.0)
    refetch_after_failure: float = 5.0
    max_retry_after: float = 30.0
    restart_forgiven_after: float = 60.0
    purge: float = 24 * 60 * 60.0

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row."""
        return self.poll_backoff[min(failures, len(self.poll_backoff)) - 1]


#: Attempts at an update whose handling fails for any other reason before it is given up.
MAX_ATTEMPTS = 3
#: Seconds a long poll may take beyond its ``timeout`` before it counts as timed out.
POLL_READ_MARGIN = 10.0
#: How long a stop lets the updates in hand finish and the outbox drain (``stop``) ...
DRAIN_SECONDS = 8.0
#: ... and how much longer it allows for the sends in flight then, confirming the last
#: offset and closing connections: SIGTERM ends the bot within 10 s (systemd kills at 30).
STOP_GRACE = 2.0
#: Failures in a row after which a loop is no longer restarted and the bot stops.
MAX_RESTARTS = 5
#: The Bot API's address when ``telegram.api_base_url`` does not name another.
TELEGRAM_API = "https://api.telegram.org/bot"
#: Seconds a request may wait for a free connection before it fails as a timeout (and is
#: retried like one).
POOL_TIMEOUT = 30.0


class _PollRequest(HTTPXRequest):
    """The long poll's connection: reads a batch even if some of its updates are broken."""

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """Decode a body, one update at a time if the whole fails (``read_body``)."""
        return read_body(payload)


class Failure(enum.Enum):
    """What becomes of an update whose handling failed."""

    #: Storage or the network failed: the batch is fetched again after a pause.
    UNAVAILABLE = "unavailable"
    #: Anything else, before its :data:`MAX_ATTEMPTS`: the batch is fetched again at once.
    AGAIN = "again"
    #: Anything else, at its last attempt: given up, its sender told.
    GIVEN_UP = "given up"


def chat_of(client_id: str) -> int | None:
    """A Telegram client's private chat id is their user id."""
    if client_id.startswith("tg:"):
        return int(client_id[3:])
    return None


class TelegramEdge:
    """The running bot: python-telegram-bot's ``Bot`` in front of the service.

    Each update is handled in one pass (`Handlers.handle`), per client in order and
    clients concurrently; python-telegram-bot's ``Application`` is not used.

    Args:
        config: The configuration (token and base URL included).
        loaded: Engine, renderer and scripts.
        store: An opened store.
        clock: Current UTC time.
        pacer: Rate limits (defaults from ``config.sending``).
        waits: How long the edge waits between timer rounds and after failures.
    """

    #: The sender's class (several workers fence theirs, ``_queue``).
    sender_class: type[OutboxSender] = OutboxSender
    #: What the supervisor calls the loop that takes updates in.
    intake_name = "polling"

    def __init__(
        self,
        config: Config,
        loaded: Loaded,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
        waits: Waits = Waits(),
    ) -> None:
        assert config.token is not None
        self.config = config
        self.waits = waits
        self.service = Rehearsal(loaded.engine, store, clock, chat_of,
                                 config.storage.retention, alert_chats=config.telegram.admins)
        self.bot = Bot(
            config.token.get_secret_value(),
            base_url=config.api_base_url or TELEGRAM_API,
            request=HTTPXRequest(connection_pool_size=config.telegram.connection_pool_size,
                                 pool_timeout=POOL_TIMEOUT),
            get_updates_request=_PollRequest(connection_pool_size=1),
        )
        sending = config.sending
        self.sender = self.sender_class(
            self.bot, store, clock, self._blocked,
            pacer or Pacer.configured(sending),
            backoff=sending.backoff_seconds, connections=config.telegram.connection_pool_size,
        )
        self.handlers = Handlers(config, self.service, self.sender, loaded.renderer, clock)
        keep_payloads_out_of_logs()
        #: Set to stop polling and timers; then, once the updates in hand are handled, the
        #: sender's ``_handled`` is set and it drains the outbox.
        self._stop = asyncio.Event()
        self._handled = asyncio.Event()
        #: Telegram refused the token while polling (the edge then stops by itself).
        self.token_refused = False
        #: A loop kept failing (the edge then stops by itself; ``rehearse run`` exits 1).
        self.failed = False
        #: Until the batch is confirmed: failed attempts per update id, and the ids given up
        #: or unreadable (never handled again).
        self._attempts: Counter[int] = Counter()
        self._settled: set[int] = set()
        #: Polling, sending, timers.
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, publish the commands, and start polling, sending and timers."""
        await self.bot.initialize()
        await self._open_intake()
        texts = self.handlers.texts
        await self.bot.set_my_commands([
            BotCommand(name, texts.system(f"commands.{name}").strip()[:256])
            for name in COMMANDS
        ])
        self._tasks = [
            asyncio.create_task(self._supervised(self.intake_name, self._intake)),
            asyncio.create_task(self._supervised(
                "sending", lambda: self.sender.run(self._handled))),
            asyncio.create_task(self._supervised("timers", self._timers)),
        ]

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Stop within ``drain_seconds`` plus :data:`STOP_GRACE`, losing nothing.

        No more updates are fetched. Until ``drain_seconds`` have passed, the updates in
        hand are handled and committed and the outbox is sent; then whatever is left is cut
        short: an update not committed is not confirmed (Telegram delivers it again), a
        message not sent stays in the outbox for the next start. The grace covers the sends
        still in flight, confirming the last offset and closing the connections.
        """
        deadline = time.monotonic() + drain_seconds
        self._stop.set()
        self.sender.finish_by(deadline)
        if self._tasks:
            poll, sending, timers = self._tasks
            if await _finish([poll, timers], by=deadline):
                log.warning("stopped while handling updates; Telegram delivers the ones not "
                            "committed again at the next start")
            with contextlib.suppress(TimeoutError):  # button presses still being answered
                await asyncio.wait_for(self.handlers.settled(),
                                       max(0.0, deadline - time.monotonic()))
            self._handled.set()
            await _finish([sending], by=deadline + STOP_GRACE)
        await self.bot.shutdown()

    def request_stop(self) -> None:
        """Ask the edge to stop (safe from a signal handler)."""
        self._stop.set()

    async def wait(self) -> None:
        """Wait until :meth:`stop` is called, polling gave up (bad token) or a loop failed."""
        await self._stop.wait()

    # -- loops ------------------------------------------------------------------------------
    async def _open_intake(self) -> None:
        """Make Telegram hand updates to this edge: long polling needs any webhook gone."""
        await self.bot.delete_webhook(
            drop_pending_updates=self.config.telegram.drop_pending_updates)

    async def _intake(self) -> None:
        """Take updates in until stopped: here by long polling."""
        await self._poll()

    async def _take(self, batch: Batch) -> bool:
        """What polling does with a batch: handle it (True once every update is settled)."""
        return await self._handle(batch)

    def _on_duty(self) -> bool:
        """Whether this process fires timers and purges (among several workers, one does)."""
        return True

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        if not await supervise(name, loop, self._stop, self.waits):
            self.failed = True
            self._stop.set()

    async def _poll(self) -> None:
        offset: int | None = None  # past the highest id of the last batch handled
        confirmed: int | None = None  # the offset Telegram has seen
        failures = 0
        while not self._stop.is_set():
            try:
                results = await self._long_poll(offset)
                if results is None:
                    break  # stopped during a long poll
                batch = read_batch(results, self.bot)
            except (InvalidToken, Forbidden):
                log.critical("Telegram refused the bot token; stopping")
                self.token_refused = True
                self._stop.set()
                return
            except RetryAfter as exc:
                asked = _seconds(exc.retry_after)
                wait = min(asked, self.waits.max_retry_after)
                log.warning("Telegram asked to wait %.0f s before fetching updates again; "
                            "asking again in %.0f s", asked, wait)
                await self._pause(wait)
                continue
            except (TimedOut, NetworkError, Conflict) as exc:
                # Conflict: another instance is polling with this token (or was, a moment
                # ago during a deploy). Never let the poller die: the bot would go deaf.
                failures += 1
                log.warning("fetching updates failed (%s); retrying", type(exc).__name__)
                await self._pause(self.waits.backoff(failures))
                continue
            except Exception as exc:
                # The type only: a body that cannot be decoded may be quoted in the message.
                failures += 1
                log.error("fetching updates failed unexpectedly (%s); retrying",
                          type(exc).__name__)
                await self._pause(self.waits.backoff(failures))
                continue
            confirmed = offset
            if batch.nameless or batch.repeated:
                log.warning("ignored %d updates without a usable update_id and %d repeated "
                            "in their batch", batch.nameless, batch.repeated)
            if batch.highest is None:
                # Nothing but updates no offset can confirm: they are served again at once.
                failures = failures + 1 if batch.nameless else 0
                if batch.nameless:
                    await self._pause(self.waits.backoff(failures))
                continue
            failures = 0
            if await self._take(batch):
                offset = batch.highest + 1
        if offset is not None and offset != confirmed:
            await self._confirm(offset)

    async def _handle(self, batch: Batch) -> bool:
        """Handle a batch; True when every update is committed, a duplicate or given up."""
        unreadable = [u for u in batch.unreadable if u.update_id not in self._settled]
        for skipped in unreadable:
            log.error("update %d could not be read (python-telegram-bot does not know its "
                      "form); skipping it", skipped.update_id)
            self._settled.add(skipped.update_id)
        failed = await self._process([u for u in batch.updates
                                      if u.update_id not in self._settled])
        verdicts = {self._failure(update, error) for update, error in failed}
        chats = [u.chat_id for u in unreadable if u.chat_id is not None]
        chats += [chat.id for update, error in failed if update.update_id in self._settled
                  and (chat := update.effective_chat) is not None
                  and chat.type == chat.PRIVATE]
        await self._apologise(chats)
        if Failure.UNAVAILABLE in verdicts:
            await self._pause(self.waits.refetch_after_failure)
            return False
        if Failure.AGAIN in verdicts:
            return False
        self._attempts.clear()
        self._settled.clear()
        return True

    async def _process(self, updates: Sequence[Update]) -> list[tuple[Update, Exception]]:
        """Handle each update, per client in order (their turn is taken in arrival order),
        clients concurrently; return the updates whose handling failed, with the error."""
        outcomes = await asyncio.gather(*(self.handlers.handle(u) for u in updates),
                                        return_exceptions=True)
        return [(update, outcome) for update, outcome in zip(updates, outcomes, strict=True)
                if isinstance(outcome, Exception)]

    async def _confirm(self, offset: int) -> None:
        """Confirm the last handled batch when stopping, so it is not delivered again."""
        try:
            await asyncio.wait_for(self._get_updates(offset, poll=0, limit=1), STOP_GRACE)
        except (TelegramError, TimeoutError) as exc:
            log.info("could not confirm the last updates (%s); they will be deduplicated "
                     "when Telegram delivers them again", type(exc).__name__)

    async def _long_poll(self, offset: int | None) -> object:
        """One long poll, cut short (returning None) when the edge stops."""
        fetch = asyncio.create_task(
            self._get_updates(offset, poll=self.config.telegram.poll_timeout))
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not fetch.done():
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            return None
        return fetch.result()

    async def _get_updates(self, offset: int | None, poll: int, limit: int | None = None,
                           ) -> object:
        """``getUpdates``'s results (a long poll of ``poll`` seconds), decoded but not read
        into updates (``read_batch``).

        ``Bot.get_updates`` reads the batch as a whole and logs all of it when one update
        fails; its own route to the API, ``Bot._post``, with the polling connection, is used
        instead.
        """
        result: object = await self.bot._post(
            "getUpdates",
            {"offset": offset, "timeout": poll, "limit": limit,
             "allowed_updates": ALLOWED_UPDATES},
            read_timeout=poll + POLL_READ_MARGIN)
        return result

    async def _timers(self) -> None:
        """Every second: notice operator commands, fire due timers; purge once a day."""
        next_purge = 0.0
        while not self._stop.is_set():
            try:
                if await self.service.store.changed_elsewhere():
                    # An operator command (erase, invite, …): cached admissions may be stale.
                    self.handlers.forget_admitted()
                if not self._on_duty():
                    next_purge = 0.0  # whoever takes the duty over purges at once
                elif await self.service.fire_due_timers():
                    self.sender.wake.set()
                if self._on_duty() and time.monotonic() >= next_purge:
                    purged = await self.service.purge()
                    log.info("retention purge removed %d rows", purged)
                    next_purge = time.monotonic() + self.waits.purge
            except Exception:
                log.exception("timers or purge failed; trying again")
            await self._pause(self.waits.timers)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _blocked(self, client_id: str, outbox_id: int) -> None:
        await self.service.handle(client_id, f"tg:blocked:{outbox_id}", Blocked())

    def _failure(self, update: Update, error: Exception) -> Failure:
        """What becomes of an update whose handling failed (one given up is settled)."""
        if _is_unavailability(error):
            # SQLite's and Telegram's own messages: they never quote what a client typed.
            log.error("handling updates failed (%s: %s); fetching them again shortly",
                      type(error).__name__, error)
            return Failure.UNAVAILABLE
        self._attempts[update.update_id] += 1
        attempt = self._attempts[update.update_id]
        # The type and the frames only: an exception's message may quote what a client typed.
        log.error("handling update %d failed (%s), attempt %d of %d\n%s", update.update_id,
                  _kind(error), attempt, MAX_ATTEMPTS, _frames(error))
        if attempt < MAX_ATTEMPTS:
            return Failure.AGAIN
        self._settled.add(update.update_id)
        return Failure.GIVEN_UP

    async def _apologise(self, chat_ids: Sequence[int]) -> None:
        """Tell each private chat that its update was not handled (``error.generic``)."""
        for chat_id in chat_ids:
            try:
                await self.bot.send_message(
                    chat_id, self.handlers.texts.system("error.generic"),
                    parse_mode=ParseMode.HTML)
            except TelegramError as exc:
                log.warning("could not tell a client their update was not handled (%s)",
                            type(exc).__name__)


async def supervise(name: str, loop: Callable[[], Awaitable[None]], stop: asyncio.Event,
                    waits: Waits = Waits()) -> bool:
    """Run a loop of the edge until it returns, restarting it after an unexpected error.

    Between restarts it pauses as the poller does after failures (``waits.poll_backoff``).

    Returns:
        False when it failed :data:`MAX_RESTARTS` times in a row (a run that lasted
        ``waits.restart_forgiven_after`` seconds resets the count): the bot should stop.
    """
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await loop()
            return True
        except Exception as error:
            if time.monotonic() - started >= waits.restart_forgiven_after:
                failures = 0
            failures += 1
            log.error("the %s loop failed (%s), failure %d of %d\n%s", name, _kind(error),
                      failures, MAX_RESTARTS, _frames(error))
        if failures >= MAX_RESTARTS:
            log.critical("the %s loop keeps failing; stopping", name)
            return False
        if stop.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=waits.backoff(failures))
        log.info("restarting the %s loop", name)


async def _finish(tasks: Sequence[asyncio.Task[None]], by: float) -> bool:
    """Let tasks run until ``by`` (``time.monotonic()``), then cancel them; True if any was."""
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, by - time.monotonic()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return bool(pending)


def _frames(error: BaseException | None) -> str:
    return "".join(traceback.format_tb(error.__traceback__)) if error else ""


def _kind(error: BaseException | None) -> str:
    """An exception's type, and its root cause's if that differs (never its message)."""
    cause = _root_cause(error)
    if cause is error or cause is None:
        return type(error).__name__
    return f"{type(error).__name__} caused by {type(cause).__name__}"


def _root_cause(error: BaseException | None) -> BaseException | None:
    for _ in range(20):
        if error is None or error.__cause__ is None:
            break
        error = error.__cause__
    return error


#: How Python and SQLite refuse a value (a string with a lone surrogate, an int too large, a
#: constraint, a type SQLite cannot bind): the same data fails again however long one waits.
_DATA_ERRORS = (ValueError, TypeError, OverflowError, sqlite3.IntegrityError,
                sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def _is_unavailability(error: BaseException | None) -> bool:
    """Storage or network trouble, which clears by itself: worth waiting for, not a bug.

    Storage trouble is any store failure not caused by the data of the update (a full disk,
    a read-only or locked database, an I/O error, the store closed).
    """
    if isinstance(error, NetworkError):
        return not isinstance(error, BadRequest)
    if isinstance(error, StoreError):
        return not isinstance(_root_cause(error), _DATA_ERRORS)
    return isinstance(error, OSError | RetryAfter)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


def freeze_startup_objects() -> None:
    """Keep what start-up loaded out of the garbage collector's full passes.

    Scripts, texts and libraries live as long as the process; without this every full
    collection walks them all, a 20-45 ms pause for every client (docs/performance.md).
    """
    gc.collect()
    gc.freeze()


async def serve(
    config: Config, loaded: Loaded, store: Store,
    edge_class: Callable[[Config, Loaded, Store], TelegramEdge] = TelegramEdge,
) -> None:
    """Run the bot until SIGTERM or SIGINT, then shut down gracefully."""
    edge = edge_class(config, loaded, store)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, edge.request_stop)
    await edge.start()
    freeze_startup_objects()
    log.info("Rehearse is running")
    await edge.wait()
    await edge.stop()
    if edge.token_refused:
        raise InvalidToken("Telegram refused the bot token")
    if edge.failed:
        raise RuntimeError("a loop of the bot kept failing (see the errors above)")
    log.info("Rehearse stopped cleanly")
