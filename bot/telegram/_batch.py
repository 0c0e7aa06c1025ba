"""Reading a ``getUpdates`` answer one update at a time.

python-telegram-bot reads a batch as a whole: one update it cannot read (a field its model
requires and an older or broken server leaves out, JSON nested too deep for the decoder)
fails the whole batch, and it logs the batch, texts and all. Here the body is decoded by
:func:`read_body` (the polling request's ``parse_json_payload``), falling back to one result
at a time when the whole fails, and :func:`read_batch` turns each result into an ``Update``
on its own. What cannot be read is reported by id, so that the poller can skip it.

Text that is not valid Unicode — a lone UTF-16 surrogate such as ``"\\ud800"``, which JSON
can spell but no keyboard types and SQLite cannot store — is made valid on the way in: each
lone surrogate becomes U+FFFD (�), in every string of the update.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, Update
from telegram.error import TelegramError

#: How deep a result that cannot be decoded is still read for its id and chat
#: (``update`` → ``callback_query`` → ``message`` → ``chat``).
_READ_DEPTH = 4
_BODY_START = re.compile(r'\s*\{\s*"ok"\s*:\s*true\s*,\s*"result"\s*:\s*\[')
_CONTAINER = re.compile(r'["\[\]{}]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
#: A JSON escape of a UTF-16 surrogate: without one, no decoded string can hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Cut:
    """A result too deep to decode, with everything below :data:`_READ_DEPTH` cut away."""

    shallow: object


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An update that could not be read: its id, and its private chat if that could be."""

    update_id: int
    chat_id: int | None


@dataclass(slots=True)
class Batch:
    """One ``getUpdates`` answer, read.

    Attributes:
        updates: The readable updates in ``update_id`` order, each id once.
        unreadable: Updates with a usable id that could not be read.
        highest: The highest usable ``update_id`` seen (None if there was none).
        nameless: Results without a usable ``update_id`` (ignored: nothing can confirm them
            alone).
        repeated: Results whose id came earlier in the same batch (ignored).
    """

    updates: list[Update] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    highest: int | None = None
    nameless: int = 0
    repeated: int = 0


def read_body(payload: bytes) -> dict[str, Any]:
    """Decode a Bot API answer, reading a ``getUpdates`` result one update at a time if needed.

    Decoded as python-telegram-bot does (UTF-8 with replacement, then JSON), without ever
    logging the body. If that fails and the body is a successful ``getUpdates`` answer,
    each result is decoded on its own; one that still fails becomes a :class:`Cut`.

    Raises:
        TelegramError: The body is not JSON and not a readable list of results.
    """
    text = payload.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = {"ok": True, "result": _results_one_by_one(text)}
    if _SURROGATE_ESCAPE.search(text):
        _replace_lone_surrogates(body)
    if not isinstance(body, dict):
        raise TelegramError("Invalid server response")
    return body


def read_batch(results: object, bot: Bot) -> Batch:
    """Turn decoded ``getUpdates`` results into updates, each read on its own.

    Raises:
        TelegramError: ``results`` is not a list.
    """
    if not isinstance(results, list):
        raise TelegramError("Invalid server response: getUpdates returned no list")
    batch = Batch()
    seen: set[int] = set()
    for result in results:
        raw = result.shallow if isinstance(result, Cut) else result
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            batch.nameless += 1
            continue
        batch.highest = update_id if batch.highest is None else max(batch.highest, update_id)
        if update_id in seen:
            batch.repeated += 1
            continue
        seen.add(update_id)
        update = None if isinstance(result, Cut) else _update(result, bot)
        if update is None:
            batch.unreadable.append(Unreadable(update_id, _private_chat(raw)))
        else:
            batch.updates.append(update)
    batch.updates.sort(key=lambda update: update.update_id)
    return batch


def _update(raw: object, bot: Bot) -> Update | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Update.de_json(raw, bot)
    except Exception:  # any model error: a missing field, a wrong type, too deep
        return None


def _private_chat(raw: object) -> int | None:
    """The private chat a raw update came from, if it names one."""
    if not isinstance(raw, dict):
        return None
    for payload in raw.values():
        if not isinstance(payload, dict):
            continue
        chat = payload.get("chat")
        message = payload.get("message")
        if chat is None and isinstance(message, dict):
            chat = message.get("chat")
        if isinstance(chat, dict) and chat.get("type") == "private":
            chat_id = chat.get("id")
            if isinstance(chat_id, int) and not isinstance(chat_id, bool):
                return chat_id
    return None


def _results_one_by_one(text: str) -> list[object]:
    """Decode the ``result`` list of a ``getUpdates`` body element by element."""
    start = _BODY_START.match(text)
    if start is None:
        raise TelegramError("Invalid server response")
    decoder = json.JSONDecoder()
    results: list[object] = []
    at = _skip_space(text, start.end())
    if text.startswith("]", at):
        return results
    while True:
        try:
            value, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            try:
                shallow, at = _cut_deeper_than(text, at, _READ_DEPTH)
                value = Cut(json.loads(shallow))
            except (ValueError, RecursionError):
                raise TelegramError("Invalid server response") from None
        results.append(value)
        at = _skip_space(text, at)
        if text.startswith("]", at):
            return results
        if not text.startswith(",", at):
            raise TelegramError("Invalid server response")
        at = _skip_space(text, at + 1)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _cut_deeper_than(text: str, start: int, depth: int) -> tuple[str, int]:
    """The JSON object or array at ``start`` with every container nested deeper than
    ``depth`` replaced by ``null``, and the index just after it. Iterative: any depth.

    Raises:
        ValueError: There is no complete object or array at ``start``.
    """
    if not text.startswith(("{", "["), start):
        raise ValueError("not an object or array")
    kept: list[str] = []
    copied_from = start
    level = 0
    cut_at: int | None = None  # the level of the container being cut away
    at = start
    while True:
        found = _CONTAINER.search(text, at)
        if found is None:
            raise ValueError("unterminated JSON value")
        index, char = found.start(), found.group()
        if char == '"':
            string = _STRING.match(text, index)
            if string is None:
                raise ValueError("unterminated JSON string")
            at = string.end()
            continue
        at = index + 1
        if char in "[{":
            level += 1
            if level > depth and cut_at is None:
                kept.append(text[copied_from:index])
                kept.append("null")
                cut_at = level
            continue
        if cut_at == level:
            cut_at = None
            copied_from = at
        level -= 1
        if level == 0:
            kept.append(text[copied_from:at])
            return "".join(kept), at


def _replace_lone_surrogates(value: object) -> None:
    """Replace every lone surrogate in the strings of a decoded JSON value, in place."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Cut):
            stack.append(item.shallow)
            continue
        entries: list[tuple[Any, Any]]
        if isinstance(item, dict):
            entries = list(item.items())
        elif isinstance(item, list):
            entries = list(enumerate(item))
        else:
            continue
        for key, child in entries:
            if isinstance(child, str):
                if _LONE_SURROGATE.search(child):
                    item[key] = _LONE_SURROGATE.sub("\ufffd", child)
            elif isinstance(child, dict | list | Cut):
                stack.append(child)
