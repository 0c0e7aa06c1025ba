"""The crisis detector on the labelled corpus, against the phrase list it replaced.

    python -m bench.bench_crisis [--corpus FILE] [--repeat N]

Prints recall per kind and category and the false-alarm rate for the detector as shipped
(rules, second reader and sentence reader), without its sentence reader
(``safety.sentence_reader: false``), its rules alone and the phrase list, and the cost per
message of each as
a ratio to the phrase list, measured in the same process on the same messages. The baseline
is the whole-word phrase matcher Rehearse shipped before (``bench/data/substring_phrases.yaml``).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

from bot.app import crisis_detector
from bot.crisis import Case, Kind, fold, read_cases
from bot.script import load_yaml

ROOT = Path(__file__).resolve().parents[1]
_NON_WORD = re.compile(r"[^\w]+")


class PhraseMatcher:
    """The old detector: a message matches when a phrase's words appear in it, in order."""

    def __init__(self, path: Path) -> None:
        data = load_yaml(path).data
        assert isinstance(data, dict)
        self.phrases = [self._norm(str(p)) for p in data["phrases"]]
        self.exclude = [self._norm(str(p)) for p in data["exclude"]]

    @staticmethod
    def _norm(text: str) -> str:
        return " ".join(_NON_WORD.sub(" ", fold(text)).split())

    def matches(self, text: str) -> bool:
        padded = f" {self._norm(text)} "
        for phrase in self.exclude:
            padded = padded.replace(f" {phrase} ", " ")
        return any(f" {phrase} " in padded for phrase in self.phrases)


def score(name: str, flagged: Callable[[str], bool], cases: list[Case]) -> None:
    """Print recall per kind and category, and false alarms."""
    found: dict[str, list[bool]] = {}
    alarms = benign = 0
    for case in cases:
        hit = flagged(case.text)
        if case.kind == "none":
            benign += 1
            alarms += hit
            continue
        for key in (f"kind {case.kind}", f"category {case.category}"):
            found.setdefault(key, []).append(hit)
    print(f"\n{name}")
    for key in [f"kind {k.value}" for k in Kind] + sorted(k for k in found if "category" in k):
        if key in found:
            hits = found[key]
            print(f"  {key:<26} {sum(hits) / len(hits):6.1%}  ({sum(hits)}/{len(hits)})")
    print(f"  {'false alarms':<26} {alarms / benign:6.1%}  ({alarms}/{benign})")


def cost(flagged: Callable[[str], bool], texts: list[str], repeat: int) -> float:
    """Seconds per message, the best of three timed passes."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            for text in texts:
                flagged(text)
        best = min(best, (time.perf_counter() - start) / (repeat * len(texts)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests/crisis/corpus_en.tsv")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = read_cases(args.corpus)
    detector = crisis_detector(ROOT / "prompts", "en", second_reader=True,
                               sentence_reader=True)
    without = detector.with_readers(detector.reader)
    rules_only = detector.with_readers()
    old = PhraseMatcher(ROOT / "bench/data/substring_phrases.yaml")

    def new(text: str) -> bool:
        # Every message read as if never seen: the sentence reader remembers its verdicts.
        assert detector.sentence is not None
        detector.sentence.forget()
        return bool(detector.scan(text))

    def without_sentence(text: str) -> bool:
        return bool(without.scan(text))

    def rules(text: str) -> bool:
        return bool(rules_only.scan(text))

    score("as shipped (rules, second reader, sentence reader)", new, cases)
    score("without the sentence reader (rules and second reader)", without_sentence, cases)
    score("its rules alone", rules, cases)
    score("baseline: phrase list", old.matches, cases)
    texts = [c.text for c in cases]
    theirs = cost(old.matches, texts, args.repeat)
    print(f"\ncost per message over {len(texts)} messages (phrase list {theirs * 1e6:.1f} µs; "
          "the detector runs on every message; target well under 1 ms):")
    for name, flagged in (("as shipped", new), ("without the sentence reader", without_sentence),
                          ("rules alone", rules)):
        ours = cost(flagged, texts, args.repeat)
        print(f"  {name:<27} {ours * 1e6:7.1f} µs, ratio {ours / theirs:.1f}×")


if __name__ == "__main__":
    main()
