"""The intent book: a locale's phrases for stop requests, safety answers and under-arousal.

A therapist edits ``prompts/<locale>/intents.yaml``; this module turns it into checked,
immutable phrase lists or reports every mistake as ``file:line:col: message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.script import Finding, LoadedYaml, ScriptError, Severity, load_yaml

#: A phrase: lower-case words as they are written after folding (no apostrophes).
_PHRASE = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")
#: The longest window a negation may be looked for in, in words.
_MAX_WINDOW = 6

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class IntentBook:
    """Everything the intent reader knows for one locale.

    Attributes:
        file: Where it was loaded from.
        filler: Words that add nothing to a short answer ("please", "just", "now").
        stop_requests: A sentence that is one of these (give or take filler) asks to stop.
        safe: Answers to "are you safe right now?" that mean yes.
        not_safe: Answers that mean no.
        unsure: Answers that mean "not sure" (treated as not safe).
        negations: Words that turn an unlisted answer into a no ("i really dont feel safe").
        under_arousal: Cues of under-arousal, found anywhere in a message ("numb").
        cue_negations: Words that cancel a cue just before it ("not numb").
        cue_window: How many words before a cue a cue negation may stand.
    """

    file: str
    filler: frozenset[str]
    stop_requests: tuple[Phrase, ...]
    safe: tuple[Phrase, ...]
    not_safe: tuple[Phrase, ...]
    unsure: tuple[Phrase, ...]
    negations: frozenset[str]
    under_arousal: tuple[Phrase, ...]
    cue_negations: frozenset[str]
    cue_window: int = 2

    def vocabulary(self) -> frozenset[str]:
        """Every word the book names: typos are repaired only into these."""
        phrases = (*self.stop_requests, *self.safe, *self.not_safe, *self.unsure,
                   *self.under_arousal)
        return frozenset({w for phrase in phrases for w in phrase}
                         | self.filler | self.negations | self.cue_negations)


def load_intents(path: Path, *, display_name: str | None = None) -> IntentBook:
    """Load and check an intent book.

    Raises:
        ScriptError: With every problem found, each at ``file:line:col``.
    """
    return _Reader(load_yaml(path, display_name=display_name)).book()


class _Reader:
    """Turns the loaded YAML into an :class:`IntentBook`, collecting findings."""

    KEYS = ("locale", "filler", "stop_requests", "safety", "under_arousal")
    SAFETY_KEYS = ("safe", "not_safe", "unsure", "negations")
    AROUSAL_KEYS = ("cues", "negations", "window")

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.findings: list[Finding] = []

    def book(self) -> IntentBook:
        data = self._mapping(self.loaded.data, (), self.KEYS)
        safety = self._mapping(data.get("safety"), ("safety",), self.SAFETY_KEYS)
        arousal = self._mapping(data.get("under_arousal"), ("under_arousal",),
                                self.AROUSAL_KEYS)
        window = arousal.get("window", 2)
        if not isinstance(window, int) or isinstance(window, bool) \
                or not 0 <= window <= _MAX_WINDOW:
            self._error(("under_arousal", "window"),
                        f"must be a whole number from 0 to {_MAX_WINDOW}")
            window = 2
        book = IntentBook(
            file=self.loaded.file,
            filler=self._words(data.get("filler"), ("filler",)),
            stop_requests=self._phrases(data.get("stop_requests"), ("stop_requests",)),
            safe=self._phrases(safety.get("safe"), ("safety", "safe")),
            not_safe=self._phrases(safety.get("not_safe"), ("safety", "not_safe")),
            unsure=self._phrases(safety.get("unsure"), ("safety", "unsure")),
            negations=self._words(safety.get("negations"), ("safety", "negations")),
            under_arousal=self._phrases(arousal.get("cues"), ("under_arousal", "cues")),
            cue_negations=self._words(arousal.get("negations"),
                                      ("under_arousal", "negations")),
            cue_window=window,
        )
        self._no_overlap(book)
        if self.findings:
            raise ScriptError(self.findings)
        return book

    def _mapping(self, raw: object, path: tuple[str, ...], keys: tuple[str, ...]
                 ) -> dict[str, object]:
        if not isinstance(raw, dict):
            where = f"`{path[-1]}`" if path else "the intent book"
            self._error(path, f"{where} must be a mapping with {', '.join(keys)}")
            return {}
        for key in raw:
            if key not in keys:
                self._error((*path, key), f"unknown key `{key}` (known: {', '.join(keys)})",
                            key=True)
        return {str(k): v for k, v in raw.items()}

    def _phrases(self, raw: object, path: tuple[str, ...]) -> tuple[Phrase, ...]:
        if not isinstance(raw, list) or not raw:
            self._error(path, f"`{path[-1]}` needs a list of phrases")
            return ()
        phrases: list[Phrase] = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, str) or not _PHRASE.fullmatch(entry):
                self._error((*path, i), f"`{entry}` must be lower-case words (letters and "
                            "digits, one space between) as written after folding "
                            "(no apostrophes: `dont`)")
                continue
            phrases.append(tuple(entry.split()))
        return tuple(phrases)

    def _words(self, raw: object, path: tuple[str, ...]) -> frozenset[str]:
        phrases = self._phrases(raw, path)
        for i, phrase in enumerate(phrases):
            if len(phrase) != 1:
                self._error((*path, i), f"`{' '.join(phrase)}` must be a single word")
        return frozenset(p[0] for p in phrases if len(p) == 1)

    def _no_overlap(self, book: IntentBook) -> None:
        """An answer may mean only one thing, and a phrase must say more than filler."""
        lists = {("stop_requests",): book.stop_requests, ("safety", "safe"): book.safe,
                 ("safety", "not_safe"): book.not_safe, ("safety", "unsure"): book.unsure}
        for path, phrases in lists.items():
            for i, phrase in enumerate(phrases):
                if all(word in book.filler for word in phrase):
                    self._error((*path, i), f"`{' '.join(phrase)}` is only filler words: "
                                "it would match an empty message")
        meanings = {"safe": book.safe, "not_safe": book.not_safe, "unsure": book.unsure}
        seen: dict[Phrase, str] = {}
        for name, phrases in meanings.items():
            for i, phrase in enumerate(phrases):
                if phrase in seen:
                    self._error(("safety", name, i), f"`{' '.join(phrase)}` is already in "
                                f"`{seen[phrase]}`: an answer may mean only one thing")
                seen.setdefault(phrase, name)

    def _error(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        mark = self.loaded.mark_for(path, key=key)
        self.findings.append(Finding(mark.file, mark.line, mark.col, Severity.ERROR, message,
                                     "intents"))
