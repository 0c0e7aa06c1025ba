"""Logging for the bot: the token never appears, whoever logs what."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

REDACTED = "<token>"


def install_token_redaction(token: str) -> Callable[[], None]:
    """Redact ``token`` from every log record created from now on.

    The record factory formats each record's message (and exception text) at creation and
    replaces the token, so no handler, formatter or test capture can see it. httpx, which
    logs full request URLs (with the token) at INFO, is turned down to WARNING as well.

    Returns:
        A function that undoes the installation (for tests).
    """
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if token:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                text = "".join(traceback.format_exception(*record.exc_info))
                record.exc_text = text.replace(token, REDACTED)
                record.exc_info = None
            record.msg, record.args = message.replace(token, REDACTED), None
        return record

    logging.setLogRecordFactory(factory)
    httpx_logger = logging.getLogger("httpx")
    httpx_level = httpx_logger.level
    httpx_logger.setLevel(logging.WARNING)

    def undo() -> None:
        logging.setLogRecordFactory(previous)
        httpx_logger.setLevel(httpx_level)

    return undo
