"""Webhook mode's receiver: Telegram posts each update, the bot stores it, then answers 200.

Telegram posts every update as one JSON request to the URL given to ``setWebhook``, with the
secret token in ``X-Telegram-Bot-Api-Secret-Token``. A request without the right token is
refused (403) unread. One with it is decoded exactly as the poller decodes ``getUpdates``
(``_batch``: one update at a time, lone surrogates replaced, JSON nested too deep cut to its
first levels, so that even an update python-telegram-bot cannot read is stored and its
sender told) and stored in the store's update queue, deduplicated by ``update_id``. Only
then is it answered 200; if storing fails it is answered 503 and Telegram posts it again
later. So an update Telegram saw answered is in the database: a worker that dies after the
200 loses nothing, and any worker may handle it.

A request with the right token that holds nothing usable — no JSON, no ``update_id``, over
:data:`MAX_BODY_BYTES` — is answered 200 too, logged (never its content) and dropped:
Telegram posts a request it saw refused again and again with the same bytes, and holds the
updates behind it meanwhile, so a refusal would only stall everyone else.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from telegram import Bot
from telegram.error import TelegramError

from bot.store import StoreError
from bot.telegram._batch import Batch, read_batch, read_body

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: Largest request body read (an update is a few kilobytes; Telegram's largest far below).
MAX_BODY_BYTES = 1 << 20


class WebhookServer:
    """An HTTP server that stores the updates Telegram posts to `path`.

    Args:
        path: The URL path Telegram posts to (the path of ``telegram.webhook.url``).
        secret: The secret token every request must carry.
        bot: The bot, to read updates with.
        store_batch: Stores a batch of updates durably (raises `StoreError` if it cannot).
    """

    def __init__(
        self, path: str, secret: str, bot: Bot, store_batch: Callable[[Batch], Awaitable[None]]
    ) -> None:
        self._path = path or "/"
        self._secret = secret.encode()
        self._bot = bot
        self._store_batch = store_batch
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on `host`:`port`; other workers of this machine may listen on it too."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._receive)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=True).start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"cannot listen on {host}:{port} for the webhook "
                                     f"({exc.strerror})") from None
        self._runner = runner
        log.info("receiving updates on %s:%d%s", host, port, self._path)

    async def stop(self) -> None:
        """Stop accepting requests (Telegram posts what it could not deliver again later)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._secret):
            log.warning("refused a webhook request without the right secret token")
            return web.Response(status=403, text="forbidden")
        if request.path != self._path:
            return web.Response(status=404, text="not found")
        if request.method != "POST":
            return web.Response(status=405, text="use POST")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _dropped(f"was over {MAX_BODY_BYTES} bytes")
        try:
            # The poller's reading of a getUpdates answer, for a batch of one.
            results = read_body(b'{"ok":true,"result":[' + body + b"]}")["result"]
            batch = read_batch(results, self._bot)
        except TelegramError:
            return _dropped("held no update that can be read")
        if batch.highest is None:
            return _dropped("held no usable update_id")
        try:
            await self._store_batch(batch)
        except StoreError as exc:  # the database's own message: it never quotes a client
            log.error("could not store update %d (%s); Telegram will post it again",
                      batch.highest, exc)
            return web.Response(status=503, text="try again later")
        return web.Response(text="ok")


def _dropped(why: str) -> web.Response:
    """Acknowledge a request from Telegram that holds nothing to store (a retry cannot help)."""
    log.error("a webhook request %s; acknowledged and dropped", why)
    return web.Response(text="ignored")
