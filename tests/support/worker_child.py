"""Child process of the worker tests: one worker of the real bot, as ``rehearse run`` starts it.

Run as ``python -m tests.support.worker_child --db DATABASE --base-url URL --token T
--allow 2001,2002 [--webhook-port PORT] [--claim S] [--leader S]``. The configuration is
that of ``tests.support.bot_crash_child`` (the shipped scripts and texts, the allowlist,
fast long polls), with the database (a SQLite file or a PostgreSQL URL), webhook mode when a
port is given (the secret comes from ``TELEGRAM_WEBHOOK_SECRET``, as in production), and
claims and the leader's lease shortened so that a worker killed with SIGKILL is taken over
within seconds. It calls :func:`bot.telegram.run_bot`: a ``QueuedEdge`` (webhook mode, or
PostgreSQL) with logging, token redaction and graceful SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

from bot.config import (
    API_BASE_URL_ENV,
    TOKEN_ENV,
    WEBHOOK_SECRET_ENV,
    WebhookConfig,
    load_config,
)
from bot.telegram import Timing, run_bot
from tests.support.bot_crash_child import child_config, exit_with_parent


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the worker until killed or stopped."""
    parser = argparse.ArgumentParser(prog="worker_child")
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--allow", default="", help="comma-separated Telegram user ids")
    parser.add_argument("--webhook-port", type=int, default=None)
    parser.add_argument("--claim", type=float, default=3.0, help="claim lease, seconds")
    parser.add_argument("--leader", type=float, default=3.0, help="leader lease, seconds")
    args = parser.parse_args(argv)
    allow = [int(part) for part in args.allow.split(",") if part.strip()]
    exit_with_parent()
    config = child_config(args.db, args.base_url, args.token, allow)  # type: ignore[arg-type]
    if args.webhook_port is not None:
        # The secret as production reads it, from the environment; the sections as above.
        env = {TOKEN_ENV: args.token, API_BASE_URL_ENV: args.base_url,
               WEBHOOK_SECRET_ENV: os.environ[WEBHOOK_SECRET_ENV]}
        webhook = WebhookConfig(url=f"http://127.0.0.1:{args.webhook_port}/telegram/updates",
                                port=args.webhook_port, max_connections=16)
        telegram = config.telegram.model_copy(update={"mode": "webhook", "webhook": webhook})
        sections = ("storage", "access", "sending", "contract_defaults")
        config = load_config(None, env).model_copy(update={
            "telegram": telegram, **{name: getattr(config, name) for name in sections}})
    timing = Timing(claim=timedelta(seconds=args.claim), leader=timedelta(seconds=args.leader),
                    renew_every=min(args.claim, args.leader) / 4)
    return run_bot(config, timing=timing)


if __name__ == "__main__":
    sys.exit(main())
