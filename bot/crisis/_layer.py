"""The context layer: when a match says the person is *not* at risk now, for every rule.

A rule says what risk sounds like; the layer reads how it is told. A negation that governs
the match ("i have never wanted to kill myself"), a recovery ("two years clean from cutting,
i'm doing well"), someone else as the subject ("my cousin tried to kill himself"), or a frame
(a film, a plan for "if i ever …", a screening question answered no) cancels it, with a reason
``rehearse crisis explain`` prints. When in doubt a match stays a match: a hedged negation
("i'm not sure i want to live"), a relapse ("clean for a year, but i did it again"), a match
in the client's own words inside a story, and any other match in the message all stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.crisis._normalise import Word
from bot.crisis._rules import Kind, Layer

#: A part found in the message: (first word, one past the last word).
Span = tuple[int, int]
#: Where each concept and literal part occurs.
Spans = dict[str, list[Span]]
#: At most this many bridge words between a negator and what it negates.
_BRIDGE_REACH = 5
#: A frame with ``not_self`` keeps a match the speaker ("i") stands this close before ("i
#: self harm, and the essay …"), or with a first-person word in it, right before it ("*my
#: own* suicide when the lecture hall goes quiet") or right after it ("my ex forced himself
#: on *me* … years ago").
_SPEAKER_REACH = 3
#: An ``undone_by`` word undoes a negation when it starts at most this many words after
#: the match.
_UNDONE_REACH = 3


class Reading:
    """The layer applied to one message: its clauses and where the layer's parts stand."""

    def __init__(self, layer: Layer, words: list[Word], spans: Spans) -> None:
        self.layer = layer
        self.words = words
        self.spans = spans
        breaks = {start for part in layer.clause_breaks for start, _ in spans.get(part, ())}
        self.clause: list[int] = []
        current = 0
        for i, word in enumerate(words):
            if word.opens_clause or i in breaks:
                current += 1
            self.clause.append(current)
        self.breaks = breaks
        self.bridge = _positions(spans, layer.bridge)
        self.hedges = _positions(spans, layer.hedges)
        self.undone = _positions(spans, layer.undone_by)
        self.first_person = _positions(spans, layer.first_person)
        self.people = _positions(spans, layer.people)
        self.speaker = _positions(spans, layer.speaker)
        self.reports = {start for part in layer.reports for start, _ in spans.get(part, ())}

    def cancelled(self, kind: Kind, found: list[Span], *, present: bool = False) -> str | None:
        """Why the layer does not count this occurrence of a match, or None when it counts.

        ``present`` marks a match that is itself a plan, a means at hand or a time (an
        ``imminent`` rule): a recovery cue does not cancel it ("i'm proud of it, i finally
        have enough pills saved"), because a recovery speaks of the past and a plan is now.
        """
        first, last = found[0][0], found[-1][1]
        matched = {pos for start, end in found for pos in range(start, end)}
        layer = self.layer
        if kind in layer.negation_kinds:
            negator = self._negator(first, last, matched)
            if negator is not None:
                return (f"a negation (`{negator}`) governs it: the person says it is not so "
                        f"(layer.negation, {layer.where})")
        if kind in layer.recovery_kinds and not present:
            cue = self._recovery()
            if cue is not None:
                return (f"a recovery (`{cue}`) says it is over, and nothing says it is back "
                        f"(layer.recovery, {layer.where})")
        person = self._third_party(first, last) if kind in layer.third_party_kinds else None
        if person is not None:
            return (f"someone else (`{person}`) is the subject and it does not speak of the "
                    f"person themselves (layer.third_party, {layer.where})")
        for frame in layer.frames:
            cue = self._framed(frame.before, frame.after, frame.around, first, last, matched,
                               not_self=frame.not_self) if kind in frame.kinds else None
            if cue is not None:
                return f"{frame.why}: `{cue}` (layer frame `{frame.id}`, {frame.where})"
        return None

    # -- readings -----------------------------------------------------------------------------
    def _text(self, span: Span) -> str:
        return " ".join(w.text for w in self.words[span[0]:span[1]])

    def _negator(self, first: int, last: int, matched: set[int]) -> str | None:
        """A negator governing the match: right before it (only bridge words between) or
        between its words, or ending on the match's first words ("*no plans* to end my life"),
        in its clause, not otherwise one of its own words, and not hedged; none
        when a word right after the match undoes every negation ("never wanted to die *more
        than now*", "he hasn't hit me *yet*") or a hedged negator before it in its clause
        ("i can't *promise* i won't hurt myself")."""
        clause = self.clause[first]
        if any(pos in self.undone and self.clause[pos] == clause
               for pos in range(last, last + _UNDONE_REACH)):
            return None
        negators = [span for part in self.layer.negators for span in self.spans.get(part, ())
                    if self.clause[span[0]] == clause]
        if any(end in self.hedges and end <= first for _, end in negators):
            return None  # "i can't promise i won't hurt myself": the doubt covers the clause
        for start, end in negators:
            if end in self.hedges:
                continue
            if start < first < end <= last:
                return self._text((start, end))  # shares the match's first words: "no plans" to die
            if matched.intersection(range(start, end)):
                continue
            if first < start and end <= last:
                return self._text((start, end))  # inside the match: "he never hit me"
            if self._bridged(end, first):
                return self._text((start, end))
        return None

    def _bridged(self, end: int, start: int) -> bool:
        """Only bridge words (at most ``_BRIDGE_REACH``) stand between ``end`` and ``start``."""
        return end <= start and start - end <= _BRIDGE_REACH \
            and all(pos in self.bridge for pos in range(end, start))

    def _recovery(self) -> str | None:
        """A recovery cue in the message, with no relapse anywhere outside the cues ("two years
        clean *today*" is one) and no clause break after it ("clean for a year, *but* …")."""
        layer = self.layer
        cues = _positions(self.spans, layer.recovery)
        if any(not cues.issuperset(range(start, end))
               for part in layer.relapse for start, end in self.spans.get(part, ())):
            return None
        for part in layer.recovery:
            for start, end in self.spans.get(part, ()):
                if not any(b > start for b in self.breaks) and not self._negates(start):
                    return self._text((start, end))
        return None

    def _negates(self, start: int) -> bool:
        """A negator stands right before ``start`` in its clause (only bridge words between):
        "i'm *not* proud of it" is shame, not a recovery."""
        return any(self.clause[s] == self.clause[start] and self._bridged(end, start)
                   for part in self.layer.negators for s, end in self.spans.get(part, ()))

    def _third_party(self, first: int, last: int) -> str | None:
        """Someone else is the subject: the match has no first-person word, a person stands
        before it in its clause ("my cousin tried to kill himself"), and the speaker ("i")
        does not (in "i called my brother to say goodbye" the brother is not the subject),
        unless the speaker reports what the person does ("i am worried my friend …"). A
        match reaching into another clause stays ("…, she'll know why. goodbye")."""
        clause = self.clause[first]
        if self.first_person.intersection(range(first, last)) or self.clause[last - 1] != clause:
            return None
        person = None
        for pos in range(first - 1, -1, -1):
            if self.clause[pos] != clause:
                break
            if pos in self.speaker:  # the speaker is the subject, unless reporting the person
                return person if person is not None and pos + 1 in self.reports else None
            if person is None and pos in self.people:
                person = self.words[pos].text
        return person

    def _framed(
        self, before: tuple[str, ...], after: tuple[str, ...], around: tuple[str, ...],
        first: int, last: int, matched: set[int], *, not_self: bool,
    ) -> str | None:
        """The words of a frame whose every condition holds around the match, or None."""
        clause = self.clause[first]
        if not_self and (self.first_person.intersection(range(first, last)) or any(
                pos in self.first_person and self.clause[pos] == clause
                for pos in (first - 1, last)) or any(
                pos in self.speaker and self.clause[pos] == clause
                for pos in range(max(0, first - _SPEAKER_REACH), first))):
            return None
        cues: list[Span] = []
        checks: tuple[tuple[tuple[str, ...], Callable[[Span], bool]], ...] = (
            (before, lambda s: s[0] < first and self.clause[s[0]] == clause),
            (after, lambda s: s[0] >= last),
            (around, lambda s: self.clause[s[0]] == clause
             and not matched.intersection(range(*s))),
        )
        for parts, fits in checks:
            if parts:
                cue = next((s for s in self._occurrences(parts) if fits(s)), None)
                if cue is None:
                    return None
                cues.append(cue)
        return " … ".join(self._text(cue) for cue in cues) if cues else None

    def _occurrences(self, parts: Iterable[str]) -> Iterable[Span]:
        return (span for part in parts for span in self.spans.get(part, ()))


def _positions(spans: Spans, parts: Iterable[str]) -> set[int]:
    """Every word position a part covers."""
    return {pos for part in parts for start, end in spans.get(part, ())
            for pos in range(start, end)}
