"""The detector: which rules a message matches, of which kind, and why."""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations

from bot.crisis._layer import Reading
from bot.crisis._normalise import Speller, Word
from bot.crisis._reader import Reader, Verdict
from bot.crisis._rules import KIND_ORDER, Kind, Pattern, Rule, RuleBook
from bot.crisis._sentence import SentenceReader

#: A part found in the message: (first word, one past the last word).
_Span = tuple[int, int]
#: Chat spellings at least this long may be parts of words run together ("iwannadie").
_CHAT_PART = 4
#: A `not_near` context at most this many words after a negation is negated ("not for camping").
_NEGATED_GAP = 1
_log = logging.getLogger(__name__)
#: The rule id of a match by the second reader alone.
READER_RULE = "reader"
#: The rule id of a match by the sentence reader alone.
SENTENCE_RULE = "sentence-reader"


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that matched.

    Attributes:
        rule: The rule's id (safe to log: it names a rule, not the client's words).
        kind: What it is about.
        why: The rule's explanation.
        imminent: A plan, means or time is part of it or elsewhere in the message.
        words: The matched words after repair, for explanations only: never store them.
        repairs: How words were repaired on the way (typos, joins, look-alikes).
        where: The rule's ``file:line:col``.
    """

    rule: str
    kind: Kind
    why: str
    imminent: bool
    words: tuple[str, ...]
    repairs: tuple[str, ...]
    where: str


@dataclass(frozen=True, slots=True)
class Detection:
    """Everything a message matched; falsy when nothing did."""

    matches: tuple[Match, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.matches)

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds matched, most urgent first."""
        found = {m.kind for m in self.matches}
        return tuple(k for k in KIND_ORDER if k in found)

    @property
    def imminent(self) -> bool:
        """Whether any match speaks of a plan, means or time."""
        return any(m.imminent for m in self.matches)

    @property
    def rules(self) -> tuple[str, ...]:
        """The ids of the rules that matched."""
        return tuple(m.rule for m in self.matches)


@dataclass(frozen=True, slots=True)
class SecondReading:
    """The second reader's verdict on a message, and whether the context layer cancels it.

    Attributes:
        verdict: The reader's scores.
        cancelled: Why the context layer cancels it (asked about the word that weighed most
            for risk), or None.
    """

    verdict: Verdict
    cancelled: str | None

    @property
    def counts(self) -> bool:
        """Whether it makes the message a risk: over the threshold and not cancelled."""
        return self.verdict.over and self.cancelled is None and self.verdict.anchor is not None


class Detector:
    """Scans free text for risk, deterministically and only in memory.

    A message is a risk when a rule matches it or, failing that, when the second reader
    (:class:`~bot.crisis.Reader`, if there is one) scores it a risk at or above its threshold
    and the context layer does not cancel the word that weighed most, or, failing both, when
    the sentence reader (:class:`~bot.crisis.SentenceReader`, if there is one) scores it a
    risk at or above its threshold; the kind is then that reader's most likely kind.
    """

    def __init__(self, book: RuleBook, reader: Reader | None = None,
                 sentence: SentenceReader | None = None) -> None:
        self.book = book
        self.reader = reader
        self.sentence = sentence
        vocabulary = book.vocabulary()
        chat_words = frozenset(s for s in book.chat if s.isalpha() and len(s) >= _CHAT_PART)
        self.speller = Speller(book.chat, vocabulary, book.glue | vocabulary | chat_words,
                               book.lang)
        self.speller.prepare()
        # Every entry (one word or several) → the concepts and literal parts it stands for.
        names: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for name, entries in book.concepts.items():
            for entry in entries:
                names[entry].append(name)
        for phrase in book.phrases():
            names[tuple(phrase.split())].append(phrase)
        #: A one-word entry → its part names.
        self._single: dict[str, tuple[str, ...]] = {}
        #: The first two words of a longer entry → (the entry's words, its part names).
        self._multi: dict[tuple[str, str], list[tuple[tuple[str, ...], tuple[str, ...]]]] = \
            defaultdict(list)
        for entry, parts in names.items():
            unique = tuple(dict.fromkeys(parts))
            if len(entry) == 1:
                self._single[entry[0]] = unique
            else:
                self._multi[entry[0], entry[1]].append((entry, unique))
        #: The first words of longer entries: only these need the next word looked at.
        self._first_words = frozenset(first for first, _ in self._multi)
        # Each rule and harmless expression is tried only when its rarest part occurs.
        rules = sorted(book.rules, key=lambda r: KIND_ORDER.index(r.kind))
        self._rules: dict[str, list[tuple[int, Rule]]] = defaultdict(list)
        for order, rule in enumerate(rules):
            self._rules[self._anchor(rule.pattern)].append((order, rule))
        self._harmless: dict[str, list[Pattern]] = defaultdict(list)
        for pattern in book.harmless:
            self._harmless[self._anchor(pattern)].append(pattern)

    def with_readers(self, reader: Reader | None = None,
                     sentence: SentenceReader | None = None) -> Detector:
        """This detector's rules with these readers, or none (the rules are shared)."""
        other = copy.copy(self)
        other.reader, other.sentence = reader, sentence
        return other

    def _anchor(self, pattern: Pattern) -> str:
        """The part of a pattern least likely to occur: the one whose shortest entry is longest
        (short words such as "i", "to" and "my" are in most messages), then the fewest
        entries (a literal part has one)."""
        def rarity(part: str) -> tuple[int, int]:
            entries = self.book.concepts.get(part, (tuple(part.split()),))
            return -min(len(" ".join(entry)) for entry in entries), len(entries)
        return min(pattern.parts, key=rarity)

    def scan(self, text: str) -> Detection:
        """The rules ``text`` matches (none for empty or harmless text)."""
        if not text or not text.strip():
            return Detection()
        words = self.speller.words(text)
        spans = self._spans(words)
        masked = self._masked(spans)
        reading = Reading(self.book.layer, words, spans)
        matches: list[Match] = []
        candidates = sorted(
            (entry for part in spans for entry in self._rules.get(part, ())),
            key=lambda entry: entry[0],
        )
        for _, rule in candidates:
            if not all(p in spans for p in rule.pattern.parts) \
                    or (rule.near and not any(p in spans for p in rule.near)):
                continue
            found = self._find(rule, spans, masked, reading)
            if found is None:
                continue
            first, last = found[0][0], found[-1][1]
            hit = words[first:last]
            imminent = rule.imminent or (
                rule.kind is Kind.SUICIDE
                and any(p in spans for p in self.book.imminent_when)
            )
            matches.append(Match(
                rule=rule.pattern.id, kind=rule.kind, why=rule.why, imminent=imminent,
                words=tuple(w.text for w in hit),
                repairs=tuple(dict.fromkeys(w.repaired for w in words if w.repaired)),
                where=rule.pattern.where,
            ))
        if not matches and self.reader is not None:
            second = self._second_match(self.reader, words, spans, reading)
            if second is not None:
                matches.append(second)
        if not matches and self.sentence is not None:
            third = self._sentence_match(self.sentence, text, words, spans)
            if third is not None:
                matches.append(third)
        return Detection(tuple(matches))

    def second_reading(self, text: str) -> SecondReading | None:
        """The second reader's verdict, or None without a reader or words."""
        if self.reader is None or not text.strip():
            return None
        words = self.speller.words(text)
        spans = self._spans(words)
        return _verdict(self.reader, words, Reading(self.book.layer, words, spans))

    def _second_match(self, reader: Reader, words: list[Word], spans: dict[str, list[_Span]],
                      reading: Reading) -> Match | None:
        """The reader's verdict as a match when it is over the threshold and not cancelled."""
        found = _verdict(reader, words, reading)
        if found is None or not found.counts or found.verdict.anchor is None:
            return None
        verdict = found.verdict
        first, last = found.verdict.anchor
        return self._learned_match(READER_RULE, "the second reader", verdict.score,
                                   verdict.threshold, verdict.kind, words, first, last, spans,
                                   reader.where)

    def _sentence_match(self, sentence: SentenceReader, text: str, words: list[Word],
                        spans: dict[str, list[_Span]]) -> Match | None:
        """The sentence reader's verdict as a match when it is over the threshold (and the
        message is not one of the bot's own texts it must leave alone)."""
        if sentence.exempts(text) or not sentence.reads(text, self.speller.knows):
            return None
        try:
            verdict = sentence.read(text)
        except Exception:  # onnxruntime and tokenizers raise plain Exception subclasses
            # The rules and the second reader have answered already; never the text in a log.
            _log.exception("the sentence reader failed on a message of %d characters",
                           len(text))
            return None
        if not verdict.over:
            return None
        return self._learned_match(SENTENCE_RULE, "the sentence reader", verdict.score,
                                   verdict.threshold, verdict.kind, words, 0, len(words),
                                   spans, sentence.where)

    def _learned_match(self, rule: str, reader: str, score: float, threshold: float,
                       kind: Kind, words: list[Word], first: int, last: int,
                       spans: dict[str, list[_Span]], where: str) -> Match:
        """A reader's verdict as a match on ``words[first:last]`` (imminent for suicide when
        the message names a plan, means or time)."""
        return Match(
            rule=rule, kind=kind,
            why=f"{reader} scores it a risk at {score:.3f} (threshold {threshold:.3f}), "
                f"most likely {kind.value}",
            imminent=kind is Kind.SUICIDE and any(p in spans for p in self.book.imminent_when),
            words=tuple(w.text for w in words[first:last]),
            repairs=tuple(dict.fromkeys(w.repaired for w in words if w.repaired)),
            where=where,
        )

    def explain(self, text: str) -> list[str]:
        """Plain lines saying which rules matched and why, or that none did."""
        words = self.speller.words(text)
        lines = ["words: " + " ".join(w.text for w in words)]
        repairs = [w for w in words if w.repaired]
        for word in repairs:
            lines.append(f"  repaired: {word.text} ({word.repaired})")
        spans = self._spans(words)
        for pattern in self.book.harmless:
            if self._first(pattern, spans, set()) is not None:
                lines.append(f"harmless expression `{pattern.id}` ({pattern.where}): "
                             "its words cannot count as risk")
        detection = self.scan(text)
        matched = set(detection.rules)
        masked = self._masked(spans)
        reading = Reading(self.book.layer, words, spans)
        for rule in self.book.rules:
            if rule.pattern.id in matched:
                continue
            for found in self._all(rule.pattern, spans, masked)[:1]:
                reason = self._cancelled(rule, found, spans, reading)
                if reason is not None:
                    lines.append(f"not counted: rule `{rule.pattern.id}` "
                                 f"({rule.pattern.where}) would match, but {reason}")
        lines += self._explain_reader(text)
        lines += self._explain_sentence(text)
        if not detection:
            readers = [name for name, present in (("the reader", self.reader),
                                                  ("the sentence reader", self.sentence))
                       if present is not None]
            passed = ("" if not readers else " and neither reader counted it"
                      if len(readers) == 2 else f" and {readers[0]} did not count it")
            lines.append(f"no rule matched{passed}: no crisis response")
            return lines
        for match in detection.matches:
            urgency = ", imminent" if match.imminent else ""
            lines.append(f"MATCH {match.kind.value}{urgency}: rule `{match.rule}` "
                         f"({match.where}): {match.why} — on \"{' '.join(match.words)}\"")
        lines.append("response: crisis support for " + ", ".join(k.value for k in detection.kinds))
        return lines

    def _explain_reader(self, text: str) -> list[str]:
        """The reader's lines: the risk score and the features that weighed most, each kind's
        score, and a cancellation by the context layer."""
        found = self.second_reading(text)
        if found is None:
            return []
        verdict, cancelled = found.verdict, found.cancelled
        top = ", ".join(f"{'+' if w > 0 else '-'} '{words}'" for words, w in verdict.top)
        mark = ", over the threshold" if verdict.over else ""
        lines = [f"reader: risk {verdict.score:.3f} (threshold {verdict.threshold:.3f}{mark}; "
                 f"{top})",
                 "reader: kind " + ", ".join(f"{k.value} {s:.2f}" for k, s in verdict.kinds)]
        if verdict.over and cancelled is not None:
            lines.append(f"  not counted: {cancelled}")
        return lines

    def _explain_sentence(self, text: str) -> list[str]:
        """The sentence reader's lines: the risk score, each kind's probability and the words
        whose absence moves the score most."""
        if self.sentence is None or not text.strip():
            return []
        if not self.sentence.reads(text, self.speller.knows):
            return ["sentence reader: not read (mostly symbols, not in the Latin script, or "
                    "fewer than half its words known to the rules' speller: another language)"]
        verdict = self.sentence.read(text)
        mark = ", over the threshold" if verdict.over else ""
        moved = ", ".join(f"'{word}' {change:+.2f}"
                          for word, change in self.sentence.weighed(text))
        exempt = self.sentence.exempts(text)
        return [f"sentence reader: risk {verdict.score:.3f} (threshold "
                f"{verdict.threshold:.3f}{mark})",
                *(["  not counted: the message is one of the bot's own texts (`exempt` in "
                   f"{self.sentence.where})"] if exempt else []),
                "sentence reader: kind " + ", ".join(f"{k.value} {p:.2f}"
                                                     for k, p in verdict.kinds),
                *([f"sentence reader: without each word, the risk's log-odds move most for {moved}"]
                  if moved else [])]

    # -- matching -----------------------------------------------------------------------------
    def _spans(self, words: list[Word]) -> dict[str, list[_Span]]:
        """Where each concept and literal word occurs, in order of their first words."""
        found: dict[str, dict[_Span, None]] = defaultdict(dict)
        single, multi, first_words = self._single, self._multi, self._first_words
        for i, word in enumerate(words):
            following = words[i + 1].forms if i + 1 < len(words) else ()
            for form in word.forms:
                for part in single.get(form, ()):
                    found[part][i, i + 1] = None
                if form not in first_words:
                    continue
                for second in following:
                    for entry, parts in multi.get((form, second), ()):
                        end = i + len(entry)
                        if end <= len(words) and all(
                            entry[k] in words[i + k].forms for k in range(2, len(entry))
                        ):
                            for part in parts:
                                found[part][i, end] = None
        return {part: list(where) for part, where in found.items()}

    def _masked(self, spans: dict[str, list[_Span]]) -> set[int]:
        """Word positions inside a harmless expression."""
        masked: set[int] = set()
        for part in spans:
            for pattern in self._harmless.get(part, ()):
                for found in self._all(pattern, spans, set()):
                    masked.update(range(found[0][0], found[-1][1]))
        return masked

    def _find(
        self, rule: Rule, spans: dict[str, list[_Span]], masked: set[int], reading: Reading
    ) -> list[_Span] | None:
        """The first occurrence of the rule's pattern not cancelled by its conditions or by
        the context layer."""
        for found in self._all(rule.pattern, spans, masked):
            if self._cancelled(rule, found, spans, reading) is None:
                return found
        return None

    def _cancelled(self, rule: Rule, found: list[_Span], spans: dict[str, list[_Span]],
                   reading: Reading) -> str | None:
        """Why an occurrence of a rule's pattern does not count, or None when it does: the
        rule's own conditions first, then the context layer."""
        first, last = found[0][0], found[-1][1]
        window = self.book.negation_window
        before = next((part for part in rule.not_after for start, end in spans.get(part, ())
                       if start < first and first - end <= window), None)
        if before is not None:
            return f"a negation (`{before}`) stands just before it (`not_after`)"
        matched = {pos for start, end in found for pos in range(start, end)}
        # the matched words again ("kms kms kms") are the match repeated, not a context
        said = {reading.words[pos].text for pos in matched}
        negated = self._negated(spans)
        near = self._close(rule.not_near, spans, first, last, self.book.near_window,
                           skip=lambda span: negated(span)
                           or matched.issuperset(range(*span))
                           or all(reading.words[pos].text in said for pos in range(*span)))
        if near is not None:
            return f"an everyday context (`{near}`) stands close to it (`not_near`)"
        inside = next((part for part in rule.not_inside for start, end in spans.get(part, ())
                       if start > first and end < last), None)
        if inside is not None:
            return f"a negation (`{inside}`) stands inside it (`not_inside`)"
        if rule.near and self._close(rule.near, spans, first, last,
                                     self.book.context_window) is None:
            return "the context it needs is missing (`near`)"
        return reading.cancelled(rule.kind, found, present=rule.imminent)

    def _negated(self, spans: dict[str, list[_Span]]) -> Callable[[_Span], bool]:
        """Whether a span stands right after a negation, so it is no ``not_near`` context
        ("it is not for camping")."""
        negated = {end for part in self.book.negations for _, end in spans.get(part, ())}

        def skipped(span: _Span) -> bool:
            return any(span[0] - gap in negated for gap in range(_NEGATED_GAP + 1))
        return skipped

    @staticmethod
    def _close(
        parts: tuple[str, ...], spans: dict[str, list[_Span]], first: int, last: int,
        window: int, skip: Callable[[_Span], bool] | None = None,
    ) -> str | None:
        """The first of ``parts`` standing within ``window`` words of ``first``..``last``
        (except spans that ``skip`` rules out)."""
        return next((part for part in parts for start, end in spans.get(part, ())
                     if end > first - window and start < last + window
                     and (skip is None or not skip((start, end)))), None)

    def _first(
        self, pattern: Pattern, spans: dict[str, list[_Span]], masked: set[int]
    ) -> list[_Span] | None:
        return next(iter(self._all(pattern, spans, masked)), None)

    def _all(
        self, pattern: Pattern, spans: dict[str, list[_Span]], masked: set[int]
    ) -> list[list[_Span]]:
        """Every way the pattern's parts occur in order (bounded by the message's length).

        An ``any_order`` pattern is tried in every order of its parts (at most 24).
        """
        results: list[list[_Span]] = []
        orders = dict.fromkeys(permutations(pattern.parts)) if pattern.any_order \
            else (pattern.parts,)

        def extend(parts: tuple[str, ...], index: int, chain: list[_Span]) -> None:
            if len(results) >= 8:
                return
            if index == len(parts):
                results.append(list(chain))
                return
            for start, end in spans.get(parts[index], ()):
                if any(pos in masked for pos in range(start, end)):
                    continue
                if chain:
                    gap = start - chain[-1][1]
                    if gap < 0 or gap > pattern.within:
                        continue
                chain.append((start, end))
                extend(parts, index + 1, chain)
                chain.pop()

        for parts in orders:
            extend(parts, 0, [])
        return results


def _verdict(reader: Reader, words: list[Word], reading: Reading) -> SecondReading | None:
    """The reader's verdict, with why the context layer cancels it."""
    verdict = reader.read(words)
    if verdict is None:
        return None
    anchor = verdict.anchor
    return SecondReading(verdict, None if anchor is None
                         else reading.cancelled(verdict.kind, [anchor]))
