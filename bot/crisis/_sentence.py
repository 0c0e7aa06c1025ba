"""The sentence reader: a small language model, fine-tuned on the labelled files, that reads a
message as a whole.

The rules and the second reader (:mod:`bot.crisis._reader`) weigh words and pairs of words;
phrasing that shares none of their words with anything seen before ("I've made my peace with
everyone, it's time") passes both. The sentence reader is all-MiniLM-L6-v2 (a six-layer
sentence encoder, Apache-2.0, Wang et al. 2020, Reimers & Gurevych 2019) with a head over
*none* and the five kinds, fine-tuned on the same labelled files as the second reader
(``rehearse crisis train-sentence``, :mod:`bot.crisis._train_sentence`), exported to ONNX
and quantised to 8-bit integers. It reads the message folded as the rules' first step folds
it (case, look-alike letters, invisible characters, accents and apostrophes), punctuation and
spelling kept: read that way it raised fewer false alarms on unseen files than reading the
rules' repaired words, for the same recall (docs/safety.md §5). It reads at most 96 word
pieces (about 70 words) at a time, the length it was trained on: a longer message is read in
windows of that length, each overlapping the one before by :data:`OVERLAP` pieces, and the
window with the highest risk score is the verdict, so risk at the end of a long message is
read too. It gives each label a probability; the risk score is one minus *none*.

It runs on the CPU in onnxruntime with one thread: no network, no download, and the same
answer for the same text on the same machine. It is not explainable word by word the way a
rule is; :meth:`SentenceReader.weighed` says which words moved its score most by reading the
message again without each of them.

Files, beside this module: ``sentence_<locale>.onnx`` (the model), ``sentence_<locale>.json``
(labels, threshold, the bot's own texts it must not count, token limit, the tokenizer and the
model file's SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.crisis._normalise import fold
from bot.crisis._rules import Kind
from bot.script import Finding, ScriptError, Severity

#: The description file's format; a sentence reader refuses any other.
FORMAT = 1
#: The label of a message that needs no crisis response.
NONE = "none"
#: The token limits a description may set: room for a word between the start and end tokens,
#: and the model's 512 positions.
_LEAST_TOKENS, _MOST_TOKENS = 3, 512
#: How many word pieces each window of a long message shares with the one before, so that a
#: sentence cut by a window's end is read whole in the next.
OVERLAP = 32
#: A word of the Latin script, and how many a message needs before :meth:`SentenceReader.reads`
#: asks whether they are words of the locale's language (one word alone says too little).
_LATIN_WORD = re.compile(r"[a-z]{2,}")
_LEAST_WORDS = 2
#: The least share of letters among a message's characters other than spaces.
_LEAST_LETTERS = 0.6
#: How many verdicts a reader remembers (by digest) before it starts afresh.
_REMEMBERED = 4096
#: A word, for :meth:`SentenceReader.key`.
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class SentenceVerdict:
    """The sentence reader's reading of one message.

    Attributes:
        score: How likely the message is a risk, 0 to 1 (one minus the *none* probability).
        threshold: The risk score at which the message counts as a risk.
        kinds: Each kind's probability, most likely first.
    """

    score: float
    threshold: float
    kinds: tuple[tuple[Kind, float], ...]

    @property
    def over(self) -> bool:
        """Whether the risk score reaches the threshold."""
        return self.score >= self.threshold

    @property
    def kind(self) -> Kind:
        """The most likely kind, should it be a risk."""
        return self.kinds[0][0]


class SentenceReader:
    """A fine-tuned sentence encoder run by onnxruntime on one CPU thread.

    Attributes:
        threshold: The risk score from which a message counts as a risk.
        where: The description file, for explanations.
        exempt: Texts of the bot's own (stop requests and the like, as :meth:`key` gives
            them) that the reader would count and must not: a message that is one of them is
            left to the rules and the intent book.
    """

    def __init__(self, model: bytes, tokenizer: str, labels: Sequence[str], threshold: float,
                 max_tokens: int, where: str, exempt: frozenset[str] = frozenset()) -> None:
        # Imported here: only a detector with the sentence reader on needs them (about 0.2 s).
        import onnxruntime  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(model, options,
                                                     providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_str(tokenizer)
        self._tokenizer.enable_truncation(max_tokens, stride=min(OVERLAP, max_tokens - 3))
        self._tokenizer.no_padding()
        self._none = list(labels).index(NONE)
        self._kinds = [(i, Kind(label)) for i, label in enumerate(labels) if label != NONE]
        self.threshold = threshold
        self.where = where
        self.exempt = exempt
        #: Verdicts on the most recent :data:`_REMEMBERED` distinct messages, by a digest of
        #: what the model read ("ok" and "yes" come again and again).
        self._verdicts: dict[bytes, SentenceVerdict] = {}

    @staticmethod
    def prepare(text: str) -> str:
        """What the model reads of a message: the text folded (:func:`~bot.crisis.fold`),
        with any lone surrogate (not text: the tokenizer refuses it) replaced."""
        return fold(text).encode("utf-8", "replace").decode("utf-8").strip()

    @staticmethod
    def key(text: str) -> str:
        """A text's words only, folded: what :attr:`exempt` compares ("I want to end this!"
        and "i want to end this" are the same text)."""
        return " ".join(_WORD.findall(fold(text)))

    @staticmethod
    def reads(text: str, knows: Callable[[str], bool]) -> bool:
        """Whether the message is in the language it learned, as far as a cheap look can tell.

        Mostly letters (at least :data:`_LEAST_LETTERS` of what is not space: a line of
        SQL scored 0.93; no labelled risk message the rules miss has under 0.76), in the
        Latin script (at least half its letters, once folded: "مرحبا، كيف حالك؟" is not, and
        it scored 0.957), and, when it has two words or more of two letters or more, at
        least half of them words that ``knows`` (the rules' speller: the rule book's words,
        chat spellings, the locale's dictionary) knows: "ik ga naar huis" scored 0.97 and
        "merci beaucoup" 0.90, while chat such as "ctb 2nite" is read.
        """
        folded = fold(text)
        letters = [c for c in folded if c.isalpha()]
        if (not letters or len(letters) < _LEAST_LETTERS * sum(not c.isspace() for c in folded)
                or sum(c.isascii() for c in letters) * 2 < len(letters)):
            return False
        words = _LATIN_WORD.findall(folded)
        return len(words) < _LEAST_WORDS or sum(map(knows, words)) * 2 >= len(words)

    def exempts(self, text: str) -> bool:
        """Whether the message is one of the bot's own texts the reader must not count."""
        return bool(self.exempt) and self.key(text) in self.exempt

    def read(self, text: str) -> SentenceVerdict:
        """The verdict on one message: on its riskiest window when it is longer than the
        reader's token limit.

        One window at a time, always: the 8-bit model scales each input by its own range,
        so a window read in a batch with others could score differently.
        """
        prepared = self.prepare(text)
        # The key is a digest, so the remembered verdicts keep no text.
        key = hashlib.blake2b(prepared.encode("utf-8"), digest_size=16).digest()
        found = self._verdicts.get(key)
        if found is None:
            encoded = self._tokenizer.encode(prepared)
            found = max((self._read_window(window.ids)
                         for window in (encoded, *encoded.overflowing)),
                        key=lambda verdict: verdict.score)
            if len(self._verdicts) >= _REMEMBERED:
                self._verdicts.clear()
            self._verdicts[key] = found
        return found

    def forget(self) -> None:
        """Drop the remembered verdicts, so that the next read of any message runs the model
        (what a message never seen before costs)."""
        self._verdicts.clear()

    def _read_window(self, ids: list[int]) -> SentenceVerdict:
        import numpy as np  # noqa: PLC0415 (with onnxruntime, which needs it)

        probabilities = self._session.run(None, {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
        })[0][0]
        return self._verdict([float(p) for p in probabilities])

    def weighed(self, text: str, top: int = 3) -> list[tuple[str, float]]:
        """The words whose absence moves the risk most: (word, the change in the risk's
        log-odds without it), largest change first. Log-odds, because a score near 1 barely
        moves in probability when one of several telling words goes."""
        split = self.prepare(text).split()
        if len(split) < 2:
            return []
        whole = _log_odds(self.read(text).score)
        changes = sorted(((word, _log_odds(self.read(" ".join(split[:i] + split[i + 1:])).score)
                           - whole) for i, word in enumerate(split)), key=lambda p: -abs(p[1]))
        return [(w, round(change, 2)) for w, change in changes[:top]]

    def _verdict(self, probabilities: list[float]) -> SentenceVerdict:
        kinds = sorted(((kind, probabilities[i]) for i, kind in self._kinds),
                       key=lambda p: -p[1])
        return SentenceVerdict(score=1.0 - probabilities[self._none],
                               threshold=self.threshold, kinds=tuple(kinds))


def _log_odds(score: float) -> float:
    score = min(max(score, 1e-6), 1 - 1e-6)
    return math.log(score / (1 - score))


def sentence_path(locale: str) -> Path:
    """Where the package keeps a locale's sentence reader description (it may not exist)."""
    return Path(__file__).with_name(f"sentence_{locale}.json")


def load_sentence_reader(path: Path) -> SentenceReader:
    """Read a sentence reader: its description file and the model file it names.

    Raises:
        ScriptError: When either file cannot be read, the model is not the one described
            (its SHA-256 differs), or the description is not of this format.
    """
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        labels = [str(label) for label in data["labels"]]
        if NONE not in labels:
            raise ValueError(f"the labels need {NONE!r}")
        for label in labels:
            if label != NONE:
                Kind(label)  # a ValueError for a label that is not a kind
        model = path.with_name(str(data["model"])).read_bytes()
        digest = hashlib.sha256(model).hexdigest()
        if digest != data["sha256"]:
            raise ValueError(f"{data['model']} has SHA-256 {digest}, the description says "
                             f"{data['sha256']}")
        threshold, max_tokens = float(data["threshold"]), int(data["max_tokens"])
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold {threshold}, expected more than 0 and at most 1")
        if not _LEAST_TOKENS <= max_tokens <= _MOST_TOKENS:
            raise ValueError(f"max_tokens {max_tokens}, expected {_LEAST_TOKENS} to "
                             f"{_MOST_TOKENS}")
        reader = SentenceReader(model, json.dumps(data["tokenizer"]), labels,
                                threshold, max_tokens, str(path),
                                frozenset(str(text) for text in data.get("exempt", ())))
    except Exception as exc:  # onnxruntime and tokenizers raise plain Exception subclasses
        raise ScriptError([Finding(str(path), 1, 1, Severity.ERROR,
                                   f"not a sentence reader: {exc}",
                                   "crisis-sentence-reader")]) from None
    return reader
