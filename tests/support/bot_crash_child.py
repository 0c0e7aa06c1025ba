"""Child process of the bot's crash tests: the real bot, as ``rehearse run`` starts it.

Run as ``python -m tests.support.bot_crash_child --db DB --base-url URL --token T
--allow 2001,2002``. It builds the configuration the way ``rehearse run`` does (token and API
URL from the environment, the shipped scripts and texts), with the database, the allowlist
and fast long polls set for the test, and calls :func:`bot.telegram.run_bot`:
``TelegramEdge`` on a ``SqliteStore``, token redaction and logging installed, SIGTERM and
SIGINT handled by a graceful shutdown. The parent (``tests/test_crash_bot.py``) owns the fake
Bot API server and kills this process with SIGKILL at random moments, or stops it with
SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bot.config import API_BASE_URL_ENV, TOKEN_ENV, Config, load_config
from bot.telegram import run_bot


def child_config(db: Path, base_url: str, token: str, allow: Sequence[int]) -> Config:
    """The configuration of the child bot: defaults plus the test's database and clients."""
    config = load_config(None, {TOKEN_ENV: token, API_BASE_URL_ENV: base_url})

    def section(name: str, **values: object) -> object:
        return getattr(config, name).model_copy(update=values)

    return config.model_copy(update={
        "storage": section("storage", database=db),
        "access": section("access", mode="allowlist", allowlist=list(allow)),
        "telegram": section("telegram", poll_timeout=1),
        # Telegram's real limits are not what this test is about; the fake server has none.
        "sending": section("sending", per_chat_per_second=30.0, global_per_second=30.0,
                           backoff_seconds=[0.2, 0.5, 1.0]),
        # Clients walk many sessions in a row; the daily cap would only end the walk early.
        "contract_defaults": section("contract_defaults", sessions_per_day=10),
    })


def exit_with_parent() -> None:
    """End this process if the test that started it is gone (no orphans left polling)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the bot until killed or stopped."""
    parser = argparse.ArgumentParser(prog="bot_crash_child")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--allow", default="", help="comma-separated Telegram user ids")
    args = parser.parse_args(argv)
    allow = [int(part) for part in args.allow.split(",") if part.strip()]
    exit_with_parent()
    return run_bot(child_config(args.db, args.base_url, args.token, allow))


if __name__ == "__main__":
    sys.exit(main())
