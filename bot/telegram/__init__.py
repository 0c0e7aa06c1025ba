"""The python-telegram-bot edge: updates in, outbox messages out.

``run_bot(config)`` is what ``rehearse run`` calls; :class:`TelegramEdge` is the running
bot (tests drive it against a local fake Bot API server).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import partial

from telegram import Bot
from telegram.error import InvalidToken, TelegramError

from bot.app import build, store_from
from bot.config import WEBHOOK_SECRET_ENV, Config
from bot.store import StoreError, is_postgres
from bot.telegram._edge import TelegramEdge, Waits, chat_of, serve
from bot.telegram._invites import code_hash, new_code
from bot.telegram._logging import install_token_redaction
from bot.telegram._queue import QueuedEdge, Timing
from bot.telegram._sender import OutboxSender, Pacer
from bot.telegram._therapist import runnable, user_key
from bot.telegram._workers import run_workers

log = logging.getLogger(__name__)

__all__ = [
    "OutboxSender",
    "Pacer",
    "QueuedEdge",
    "TelegramEdge",
    "Timing",
    "Waits",
    "bot_username",
    "chat_of",
    "code_hash",
    "install_token_redaction",
    "new_code",
    "run_bot",
    "run_workers",
    "runnable",
    "user_key",
]


async def bot_username(config: Config) -> str | None:
    """The bot's @username from Telegram (None without a token or when unreachable)."""
    if config.token is None:
        return None
    token = config.token.get_secret_value()
    bot = Bot(token, base_url=config.api_base_url) if config.api_base_url else Bot(token)
    try:
        async with bot:
            return bot.username
    except TelegramError:
        return None


def run_bot(config: Config, *, timing: Timing | None = None) -> int:
    """Run the Telegram bot until SIGTERM/SIGINT; returns the exit code.

    Args:
        config: The configuration.
        timing: Claims and leases of a worker sharing its database (tests shorten them).
    """
    assert config.token is not None
    install_token_redaction(config.token.get_secret_value())
    logging.basicConfig(level=config.logging.level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # python-telegram-bot logs whole updates and outgoing texts at DEBUG: what clients write
    # never belongs in a log, so its loggers stay at INFO or above whatever the level.
    telegram_logger = logging.getLogger("telegram")
    telegram_logger.setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))
    loaded = build(config)
    for finding in loaded.findings:
        print(finding, file=sys.stderr)
    if not loaded.scripts:
        print("rehearse run: no script passed its checks", file=sys.stderr)
        return 1

    queued = config.telegram.mode == "webhook" or is_postgres(config.storage.database)
    if config.telegram.mode == "webhook":
        problem = _webhook_problem(config)
        if problem is not None:
            print(f"rehearse run: {problem}", file=sys.stderr)
            return 1

    async def main() -> None:
        async with store_from(config) as store:
            edge_class = partial(QueuedEdge, timing=timing) if queued else TelegramEdge
            await serve(config, loaded, store, edge_class)

    # Never let an exception escape as a bare traceback: python-telegram-bot puts the token
    # into InvalidToken's message, and a traceback printed by Python bypasses the redaction.
    try:
        asyncio.run(main())
    except StoreError as exc:  # e.g. a damaged or foreign database file: one clear line
        print(exc, file=sys.stderr)
        return 1
    except InvalidToken:
        log.critical("Telegram rejected the bot token; check TELEGRAM_BOT_TOKEN")
        return 1
    except TelegramError as exc:
        log.critical("could not reach Telegram (%s); exiting", exc)
        return 1
    except OSError as exc:  # e.g. the webhook's port is taken
        log.critical("%s; exiting", exc.strerror or exc)
        return 1
    except Exception:
        log.critical("Rehearse stopped after an unexpected error", exc_info=True)
        return 1
    return 0


def _webhook_problem(config: Config) -> str | None:
    """What webhook mode lacks to start, or None."""
    if config.telegram.webhook.url is None:
        return ("webhook mode needs telegram.webhook.url, the public HTTPS URL Telegram "
                "posts updates to (docs/operations.md, section 16)")
    if config.webhook_secret is None:
        return (f"webhook mode needs {WEBHOOK_SECRET_ENV}, a secret of 16 to 256 letters, "
                "digits, - or _ that Telegram sends with every update")
    try:
        import aiohttp  # noqa: F401, PLC0415
    except ImportError:
        return "webhook mode needs aiohttp: python3 -m pip install -e '.[webhook]'"
    return None
