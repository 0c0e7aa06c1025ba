"""Scoring the detector on a labelled file: recall per kind and category, false alarms.

The file is tab-separated with a header ``kind<TAB>imminent<TAB>category<TAB>text``; ``#``
lines are comments; ``kind`` is a :class:`~bot.crisis.Kind` value or ``none`` for a message
that needs no crisis response (the format of ``tests/crisis/corpus_en.tsv``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bot.crisis._detect import Detector
from bot.crisis._rules import Kind
from bot.script import Finding, ScriptError, Severity

HEADER = ("kind", "imminent", "category", "text")
BENIGN = "none"


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled message: what it is and the line it came from."""

    kind: str
    imminent: str
    category: str
    text: str
    line: int


@dataclass
class Score:
    """How the detector did on a set of cases.

    Attributes:
        found: Risk messages detected, per kind and per category.
        total: Risk messages, per kind and per category.
        right_kind: Risk messages whose labelled kind was among the kinds detected, per kind.
        false_alarms: Benign cases the detector flagged.
        benign: How many benign cases there were.
        missed: Risk cases the detector did not flag.
    """

    found: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    right_kind: Counter[str] = field(default_factory=Counter)
    false_alarms: list[Case] = field(default_factory=list)
    benign: int = 0
    missed: list[Case] = field(default_factory=list)

    def recall(self, key: str) -> float:
        """Share of risk messages detected for a kind or category (1.0 when there are none)."""
        return self.found[key] / self.total[key] if self.total[key] else 1.0

    @property
    def false_alarm_rate(self) -> float:
        """Share of benign messages flagged."""
        return len(self.false_alarms) / self.benign if self.benign else 0.0

    def report(self) -> list[str]:
        """The score as plain lines, kinds first, then categories, then the misses."""
        lines = ["recall by kind (detected / total; right kind):"]
        for kind in Kind:
            key = kind.value
            if self.total[key]:
                lines.append(f"  {key:<16} {self.recall(key):6.1%}  {self.found[key]}/"
                             f"{self.total[key]}; right kind {self.right_kind[key]}")
        lines.append("recall by category:")
        for key in sorted(k for k in self.total if k.startswith("category:")):
            lines.append(f"  {key.removeprefix('category:'):<16} {self.recall(key):6.1%}  "
                         f"{self.found[key]}/{self.total[key]}")
        lines.append(f"false alarms: {len(self.false_alarms)}/{self.benign} "
                     f"({self.false_alarm_rate:.1%})")
        lines += [f"  missed (line {c.line}, {c.kind}): {c.text}" for c in self.missed]
        lines += [f"  false alarm (line {c.line}): {c.text}" for c in self.false_alarms]
        return lines


def read_cases(path: Path) -> list[Case]:
    """Read a labelled file.

    Raises:
        ScriptError: For a missing header or a malformed row, at ``file:line:1``.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError([_finding(path, 1, f"cannot read the file: {exc}")]) from None
    kinds = {k.value for k in Kind} | {BENIGN}
    cases: list[Case] = []
    header_seen = False
    errors: list[Finding] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if not header_seen:
            if tuple(cells) != HEADER:
                errors.append(_finding(path, number, "the first row must be the header "
                                       + "<TAB>".join(HEADER)))
                break
            header_seen = True
            continue
        if len(cells) != len(HEADER) or cells[0] not in kinds or not cells[3].strip():
            errors.append(_finding(path, number, "a row is kind<TAB>imminent<TAB>category<TAB>"
                                   f"text, with kind one of {', '.join(sorted(kinds))}"))
            continue
        cases.append(Case(cells[0], cells[1], cells[2], cells[3], number))
    if errors:
        raise ScriptError(errors)
    return cases


def evaluate(detector: Detector, cases: list[Case]) -> Score:
    """Run every case through the detector."""
    score = Score()
    for case in cases:
        detection = detector.scan(case.text)
        if case.kind == BENIGN:
            score.benign += 1
            if detection:
                score.false_alarms.append(case)
            continue
        for key in (case.kind, f"category:{case.category}"):
            score.total[key] += 1
            score.found[key] += bool(detection)
        if case.kind in {k.value for k in detection.kinds}:
            score.right_kind[case.kind] += 1
        if not detection:
            score.missed.append(case)
    return score


def _finding(path: Path, line: int, message: str) -> Finding:
    return Finding(str(path), line, 1, Severity.ERROR, message, "crisis-cases")
