"""Logging for the bot: the token and what clients write never appear, whoever logs what."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping

REDACTED = "<token>"


def _strip_payloads(record: logging.LogRecord) -> None:
    """Replace each argument of a record but a number by its type's name, e.g.
    ``Calling Bot API endpoint `<str>` with parameters `<dict>```.

    For python-telegram-bot's records: it logs every request's parameters and every answer
    at DEBUG (texts sent, updates received), and a whole batch at CRITICAL when it cannot
    read one update.
    """
    if not isinstance(record.msg, str):
        record.msg = f"<{type(record.msg).__name__}>"
    if isinstance(record.args, Mapping):
        record.args = {key: _number_or_type(value) for key, value in record.args.items()}
    elif record.args:
        record.args = tuple(_number_or_type(arg) for arg in record.args)


def _number_or_type(arg: object) -> object:
    if arg is None or isinstance(arg, int | float):
        return arg
    return f"<{type(arg).__name__}>"


def _from_telegram(record: logging.LogRecord) -> bool:
    return record.name == "telegram" or record.name.startswith("telegram.")


class _WithoutPayloads(logging.Filter):
    """:func:`_strip_payloads` as a filter of python-telegram-bot's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        _strip_payloads(record)
        return True


_WITHOUT_PAYLOADS = _WithoutPayloads()


def keep_payloads_out_of_logs() -> None:
    """Strip the data from python-telegram-bot's log records (idempotent).

    A logger's filters see only the records logged on that very logger, so the filter goes
    on every logger of the ``telegram`` namespace that exists (call after importing it).
    """
    names = [name for name in logging.root.manager.loggerDict if name.startswith("telegram.")]
    for name in ["telegram", *names]:
        logger = logging.getLogger(name)
        if _WITHOUT_PAYLOADS not in logger.filters:
            logger.addFilter(_WITHOUT_PAYLOADS)


def install_token_redaction(token: str) -> Callable[[], None]:
    """Redact ``token`` from every log record created from now on.

    The record factory formats each record's message (and exception text) at creation and
    replaces the token, so no handler, formatter or test capture can see it. Records of
    python-telegram-bot are stripped of their data first (formatting it in would get it
    past :func:`keep_payloads_out_of_logs`). httpx, which logs full request URLs (with the
    token) at INFO, is turned down to WARNING as well.

    Returns:
        A function that undoes the installation (for tests).
    """
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _from_telegram(record):  # before the arguments are formatted in below
            _strip_payloads(record)
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
