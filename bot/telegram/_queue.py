"""Workers sharing one database: updates are stored first, then handled by whoever is free.

:class:`QueuedEdge` is the edge of one such worker. It is used in webhook mode (even alone,
on SQLite) and whenever the store is PostgreSQL, so that any number of processes, on any
machines, can serve one bot.

* **Taking updates in.** In webhook mode every worker receives (``_webhook``): Telegram's
  requests reach whichever worker the proxy picks, and each stores its update before
  answering. In polling mode only the leader (below) polls, storing each batch before it
  confirms it to Telegram.
* **Handling them.** Every worker claims stored updates (``Store.claim_updates``): only the
  oldest unhandled update of each client, and only while no other claim holds it, so one
  client's updates are handled one at a time and in order, whichever worker takes each.
  A claimed batch goes through the same per-update pass as a polled batch
  (``TelegramEdge._handle``): committed, found a duplicate, or given up, it is marked
  handled; otherwise (storage or the network failed, an attempt of a bug) its claims are
  given back and it is handled again (dedup by update id makes that safe). A claim is
  renewed while its worker is busy with it and runs out when the worker dies, after
  ``Timing.claim``, when another worker takes the update over.
* **One leader.** A lease in the store (``Timing.leader``, renewed every
  ``Timing.renew_every``) makes one worker the leader: it alone sends the outbox (so each
  chat's order and the global rate limit hold, and Telegram's own limit of about 30
  messages a second is far below what one sender does), fires timers, runs the purge and, in
  polling mode, polls. Its sender is fenced: it starts no send once its lease may have run
  out by its own clock, so a new leader never sends beside it. Another worker takes over
  when the leader stops renewing.

A commit computed by one worker from a state another worker changed meanwhile (a timer of
the leader and a message of the same client, say) is refused by the store and computed
again (``Commit.based_on``, in ``bot.service``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import Update

from bot.app import Loaded
from bot.config import Config
from bot.store import Store, StoreError
from bot.telegram._batch import Batch, Cut, read_batch
from bot.telegram._edge import ALLOWED_UPDATES, TelegramEdge, Waits
from bot.telegram._sender import OutboxSender, Pacer, Press

if TYPE_CHECKING:
    from bot.telegram._webhook import WebhookServer

log = logging.getLogger(__name__)
LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Timing:
    """How long claims and the leader's lease last, and how often they are renewed.

    Attributes:
        claim: A claim on an update runs out this long after its worker's last renewal.
        leader: The leader's lease runs out this long after its last renewal.
        renew_every: Seconds between renewals (of the lease, and of the claims being handled).
        idle_check: Seconds between looks at the queue when nothing wakes the worker (other
            workers' updates wake it through the store's notifications, where it has them).
        batch: Most updates (of different clients) claimed at once.
    """

    claim: timedelta = timedelta(seconds=15)
    leader: timedelta = timedelta(seconds=10)
    renew_every: float = 2.0
    idle_check: float = 0.5
    batch: int = 64


class FencedSender(OutboxSender):
    """A sender that sends only while its worker leads: :meth:`fence` bounds its sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fence = -math.inf
        self._stop_by = math.inf
        super().finish_by(-math.inf)

    def fence(self, until: float) -> None:
        """Start no send after `until` (``time.monotonic()``): the end of the leader's lease."""
        self._fence = until
        super().finish_by(min(until, self._stop_by))

    def finish_by(self, deadline: float) -> None:
        """Stop sending by `deadline`, or earlier if the lease ends first."""
        self._stop_by = deadline
        super().finish_by(min(self._fence, deadline))

    def pressed(self, chat_id: int, message_id: int, press: Press | None) -> bool:
        """Never keep a press for its reply: another worker may send it, and may not know
        the chat's newest message; its keyboard is edited away at once."""
        super().pressed(chat_id, message_id, None)
        return False


class QueuedEdge(TelegramEdge):
    """The edge of one worker of several (or of a webhook): updates go through the store.

    Args:
        config: The configuration; ``telegram.mode`` says webhook or polling.
        loaded: Engine, renderer and scripts.
        store: An opened store (shared with the other workers).
        clock: Current UTC time.
        pacer: Rate limits (defaults from ``config.sending``).
        waits: How long the edge waits between timer rounds and after failures.
        timing: Claims and leases.
        owner: This worker's name in claims and leases (default: host, pid and a random part).
    """

    sender_class = FencedSender
    intake_name = "updates"

    def __init__(
        self,
        config: Config,
        loaded: Loaded,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
        waits: Waits | None = None,
        *,
        timing: Timing | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(config, loaded, store, clock, pacer, waits or Waits())
        self.clock = clock
        self.timing = timing or Timing()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.webhook = config.telegram.mode == "webhook"
        if self.webhook and (config.telegram.webhook.url is None or config.webhook_secret is None):
            raise ValueError("webhook mode needs telegram.webhook.url and "
                             "TELEGRAM_WEBHOOK_SECRET")
        self._queued = asyncio.Event()
        self._leading = False
        self._leading_changed = asyncio.Event()
        self._lease_ends = -math.inf
        self._leadership: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._server: WebhookServer | None = None
        #: Updates this worker handled (or gave up), for logs and tests.
        self.handled_updates = 0

    @property
    def leading(self) -> bool:
        """Whether this worker is the leader (sends, fires timers, purges, polls) now: it
        holds the lease and, by its own clock, the lease has not run out."""
        return self._leading and time.monotonic() < self._lease_ends

    async def start(self) -> None:
        """Start leading (if no worker does), receiving or polling, handling and sending."""
        self._leadership = asyncio.create_task(self._lead(), name="leadership")
        self._listening = asyncio.create_task(self._listen(), name="listening")
        await super().start()

    async def stop(self, drain_seconds: float = 8.0) -> None:
        """Stop receiving (Telegram posts to another worker, or again later), stop as a single
        bot does, then give the leader's lease up for another worker."""
        server, self._server = self._server, None
        try:
            if server is not None:
                await server.stop()
            await super().stop(drain_seconds)
        finally:
            tasks = [task for task in (self._leadership, self._listening) if task is not None]
            self._leadership = self._listening = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._leading:
                self._set_leading(False)
                with contextlib.suppress(StoreError):
                    await self.service.store.drop_lease(LEADER, self.owner)

    # -- the edge's hooks ---------------------------------------------------------------------
    async def _open_intake(self) -> None:
        """Polling: no webhook may be set. Webhook: listen, then tell Telegram where."""
        if not self.webhook:
            await super()._open_intake()
            return
        from bot.telegram._webhook import WebhookServer  # noqa: PLC0415  (needs aiohttp)

        settings, secret = self.config.telegram.webhook, self.config.webhook_secret
        assert settings.url is not None and secret is not None
        self._server = WebhookServer(urlsplit(settings.url).path, secret.get_secret_value(),
                                     self.bot, self._store_batch)
        await self._server.start(settings.listen, settings.port)
        await self.bot.set_webhook(
            settings.url, secret_token=secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES, max_connections=settings.max_connections,
            drop_pending_updates=self.config.telegram.drop_pending_updates)

    async def _intake(self) -> None:
        """Handle claimed updates (and poll while leading, without a webhook) until stopped."""
        if self.webhook:
            await self._consume()
        else:
            await asyncio.gather(self._poll_while_leading(), self._consume())

    async def _take(self, batch: Batch) -> bool:
        """A polled batch is stored, not handled here; True once it is (then confirmed)."""
        try:
            await self._store_batch(batch)
        except StoreError as exc:
            log.error("could not store polled updates (%s); fetching them again shortly", exc)
            await self._pause(self.waits.refetch_after_failure)
            return False
        return True

    def _on_duty(self) -> bool:
        return self.leading

    # -- taking updates in --------------------------------------------------------------------
    async def _store_batch(self, batch: Batch) -> None:
        """Store every update of a batch in its client's lane, then wake the handling."""
        store, now = self.service.store, self.clock()
        for update in batch.updates:
            await store.enqueue_update(update.update_id, _lane(update), update.to_dict(), now)
        for unreadable in batch.unreadable:
            chat = unreadable.chat_id
            body: dict[str, object] = {"update_id": unreadable.update_id}
            if chat is not None:  # what the apology needs: the private chat it came from
                body["message"] = {"chat": {"id": chat, "type": "private"}}
            await store.enqueue_update(unreadable.update_id, "" if chat is None else f"tg:{chat}",
                                       body, now, readable=False)
        self._queued.set()

    async def _poll_while_leading(self) -> None:
        """Poll Telegram while this worker leads; stop polling when the lead is lost."""
        while not self._stop.is_set():
            await self._until(lambda: self._leading)
            if self._stop.is_set():
                return
            polling = asyncio.create_task(self._poll())
            lost = asyncio.create_task(self._until(lambda: not self._leading))
            await asyncio.wait({polling, lost}, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if not polling.done():  # stored but unconfirmed updates are delivered again:
                polling.cancel()  # dedup by update id keeps them once
                await asyncio.gather(polling, return_exceptions=True)
                continue
            polling.result()  # a failure goes to the supervisor

    # -- handling stored updates --------------------------------------------------------------
    async def _consume(self) -> None:
        store, timing = self.service.store, self.timing
        while not self._stop.is_set():
            self._queued.clear()
            try:
                claimed = await store.claim_updates(self.owner, timing.batch, timing.claim)
                if claimed and await store.changed_elsewhere():
                    self.handlers.forget_admitted()  # a client erased by another worker
            except StoreError as exc:
                log.error("could not claim stored updates (%s); trying again shortly", exc)
                await self._pause(self.waits.refetch_after_failure)
                continue
            if not claimed:
                await self._wait_for_updates()
                continue
            ids = [update.update_id for update in claimed]
            batch = read_batch([u.body if u.readable else Cut(u.body) for u in claimed],
                               self.bot)
            renewing = asyncio.create_task(self._renew_claims())
            try:
                settled = await self._handle(batch)
            except asyncio.CancelledError:  # stopped at the deadline: others take them over
                with contextlib.suppress(StoreError):
                    await store.release_updates(self.owner, ids)
                raise
            finally:
                renewing.cancel()
            try:
                if settled:
                    await store.finish_updates(ids)
                    self.handled_updates += len(ids)
                else:
                    await store.release_updates(self.owner, ids)
            except StoreError as exc:  # the claims run out and the updates come again
                log.error("could not record updates as handled (%s); they are deduplicated "
                          "when handled again", exc)

    async def _renew_claims(self) -> None:
        while True:
            await asyncio.sleep(self.timing.renew_every)
            with contextlib.suppress(StoreError):
                await self.service.store.renew_claims(self.owner, self.timing.claim)

    async def _wait_for_updates(self) -> None:
        """Until this worker stored an update, another may have, or the edge stops."""
        waiter = asyncio.create_task(self._queued.wait())
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait({waiter, stopper}, timeout=self.timing.idle_check,
                           return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()

    async def _listen(self) -> None:
        """Wake up at once when another worker stored an update or queued messages."""
        async for kind in self.service.store.notifications():
            if kind == "updates":
                self._queued.set()
            elif self._leading:
                self.sender.wake.set()

    # -- leading ------------------------------------------------------------------------------
    async def _lead(self) -> None:
        """Take or renew the leader's lease every ``renew_every`` seconds, for good."""
        store, timing = self.service.store, self.timing
        while True:
            asked = time.monotonic()
            try:
                held = await store.hold_lease(LEADER, self.owner, timing.leader)
            except StoreError as exc:  # keep leading until the lease may have run out
                log.warning("could not renew the leader's lease (%s)", exc)
                held = self._leading and time.monotonic() < self._lease_ends
            else:
                if held:  # counted from before asking: never later than the store's end
                    self._lease_ends = asked + timing.leader.total_seconds()
            self._set_leading(held and time.monotonic() < self._lease_ends)
            await asyncio.sleep(timing.renew_every)

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            log.info("this worker %s the leader (sending, timers, purge%s)",
                     "is now" if leading else "is no longer",
                     "" if self.webhook else ", polling")
        self._leading = leading
        fence = self._lease_ends if leading else -math.inf
        assert isinstance(self.sender, FencedSender)
        self.sender.fence(fence)
        if leading:
            self.sender.wake.set()
        self._leading_changed.set()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition() and not self._stop.is_set():
            self._leading_changed.clear()
            waiter = asyncio.create_task(self._leading_changed.wait())
            stopper = asyncio.create_task(self._stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()


def _lane(update: Update) -> str:
    """The lane of an update: its sender's client id (private chat id = user id)."""
    user = update.effective_user
    return "" if user is None else f"tg:{user.id}"
