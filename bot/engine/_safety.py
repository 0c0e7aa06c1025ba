"""Deterministic safety matching: stop words and crisis language. No model, no storage."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: Messages that halt everything when they are the whole message (any case).
STOP_WORDS = frozenset({"stop", "end", "cancel", "unsubscribe", "quit", "opt out", "optout"})

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    """Case-fold, apply NFKC, turn punctuation into spaces and collapse whitespace."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = folded.replace("’", "'").replace("'", "")
    return " ".join(_NON_WORD.sub(" ", folded).split())


def is_stop_word(text: str) -> bool:
    """Whether a message is exactly one of the STOP-like words."""
    return normalise(text) in STOP_WORDS


@dataclass(frozen=True)
class CrisisMatcher:
    """Finds crisis language in free text, on word boundaries, after normalisation.

    The text is only scanned in memory; callers must never store it because of a match.
    """

    phrases: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, phrases: Iterable[str], exclude: Iterable[str] = ()) -> CrisisMatcher:
        """Build a matcher from raw phrase lists (normalised here)."""
        keep = tuple(p for p in (normalise(x) for x in phrases) if p)
        drop = tuple(p for p in (normalise(x) for x in exclude) if p)
        return cls(keep, drop)

    def matches(self, text: str) -> bool:
        """Whether the text contains a crisis phrase not covered by an exclusion."""
        padded = f" {normalise(text)} "
        for phrase in self.exclude:
            padded = padded.replace(f" {phrase} ", " ")
        return any(f" {phrase} " in padded for phrase in self.phrases)
