"""The second reader: a small linear classifier that scores each kind from a message's words.

The rules see what they were written for; the reader sees what the labelled files show,
phrasing no rule names ("a room with no doors"). It reads the same repaired words the rules
read (:class:`~bot.crisis.Speller`) and turns them into features — word forms (the word, its
lemma and stem), pairs of neighbouring words and letter groups of three to five inside a
word — each with learned weights: one for *risk or not*, one per kind for *which kind*. A
score is the logistic of a bias plus the weights of the features present, divided by the
square root of their number (at least :data:`_SCALE_FROM`, see there); the message
counts as a risk from the risk score's threshold on, as the kind scored highest. Scoring is
dictionary look-ups and sums in pure Python, deterministic, and explainable: every
contribution is a named feature.

The weights are trained offline (``rehearse crisis train``, :mod:`bot.crisis._train`) and
shipped as ``reader_<locale>.json`` beside this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.crisis._normalise import Word
from bot.crisis._rules import Kind
from bot.script import Finding, ScriptError, Severity

#: The data file's format; a reader refuses any other.
FORMAT = 1
#: Letter groups of these lengths, inside a word padded with a space at each end.
_CHAR_SIZES = (3, 4, 5)
#: A score's sum is divided by the square root of the number of features, or of this many for
#: a message with fewer: so a long message is not louder than a short one, and a short one
#: ("keep them", "i want to stop") does not get loud on the little it says.
_SCALE_FROM = 150
#: A word position: (first word, one past the last word).
_Span = tuple[int, int]
#: Function words: no word-form or letter-group feature of their own, and no pair made of two
#: of them. Trained with them, the reader put its weight on "want", "me", "you", "and" — words
#: every exercise answer has ("I just want you to hear me") — and raised a crisis response on
#: about 1 in 13 of them (docs/safety.md §5). Their letter groups go too, or " me " and "want"
#: would carry the same weight. A pair with one content word stays ("to die", "kill myself",
#: "not wake"), so they still read in context. Content words that risk and the exercises share
#: ("stop", "leave", "alone", "hide", "here", "done") are kept: the exercise answers among the
#: benign rows teach their ordinary senses, and a pair tells "make it stop" from "stop
#: apologising". "He", "him", "his", "she", "her" stay too: in abuse they name who does the
#: harm, and without them the reader found a third less partner abuse and sexual violence by
#: cross-validation (docs/safety.md §5).
STOP_WORDS = frozenset({
    # pronouns, but not "he" and "she" (see above)
    "i", "me", "my", "mine", "myself", "you", "your", "yours", "yourself", "it", "its", "itself",
    "we", "us", "our", "ours", "ourselves", "they", "them", "their", "theirs", "themselves",
    # articles and demonstratives
    "a", "an", "the", "this", "that", "these", "those",
    # auxiliaries and modals
    "am", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has",
    "had", "will", "would", "can", "could", "shall", "should", "may", "might", "must",
    # prepositions, conjunctions, negation
    "to", "of", "in", "on", "at", "for", "with", "about", "from", "by", "as", "into", "and",
    "or", "but", "so", "if", "because", "than", "not",
    # the words the reader leant on in exercise answers
    "want", "just", "really",
})


def features(words: Sequence[Word]) -> dict[str, _Span]:
    """Each feature of a message, once, with the words it first stands on.

    ``w:`` a word form, ``b:`` two neighbouring words, ``c:`` a letter group of a word; a
    function word (:data:`STOP_WORDS`) only in a pair with a content word.
    """
    found: dict[str, _Span] = {}
    for i, word in enumerate(words):
        span = (i, i + 1)
        function = word.text in STOP_WORDS
        if i and not (function and words[i - 1].text in STOP_WORDS):
            found.setdefault(f"b:{words[i - 1].text} {word.text}", (i - 1, i + 1))
        if function:
            continue
        for form in sorted(word.forms):
            found.setdefault("w:" + form, span)
        padded = f" {word.text} "
        for size in _CHAR_SIZES:
            for start in range(len(padded) - size + 1):
                found.setdefault("c:" + padded[start:start + size], span)
    return found


def scale_for(count: int) -> float:
    """What the weights of a message with ``count`` features are multiplied by."""
    return 1.0 / math.sqrt(max(count, _SCALE_FROM))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The reader's reading of one message.

    Attributes:
        score: How likely the message is a risk, 0 to 1 (the *risk* score).
        threshold: The risk score at which the reader counts the message as a risk.
        kind: The most likely kind, should it be a risk.
        kinds: Each kind's score, 0 to 1, most likely first.
        anchor: The word (or pair of words) that weighed most for risk — the context layer is
            asked about it — or None when nothing weighed for risk.
        top: The words that weighed most either way, strongest first: (words, the sum of
            their features' risk weights, scaled as in the score).
    """

    score: float
    threshold: float
    kind: Kind
    kinds: tuple[tuple[Kind, float], ...]
    anchor: _Span | None
    top: tuple[tuple[str, float], ...]

    @property
    def over(self) -> bool:
        """Whether the risk score reaches the threshold."""
        return self.score >= self.threshold


@dataclass(frozen=True)
class Reader:
    """Learned weights: one set for *risk or not*, one per kind for *which kind*.

    Attributes:
        kinds: The kinds scored; every weight list is ``[risk, *kinds]``.
        bias: The bias of each list, risk first.
        threshold: The risk score from which a message counts as a risk.
        weights: A feature → its weights (features with no weight are absent).
        where: The data file, for explanations.
    """

    kinds: tuple[Kind, ...]
    bias: tuple[float, ...]
    threshold: float
    weights: dict[str, tuple[float, ...]]
    where: str = ""

    def read(self, words: Sequence[Word], *, top: int = 3) -> Verdict | None:
        """The verdict on a message, or None when it has no features (no words, or only
        function words)."""
        found = features(words)
        if not found:
            return None
        scale = scale_for(len(found))
        sums = list(self.bias)
        by_words: dict[_Span, float] = {}
        for feature, span in found.items():
            weights = self.weights.get(feature)
            if weights is not None:
                by_words[span] = by_words.get(span, 0.0) + weights[0] * scale
                for k, weight in enumerate(weights):
                    sums[k] += weight * scale
        ranked = sorted(by_words.items(), key=lambda p: (-abs(p[1]), p[0]))
        strongest = next((span for span, w in ranked if w > 0), None)
        kinds = sorted(((kind, _logistic(z)) for kind, z in zip(self.kinds, sums[1:],
                                                                  strict=True)),
                       key=lambda p: -p[1])
        return Verdict(
            score=_logistic(sums[0]), threshold=self.threshold, kind=kinds[0][0],
            kinds=tuple(kinds), anchor=strongest,
            top=tuple((" ".join(w.text for w in words[a:b]), round(w, 2))
                      for (a, b), w in ranked[:top]),
        )

    def to_json(self) -> str:
        """The data file's text: sorted, so that the same weights give the same file."""
        return json.dumps({
            "format": FORMAT,
            "kinds": [k.value for k in self.kinds],
            "bias": list(self.bias),
            "threshold": self.threshold,
            "weights": {f: list(self.weights[f]) for f in sorted(self.weights)},
        }, ensure_ascii=False, separators=(",", ":")) + "\n"


def reader_path(locale: str) -> Path:
    """Where the package keeps a locale's reader (the file may not exist)."""
    return Path(__file__).with_name(f"reader_{locale}.json")


def load_reader(path: Path) -> Reader:
    """Read a reader's data file.

    Raises:
        ScriptError: When the file cannot be read or is not a reader of this format.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        kinds = tuple(Kind(k) for k in data["kinds"])
        bias = tuple(float(b) for b in data["bias"])
        threshold = float(data["threshold"])
        weights = {str(f): tuple(float(x) for x in w) for f, w in data["weights"].items()}
        if len(bias) != len(kinds) + 1 or any(len(w) != len(bias) for w in weights.values()):
            raise ValueError("every list needs one number for risk and one per kind")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ScriptError([Finding(str(path), 1, 1, Severity.ERROR,
                                   f"not a crisis reader: {exc}", "crisis-reader")]) from None
    return Reader(kinds, bias, threshold, weights, str(path))


def _logistic(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
