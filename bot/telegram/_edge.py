"""The Telegram edge's lifecycle: start, poll, send, fire timers, drain and stop.

Polling is at least once: an update's offset is confirmed to Telegram only after every
update of its batch was committed (or found to be a duplicate). If handling failed because
storage or the network did — a full disk, say — the batch is fetched again after a pause,
for as long as it takes, and dedup by update id makes the retry safe. Any other failure is
a bug that would fail again: such an update is tried :data:`MAX_ATTEMPTS` times, then given
up (its sender is told something went wrong), so one bad update cannot hold up everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from telegram import BotCommand, Update
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
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    ContextTypes,
    Job,
)

from bot.app import Loaded
from bot.config import Config
from bot.engine import COMMANDS, Blocked
from bot.service import Rehearsal, Retention
from bot.store import Store, StoreError
from bot.telegram._processor import PerClientProcessor
from bot.telegram._registry import Handlers
from bot.telegram._sender import OutboxSender, Pacer

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
TIMER_INTERVAL = 1.0
#: Seconds to wait after the 1st, 2nd, … failed ``getUpdates`` in a row (the last repeats).
#: Capped low: while the bot waits it is deaf to ``/stop`` and crisis messages, and a
#: failed poll costs Telegram almost nothing.
POLL_BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 10.0)
#: Seconds to wait before fetching a batch again whose handling failed for lack of storage
#: or network (other failures are tried again at once).
REFETCH_AFTER_FAILURE = 5.0
#: Attempts at an update whose handling fails for any other reason before it is given up.
MAX_ATTEMPTS = 3
PURGE_INTERVAL = 24 * 60 * 60.0
#: Connections to the Bot API for everything but polling (python-telegram-bot's default is
#: 256). httpx checks every idle connection on every request, so a large pool costs CPU on
#: each one; 8 carry 160 requests a second at a 50 ms round trip, well above what
#: Telegram's limit of about 30 messages a second needs (docs/performance.md).
HTTP_CONNECTIONS = 8
#: Seconds a request may wait for a free connection before it fails as a timeout (and is
#: retried like one).
POOL_TIMEOUT = 30.0


class _Application(Application):  # type: ignore[type-arg]
    """python-telegram-bot's ``Application`` without a memory cost per client ever seen.

    Without a persistence, python-telegram-bot 22 still adds every update's chat id and user
    id to two sets that only writing to a persistence empties, so they grow with every
    client for the life of the process. This bot keeps no state in python-telegram-bot.
    """

    __slots__ = ()

    def _mark_for_persistence_update(
        self, *, update: object | None = None, job: Job | None = None  # type: ignore[type-arg]
    ) -> None:
        if self.persistence is not None:
            super()._mark_for_persistence_update(update=update, job=job)


def chat_of(client_id: str) -> int | None:
    """A Telegram client's private chat id is their user id."""
    if client_id.startswith("tg:"):
        return int(client_id[3:])
    return None


class TelegramEdge:
    """The running bot: python-telegram-bot in front of the service.

    Args:
        config: The configuration (token and base URL included).
        loaded: Engine, renderer and scripts.
        store: An opened store.
        clock: Current UTC time.
        pacer: Rate limits (defaults from ``config.sending``).
    """

    def __init__(
        self,
        config: Config,
        loaded: Loaded,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        assert config.token is not None
        self.config = config
        retention = config.storage.retention
        self.service = Rehearsal(loaded.engine, store, clock, chat_of,
                                 Retention(retention.ledger_days, retention.answers_days))
        builder = (
            ApplicationBuilder()
            .application_class(_Application)
            .token(config.token.get_secret_value())
            .updater(None)
            .concurrent_updates(PerClientProcessor())
            .get_updates_read_timeout(config.telegram.poll_timeout + 10)
            .connection_pool_size(HTTP_CONNECTIONS)
            .pool_timeout(POOL_TIMEOUT)
        )
        if config.api_base_url:
            builder = builder.base_url(config.api_base_url)
        self.app: Application = builder.build()  # type: ignore[type-arg]
        sending = config.sending
        self.sender = OutboxSender(
            self.app.bot, store, clock, self._blocked,
            pacer or Pacer(per_chat=sending.per_chat_per_second,
                           overall=sending.global_per_second),
            backoff=sending.backoff_seconds,
        )
        self.handlers = Handlers(config, self.service, self.sender, loaded.renderer, clock)
        self.handlers.register(self.app)
        self.app.add_error_handler(self._note_failure)
        self._stop = asyncio.Event()
        #: Telegram refused the token while polling (the edge then stops by itself).
        self.token_refused = False
        #: Handling failed in the current batch: for lack of storage or network / otherwise.
        self._unavailable = False
        self._failed = False
        #: Failed attempts per update id in the current batch, and the updates given up.
        self._attempts: Counter[int] = Counter()
        self._given_up: list[Update] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, publish the commands, and start polling, sending and timers."""
        await self.app.initialize()
        await self.app.bot.delete_webhook(
            drop_pending_updates=self.config.telegram.drop_pending_updates)
        texts = self.handlers.texts
        await self.app.bot.set_my_commands([
            BotCommand(name, texts.system(f"commands.{name}").strip()[:256])
            for name in COMMANDS
        ])
        await self.app.start()
        self._tasks = [
            asyncio.create_task(self._poll()),
            asyncio.create_task(self.sender.run(self._stop)),
            asyncio.create_task(self._timers()),
        ]

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop gracefully: no new updates, in-flight ones finish, the outbox is flushed."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.app.running:
            await self.app.stop()
        await self.sender.drain(drain_seconds)
        await self.app.shutdown()

    def request_stop(self) -> None:
        """Ask the edge to stop (safe from a signal handler)."""
        self._stop.set()

    async def wait(self) -> None:
        """Wait until :meth:`stop` is called or polling gave up (bad token)."""
        await self._stop.wait()

    # -- loops ------------------------------------------------------------------------------
    async def _poll(self) -> None:
        offset: int | None = None
        failures = 0
        confirmed: int | None = None
        while not self._stop.is_set():
            try:
                updates = await self._get_updates(offset)
            except (InvalidToken, Forbidden):
                log.critical("Telegram refused the bot token; stopping")
                self.token_refused = True
                self._stop.set()
                return
            except RetryAfter as exc:
                await self._pause(float(_seconds(exc.retry_after)))
                continue
            except (TimedOut, NetworkError, Conflict) as exc:
                # Conflict: another instance is polling with this token (or was, a moment
                # ago during a deploy). Never let the poller die: the bot would go deaf.
                failures += 1
                log.warning("fetching updates failed (%s); retrying", type(exc).__name__)
                await self._pause(POLL_BACKOFF[min(failures, len(POLL_BACKOFF)) - 1])
                continue
            except Exception:
                failures += 1
                log.exception("fetching updates failed unexpectedly; retrying")
                await self._pause(POLL_BACKOFF[min(failures, len(POLL_BACKOFF)) - 1])
                continue
            if updates is None:
                return  # stopped during a long poll, which carried the offset already
            confirmed = offset
            failures = 0
            self._unavailable = self._failed = False
            for update in updates:
                await self.app.update_queue.put(update)
            await self.app.update_queue.join()
            await self._apologise_for_given_up()
            if self._unavailable:
                await self._pause(REFETCH_AFTER_FAILURE)
                continue
            if self._failed:
                continue
            self._attempts.clear()
            if updates:
                offset = updates[-1].update_id + 1
        if offset is not None and offset != confirmed:
            await self._confirm(offset)

    async def _confirm(self, offset: int) -> None:
        """Confirm the last handled batch when stopping, so it is not delivered again."""
        try:
            await self.app.bot.get_updates(offset=offset, timeout=0, limit=1,
                                           allowed_updates=ALLOWED_UPDATES)
        except TelegramError as exc:
            log.info("could not confirm the last updates (%s); they will be deduplicated "
                     "when Telegram delivers them again", type(exc).__name__)

    async def _get_updates(self, offset: int | None) -> tuple[Update, ...] | None:
        """One long poll, cut short (returning None) when the edge stops."""
        fetch = asyncio.create_task(self.app.bot.get_updates(
            offset=offset, timeout=self.config.telegram.poll_timeout,
            allowed_updates=ALLOWED_UPDATES))
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not fetch.done():
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            return None
        updates: tuple[Update, ...] = fetch.result()
        return updates

    async def _timers(self) -> None:
        """Every second: notice operator commands, fire due timers; purge once a day."""
        next_purge = 0.0
        while not self._stop.is_set():
            try:
                if await self.service.store.changed_elsewhere():
                    # An operator command (erase, invite, …): cached admissions may be stale.
                    self.handlers.forget_admitted()
                if await self.service.fire_due_timers():
                    self.sender.wake.set()
                if time.monotonic() >= next_purge:
                    purged = await self.service.purge()
                    log.info("retention purge removed %d rows", purged)
                    next_purge = time.monotonic() + PURGE_INTERVAL
            except Exception:
                log.exception("timers or purge failed; trying again")
            await self._pause(TIMER_INTERVAL)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _blocked(self, client_id: str, outbox_id: int) -> None:
        await self.service.handle(client_id, f"tg:blocked:{outbox_id}", Blocked())

    async def _note_failure(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's error handler: decide whether the failed update is fetched again.

        Raises:
            ApplicationHandlerStop: Always: no later handler group sees an update that
                failed (a gatekeeper that failed must not let it through).
        """
        self._decide_after_failure(update, context.error)
        raise ApplicationHandlerStop

    def _decide_after_failure(self, update: object, error: BaseException | None) -> None:
        if _is_unavailability(error) or not isinstance(update, Update):
            # SQLite's and Telegram's own messages: they never quote what a client typed.
            log.error("handling updates failed (%s: %s); fetching them again shortly",
                      type(error).__name__, error)
            self._unavailable = True
            return
        self._attempts[update.update_id] += 1
        attempt = self._attempts[update.update_id]
        # The type and the frames only: an exception's message may quote what a client typed.
        frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
        log.error("handling update %d failed (%s), attempt %d of %d\n%s", update.update_id,
                  type(error).__name__, attempt, MAX_ATTEMPTS, frames)
        if attempt < MAX_ATTEMPTS:
            self._failed = True
        else:
            self._given_up.append(update)

    async def _apologise_for_given_up(self) -> None:
        """Tell the sender of each given-up update that it was not handled."""
        given_up, self._given_up = self._given_up, []
        for update in given_up:
            chat = update.effective_chat
            if chat is None or chat.type != chat.PRIVATE:
                continue
            try:
                await self.app.bot.send_message(
                    chat.id, self.handlers.texts.system("error.generic"),
                    parse_mode=ParseMode.HTML)
            except TelegramError as exc:
                log.warning("could not say that update %d was given up (%s)", update.update_id,
                            type(exc).__name__)


def _is_unavailability(error: BaseException | None) -> bool:
    """Storage or network trouble, which clears by itself: worth waiting for, not a bug."""
    if isinstance(error, NetworkError):
        return not isinstance(error, BadRequest)
    return isinstance(error, StoreError | OSError | RetryAfter)


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


async def serve(config: Config, loaded: Loaded, store: Store) -> None:
    """Run the bot until SIGTERM or SIGINT, then shut down gracefully."""
    edge = TelegramEdge(config, loaded, store)
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
    log.info("Rehearse stopped cleanly")
