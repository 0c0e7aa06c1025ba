"""Training the second reader offline, and measuring it honestly (``rehearse crisis train``).

Needs scikit-learn (the ``train`` extra); the bot itself never imports this module. Six
L2-regularised logistic regressions on the features of :func:`bot.crisis._reader.features`:
one for risk against benign, one per kind for that kind against every other row. liblinear
with a fixed seed is deterministic, so the same files and rule book give the same data file
byte for byte.

The threshold comes from 5-fold cross-validation inside the training rows: every row is
scored by a model that did not see it, the context layer's cancellations are applied as at
run time, and the threshold is the lowest risk score at which the reader flags at most
:data:`READER_FALSE_ALARMS` of the benign rows the rules leave alone. The reader has a budget
of its own, not what is left of the rules': the rules' false alarms on files they were tuned
on say nothing about new text, and once they pass 2% on their own (they do, on the sealed
sets spent for tuning) a shared budget leaves the reader nothing and switches it off. The
reader is tuned on its own recall, not on what it adds to the rules: the rules were tuned on
these same files and miss almost nothing there, so what the reader adds can only be measured
on text neither has seen. The threshold is also kept above the bot's own short texts
(:func:`own_texts`: the intent book's phrases, what the scripts' characters say, their example
answers and smaller steps): a client who types back an example answer or a character's line
must not start the crisis flow.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from bot.crisis._detect import Detector
from bot.crisis._evaluate import BENIGN, Case
from bot.crisis._reader import Reader, features, scale_for
from bot.crisis._rules import KIND_ORDER, Kind
from bot.intents import load_intents
from bot.script import load_yaml

#: The keys of a script whose string values are the bot's own exercise sentences.
_SCRIPT_TEXT_KEYS = ("says", "example", "smaller")

#: Regularisation (scikit-learn's C: larger fits the examples more closely).
C = 4.0
#: A feature must occur in at least this many training rows to get a weight.
MIN_ROWS = 2
#: Weights are rounded to this many decimals (and a weight of zero is left out).
DECIMALS = 3
#: The share of the benign rows the rules do not flag that the reader alone may flag, out of
#: fold (half of issue 8's 2% target for both together).
READER_FALSE_ALARMS = 0.01
#: Folds for the thresholds and for measuring.
FOLDS = 5
SEED = 0


@dataclass(frozen=True, slots=True)
class _Row:
    """A labelled message as the trainer needs it: features, label and the rules' verdict."""

    case: Case
    features: dict[str, float]
    rules: bool


def prepare(detector: Detector, cases: Sequence[Case]) -> list[_Row]:
    """Every case's features (scaled as the reader scales them) and whether a rule matched."""
    rules = detector.with_readers()
    rows = []
    for case in cases:
        found = features(rules.speller.words(case.text))
        rows.append(_Row(case, dict.fromkeys(found, scale_for(len(found))),
                         bool(rules.scan(case.text))))
    return rows


def fit(rows: Sequence[_Row]) -> Reader:
    """A reader trained on ``rows``, with a threshold of 1.0 (never reached): :func:`train`
    sets the real one."""
    counts = Counter(f for row in rows for f in row.features)
    names = sorted(f for f, n in counts.items() if n >= MIN_ROWS)
    index = {f: i for i, f in enumerate(names)}
    data, cols, starts = [], [], [0]
    for row in rows:
        kept = sorted((index[f], v) for f, v in row.features.items() if f in index)
        cols += [c for c, _ in kept]
        data += [v for _, v in kept]
        starts.append(len(cols))
    matrix = csr_matrix((np.array(data), np.array(cols, dtype=np.int64), np.array(starts)),
                        shape=(len(rows), len(names)))
    heads = [np.array([row.case.kind != BENIGN for row in rows], dtype=np.int64)]
    heads += [np.array([row.case.kind == kind.value for row in rows], dtype=np.int64)
              for kind in KIND_ORDER]
    bias: list[float] = []
    columns: list[np.ndarray] = []
    for labels in heads:
        model = LogisticRegression(C=C, solver="liblinear", random_state=SEED, max_iter=1000)
        model.fit(matrix, labels)
        bias.append(round(float(model.intercept_[0]), DECIMALS + 1))
        columns.append(np.round(model.coef_[0], DECIMALS))
    stacked = np.vstack(columns).T
    weights = {name: tuple(float(w) for w in stacked[i])
               for i, name in enumerate(names) if np.any(stacked[i])}
    return Reader(KIND_ORDER, tuple(bias), 1.0, weights)


def train(detector: Detector, rows: Sequence[_Row], clear: Sequence[str] = ()) -> Reader:
    """A reader trained on every row, with its threshold from cross-validation on them, raised
    when needed so that no text of ``clear`` that the rules leave alone reaches it."""
    reader = fit(rows)
    highest = highest_own_text(detector.with_readers(reader), clear)
    floor = 0.0 if highest is None else _just_above(highest[0])
    return dataclasses.replace(reader, threshold=max(choose_threshold(detector, rows), floor))


def own_texts(intents: Path, scripts: Iterable[Path]) -> list[str]:
    """The bot's own sentences a client may type back: the intent book's stop requests, answers
    to "are you safe?" and under-arousal cues, and every ``says``, ``example`` and ``smaller``
    text of the scripts (not the longer ``say``, ``hint`` or ``end`` texts).

    Raises:
        ScriptError: When the intent book has errors or a script cannot be read as YAML.
    """
    book = load_intents(intents)
    found = [" ".join(phrase) for phrase in (*book.stop_requests, *book.safe, *book.not_safe,
                                             *book.unsure, *book.under_arousal)]
    for path in scripts:
        found += _script_texts(load_yaml(path).data)
    return found


def _script_texts(node: object) -> list[str]:
    if isinstance(node, dict):
        return [t for key, value in node.items()
                for t in ([value] if key in _SCRIPT_TEXT_KEYS and isinstance(value, str)
                          else _script_texts(value))]
    return [t for value in node for t in _script_texts(value)] if isinstance(node, list) else []


def highest_own_text(with_reader: Detector, texts: Sequence[str]) -> tuple[float, str] | None:
    """The highest risk score among ``texts`` that no rule matches and the context layer lets
    the reader count, with its text; None when there is none."""
    rules = with_reader.with_readers()
    scored = [(found.verdict.score, text) for text in texts if not rules.scan(text)
              for found in (with_reader.second_reading(text),)
              if found is not None and found.cancelled is None
              and found.verdict.anchor is not None]
    return max(scored, default=None)


def _just_above(score: float) -> float:
    """The lowest threshold of :data:`DECIMALS` decimals above ``score``, at most 1."""
    step: int = 10 ** DECIMALS
    return min(1.0, (math.floor(score * step) + 1) / step)


def choose_threshold(detector: Detector, rows: Sequence[_Row]) -> float:
    """The lowest risk score at which the reader flags at most :data:`READER_FALSE_ALARMS` of
    the benign rows the rules leave alone, measured on out-of-fold scores."""
    scores = _out_of_fold(detector, rows)
    ranked: list[float] = sorted((s for row, s in zip(rows, scores, strict=True)
                                  if row.case.kind == BENIGN and not row.rules), reverse=True)
    allowed = math.floor(READER_FALSE_ALARMS * len(ranked))
    # Just above the (allowed + 1)-th highest benign score: at most `allowed` reach it.
    ceiling = ranked[allowed] if allowed < len(ranked) else 0.0
    return round(min(1.0, ceiling + 0.1 ** DECIMALS), DECIMALS)


def _out_of_fold(detector: Detector, rows: Sequence[_Row]) -> list[float]:
    """Every row's risk score (0 when the context layer cancels it) from a model trained on
    the other folds."""
    scores = [0.0] * len(rows)
    for train_at, test_at in _folds(rows):
        with_reader = detector.with_readers(fit([rows[i] for i in train_at]))
        for i in test_at:
            found = with_reader.second_reading(rows[i].case.text)
            if found is not None and found.cancelled is None \
                    and found.verdict.anchor is not None:
                scores[i] = found.verdict.score
    return scores


def _folds(rows: Sequence[_Row]) -> list[tuple[list[int], list[int]]]:
    """Folds stratified by kind, shuffled with a fixed seed."""
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    labels = [row.case.kind for row in rows]
    return [(list(a), list(b)) for a, b in splitter.split(np.zeros(len(rows)), labels)]


@dataclass
class Tally:
    """Recall per kind and false alarms of one way of reading, summed over test folds."""

    found: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    false_alarms: int = 0
    benign: int = 0

    def add(self, case: Case, flagged: bool) -> None:
        """Count one test row."""
        if case.kind == BENIGN:
            self.benign += 1
            self.false_alarms += flagged
        else:
            self.total[case.kind] += 1
            self.found[case.kind] += flagged

    def line(self, name: str) -> str:
        """The tally as one table row: recall per kind, then false alarms."""
        cells = [f"{self.found[k.value] / self.total[k.value]:6.1%}" if self.total[k.value]
                 else "     -" for k in Kind]
        rate = self.false_alarms / self.benign if self.benign else 0.0
        return (f"  {name:<14} " + " ".join(f"{c:>8}" for c in cells)
                + f"   {rate:5.1%} ({self.false_alarms}/{self.benign})")


def measure(detector: Detector, rows: Sequence[_Row],
            tests: Sequence[tuple[list[int], list[int]]],
            clear: Sequence[str] = ()) -> dict[str, Tally]:
    """Rules alone, the reader alone and both, on each test part, the reader trained (and its
    thresholds chosen) only on the matching training part."""
    tallies = {name: Tally() for name in ("rules", "reader", "rules+reader")}
    for train_at, test_at in tests:
        training = [rows[i] for i in train_at]
        with_reader = detector.with_readers(train(detector, training, clear))
        for i in test_at:
            row = rows[i]
            detection = with_reader.scan(row.case.text)
            # asked directly: the scan asks the reader only when no rule matched
            found = with_reader.second_reading(row.case.text)
            by_reader = found is not None and found.counts
            tallies["rules"].add(row.case, row.rules)
            tallies["reader"].add(row.case, by_reader)
            tallies["rules+reader"].add(row.case, bool(detection))
    return tallies


def report(detector: Detector, files: Sequence[tuple[str, Sequence[Case]]],
           clear: Sequence[str] = ()) -> list[str]:
    """The measurements: 5-fold cross-validation over every row, then each file held out in
    turn with the reader trained on the others (each threshold kept above ``clear``)."""
    rows: list[_Row] = []
    origin: list[str] = []
    for name, cases in files:
        rows += prepare(detector, cases)
        origin += [name] * len(cases)
    header = "  " + " " * 14 + " " + " ".join(f"{k.value[:8]:>8}" for k in Kind) \
        + "   false alarms"
    lines = [f"{FOLDS}-fold cross-validation over {len(rows)} rows "
             "(stratified by kind; a fold's rows never train its reader):", header]
    lines += [t.line(n) for n, t in measure(detector, rows, _folds(rows), clear).items()]
    for name, _ in files:
        test_at = [i for i, o in enumerate(origin) if o == name]
        train_at = [i for i, o in enumerate(origin) if o != name]
        lines += [f"trained on the other files, tested on {name} ({len(test_at)} rows):",
                  header]
        lines += [t.line(n) for n, t in measure(detector, rows, [(train_at, test_at)],
                                                 clear).items()]
    return lines
