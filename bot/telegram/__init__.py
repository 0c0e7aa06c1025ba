"""The python-telegram-bot edge: updates in, outbox messages out.

``run_bot(config)`` is what ``rehearse run`` calls; :class:`TelegramEdge` is the running
bot (tests drive it against a local fake Bot API server).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from telegram import Bot
from telegram.error import InvalidToken, TelegramError

from bot.app import build, store_from
from bot.config import Config
from bot.store import StoreError
from bot.telegram._edge import TelegramEdge, chat_of, serve
from bot.telegram._invites import code_hash, new_code
from bot.telegram._logging import install_token_redaction
from bot.telegram._sender import OutboxSender, Pacer

log = logging.getLogger(__name__)

__all__ = [
    "OutboxSender",
    "Pacer",
    "TelegramEdge",
    "bot_username",
    "chat_of",
    "code_hash",
    "install_token_redaction",
    "new_code",
    "run_bot",
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


def run_bot(config: Config) -> int:
    """Run the Telegram bot until SIGTERM/SIGINT; returns the exit code."""
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

    async def main() -> None:
        async with store_from(config) as store:
            await serve(config, loaded, store)

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
    except Exception:
        log.critical("Rehearse stopped after an unexpected error", exc_info=True)
        return 1
    return 0
