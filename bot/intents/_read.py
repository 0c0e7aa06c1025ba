"""Reading a message for the intents of an :class:`~bot.intents.IntentBook`.

A message is folded and repaired by the crisis detector's :class:`~bot.crisis.Speller`
(chat spellings, letter runs, typos into the book's own words), split into sentences at
``. ! ? , ;`` and line breaks, and each sentence is compared with the book's phrases, filler
words left out on both sides ("ok i want to stop now please" is "want stop").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum

from bot.crisis import Speller, Word
from bot.intents._book import IntentBook, Phrase

#: Where a message is cut into sentences.
_SENTENCE = re.compile(r"[.!?,;:\n]+|\s[-–—]+\s")


class SafetyAnswer(StrEnum):
    """What a typed answer to "are you safe right now?" means."""

    SAFE = "safe"
    NOT_SAFE = "not_safe"
    #: Unclear: treated as not safe.
    UNSURE = "unsure"


class Intents:
    """Reads stop requests, safety answers and under-arousal cues; pure and deterministic.

    Args:
        book: The locale's phrases.
        chat: The locale's chat spellings (``im`` → ``i am``), shared with the crisis rules.
        lang: The simplemma language code, for lemmas.
    """

    def __init__(self, book: IntentBook, chat: Mapping[str, tuple[str, ...]],
                 lang: str = "en") -> None:
        self.book = book
        vocabulary = book.vocabulary()
        self._chat = chat
        self._speller = Speller(chat, vocabulary, vocabulary, lang)
        self._stop = self._reduced(book.stop_requests)
        self._safe = self._reduced(book.safe)
        self._not_safe = self._reduced(book.not_safe)
        self._unsure = self._reduced(book.unsure)
        self._cues = tuple(self._expanded(cue) for cue in book.under_arousal)

    def stop_request(self, text: str) -> bool:
        """Whether a sentence of the message is a clear request to stop ("please stop")."""
        return any(self._is(sentence, self._stop) for sentence in self._sentences(text))

    def safety_answer(self, text: str) -> SafetyAnswer:
        """What a typed answer to the safety question means; anything unclear is unsure.

        Every sentence must be a known answer (give or take filler): one "no" anywhere
        makes the whole answer a no ("yes… actually no"); an unknown sentence with a
        negation in it is a no too ("i really dont feel very safe"); any other unknown
        sentence, or no words at all, makes it unsure.
        """
        meanings = [m for sentence in self._sentences(text)
                    if (m := self._safety_of(sentence)) is not None]
        if not meanings:
            return SafetyAnswer.UNSURE
        if SafetyAnswer.NOT_SAFE in meanings:
            return SafetyAnswer.NOT_SAFE
        if SafetyAnswer.UNSURE in meanings:
            return SafetyAnswer.UNSURE
        return SafetyAnswer.SAFE

    def under_arousal(self, text: str) -> bool:
        """Whether the message names an under-arousal cue ("i feel numb"), not negated."""
        words = self._speller.words(text)
        for cue in self._cues:
            for start in range(len(words) - len(cue) + 1):
                if all(_means(words[start + i], part) for i, part in enumerate(cue)):
                    before = words[max(0, start - self.book.cue_window):start]
                    if not any(w.text in self.book.cue_negations for w in before):
                        return True
        return False

    # -- helpers ------------------------------------------------------------------------------
    def _sentences(self, text: str) -> list[list[Word]]:
        """The message's sentences as repaired words; empty sentences dropped."""
        sentences = [self._speller.words(part) for part in _SENTENCE.split(text)]
        return [words for words in sentences if words]

    def _expanded(self, phrase: Phrase) -> Phrase:
        """A phrase as messages are read: chat spellings expanded (``cant`` → ``can not``)."""
        return tuple(w for word in phrase for w in self._chat.get(word, (word,)))

    def _reduced(self, phrases: Sequence[Phrase]) -> tuple[Phrase, ...]:
        """The phrases as messages are read, filler left out."""
        return tuple(dict.fromkeys(
            tuple(w for w in self._expanded(phrase) if w not in self.book.filler)
            for phrase in phrases))

    def _is(self, sentence: list[Word], phrases: Sequence[Phrase]) -> bool:
        """Whether the sentence, filler left out, is one or more of the (reduced) phrases."""
        return self._meaning(sentence, {SafetyAnswer.SAFE: phrases}) is SafetyAnswer.SAFE

    def _meaning(self, sentence: list[Word], lists: Mapping[SafetyAnswer, Sequence[Phrase]]
                 ) -> SafetyAnswer | None:
        """The meaning of the sentence read as phrases end to end, if it can be read so.

        The reading with the fewest phrases wins ("not sure" is one phrase, not "not" and
        "sure"); among those, the most worrying meaning. "yeah im safe" is "yeah" then
        "i am safe": safe; "yes im not safe" is "yes" then "i am not safe": not safe.
        Filler is left out first.
        """
        words = [w for w in sentence if w.text not in self.book.filler]
        rank = _WORST_FIRST.index
        # found[i]: (phrases, meaning) of the best reading of words[:i]; absent: no reading.
        found: dict[int, tuple[int, SafetyAnswer]] = {}
        for end in range(1, len(words) + 1):
            for meaning, phrases in lists.items():
                for phrase in phrases:
                    start = end - len(phrase)
                    if start < 0 or (start and start not in found) or not all(
                            _means(w, p) for w, p in zip(words[start:end], phrase, strict=True)):
                        continue
                    count, before = found.get(start, (0, meaning))
                    reading = (count + 1, min(meaning, before, key=rank))
                    best = found.get(end)
                    if best is None or (reading[0], rank(reading[1])) < (best[0], rank(best[1])):
                        found[end] = reading
        return found[len(words)][1] if words and len(words) in found else None

    def _safety_of(self, sentence: list[Word]) -> SafetyAnswer | None:
        if all(w.text in self.book.filler for w in sentence):
            return None  # "thanks" says nothing either way
        meaning = self._meaning(sentence, {SafetyAnswer.NOT_SAFE: self._not_safe,
                                           SafetyAnswer.UNSURE: self._unsure,
                                           SafetyAnswer.SAFE: self._safe})
        if meaning is not None:
            return meaning
        if any(w.text in self.book.negations for w in sentence):
            return SafetyAnswer.NOT_SAFE
        return SafetyAnswer.UNSURE


#: Meanings from the most to the least worrying.
_WORST_FIRST = (SafetyAnswer.NOT_SAFE, SafetyAnswer.UNSURE, SafetyAnswer.SAFE)


def _means(word: Word, part: str) -> bool:
    return part == word.text or part in word.forms
