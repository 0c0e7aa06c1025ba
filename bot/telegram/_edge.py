"""The Telegram edge's lifecycle: start, poll, send, fire timers, drain and stop.

Polling is at least once: an update's offset is confirmed to Telegram only after every
update of its batch was committed (or found to be a duplicate). If handling failed — a full
disk, say — the batch is fetched again after a pause, and dedup by update id makes the
retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from telegram import BotCommand, Update
from telegram.error import (
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.app import Loaded, crisis_matcher, resolve
from bot.config import Config
from bot.engine import COMMANDS, Blocked
from bot.service import Rehearsal, Retention
from bot.store import Store
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
#: Seconds to wait before fetching a batch again whose handling failed.
REFETCH_AFTER_FAILURE = 5.0
PURGE_INTERVAL = 24 * 60 * 60.0


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
            .token(config.token.get_secret_value())
            .updater(None)
            .concurrent_updates(PerClientProcessor())
            .get_updates_read_timeout(config.telegram.poll_timeout + 10)
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
        prompts = config.prompts
        self.handlers = Handlers(config, self.service, self.sender, loaded.renderer,
                                 crisis_matcher(resolve(Path(prompts.path)), prompts.locale), clock)
        self.handlers.register(self.app)
        self.app.add_error_handler(self._note_failure)
        self._stop = asyncio.Event()
        #: Telegram refused the token while polling (the edge then stops by itself).
        self.token_refused = False
        self._failed = False
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
            self._failed = False
            for update in updates:
                await self.app.update_queue.put(update)
            await self.app.update_queue.join()
            if self._failed:
                log.error("handling updates failed; fetching them again shortly")
                await self._pause(REFETCH_AFTER_FAILURE)
                continue
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
        """Fire due timers every second; enforce retention once a day (and at start)."""
        next_purge = 0.0
        while not self._stop.is_set():
            try:
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
        self._failed = True


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def serve(config: Config, loaded: Loaded, store: Store) -> None:
    """Run the bot until SIGTERM or SIGINT, then shut down gracefully."""
    edge = TelegramEdge(config, loaded, store)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, edge.request_stop)
    await edge.start()
    log.info("Rehearse is running")
    await edge.wait()
    await edge.stop()
    if edge.token_refused:
        raise InvalidToken("Telegram refused the bot token")
    log.info("Rehearse stopped cleanly")
