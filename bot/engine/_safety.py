"""Stop words: the exact words that halt everything (crisis language is :mod:`bot.crisis`)."""

from __future__ import annotations

import re

from bot.crisis import fold

#: Messages that halt everything when they are the whole message (any case).
STOP_WORDS = frozenset({"stop", "end", "cancel", "unsubscribe", "quit", "opt out", "optout"})

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    """Fold a message (case, look-alikes, invisible characters) and collapse punctuation."""
    return " ".join(_NON_WORD.sub(" ", fold(text)).split())


def is_stop_word(text: str) -> bool:
    """Whether a message is exactly one of the STOP-like words."""
    return normalise(text) in STOP_WORDS
