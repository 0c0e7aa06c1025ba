"""The second reader: its shipped file, determinism, explanations, the context layer, the
engine, its false alarms on the files it was trained on, and its cost.

``tests/test_crisis_corpus.py`` asserts the rules' own targets; what the reader adds is
measured by cross-validation (``rehearse crisis train --measure``, docs/safety.md §5).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import Loaded, build, crisis_detector
from bot.config import load_config
from bot.crisis import (
    KIND_ORDER,
    Detector,
    Kind,
    Reader,
    evaluate,
    load_reader,
    read_cases,
    reader_path,
)
from bot.crisis._detect import READER_RULE
from bot.crisis._reader import features
from bot.crisis._train import own_texts, prepare, train
from bot.script import ScriptError, script_files
from tests.support.engine_driver import Driver, assert_crisis

ROOT = Path(__file__).resolve().parents[1]
CRISIS = ROOT / "tests" / "crisis"
#: The files the shipped reader is trained on: every tuning file, never a sealed one.
TRAINED_ON = ["corpus_en.tsv", "holdout_en.tsv", "holdout2_en.tsv", "probes_en.tsv",
              "exercise_en.tsv", "holdout3_en.tsv", "holdout4_en.tsv", "train_en.tsv",
              "holdout6_en.tsv", *(f"train{n}_en.tsv" for n in range(2, 12)), "flows_en.tsv"]
#: A word no labelled file has, for a reader made by hand.
MADE_UP = "zorbly"


@pytest.fixture(scope="module")
def shipped() -> Detector:
    """The shipped rules with the shipped reader (``safety.second_reader: true``)."""
    return crisis_detector(ROOT / "prompts", "en", second_reader=True)


@pytest.fixture(scope="module")
def with_reader(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    config = tmp_path_factory.mktemp("reader") / "config.yaml"
    config.write_text("safety:\n  second_reader: true\n", encoding="utf-8")
    return build(load_config(config, {}))


def made_up_reader(kind: Kind) -> Reader:
    """A reader that counts a message with the made-up word as a risk of ``kind``."""
    heads = [80.0] + [80.0 if k is kind else 0.0 for k in KIND_ORDER]
    return Reader(KIND_ORDER, (-6.0,) * (len(KIND_ORDER) + 1), 0.5,
                  {"w:" + MADE_UP: tuple(heads)}, "made-up")


@pytest.fixture(scope="module")
def rules_only(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    config = tmp_path_factory.mktemp("rules") / "config.yaml"
    config.write_text("safety:\n  second_reader: false\n", encoding="utf-8")
    return build(load_config(config, {}))


def test_the_reader_is_on_unless_switched_off(
    loaded: Loaded, with_reader: Loaded, rules_only: Loaded
) -> None:
    shipped = load_reader(reader_path("en"))
    assert loaded.engine.resources.crisis.reader == shipped
    assert with_reader.engine.resources.crisis.reader == shipped
    assert rules_only.engine.resources.crisis.reader is None


def test_the_shipped_reader_loads_and_is_small(shipped: Detector) -> None:
    path = reader_path("en")
    assert path.stat().st_size < 3_000_000
    reader = load_reader(path)
    assert reader.kinds == KIND_ORDER
    assert 0.5 < reader.threshold <= 1.0
    assert all(any(w) and len(w) == len(KIND_ORDER) + 1 for w in reader.weights.values())
    assert shipped.reader == reader


def test_function_words_count_only_beside_a_content_word(shipped: Detector) -> None:
    found = features(shipped.speller.words("i just want you to hear me"))
    assert set(found) == {"b:to hear", "b:hear me", "w:hear", "c: he", "c:hea", "c:ear",
                          "c:ar ", "c: hea", "c:hear", "c:ear ", "c: hear", "c:hear "}
    assert found["b:hear me"] == (5, 7)
    assert features(shipped.speller.words("and i want you to")) == {}


def test_a_broken_reader_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "reader_en.json"
    path.write_text('{"format": 1, "kinds": ["suicide"], "bias": [0], "threshold": 0.5, '
                    '"weights": {}}', encoding="utf-8")
    with pytest.raises(ScriptError, match="one number for risk and one per kind"):
        load_reader(path)


def test_the_file_round_trips_and_scores_are_deterministic(shipped: Detector,
                                                           tmp_path: Path) -> None:
    assert shipped.reader is not None
    path = tmp_path / "reader_en.json"
    path.write_text(shipped.reader.to_json(), encoding="utf-8")
    assert path.read_bytes() == reader_path("en").read_bytes()
    again = shipped.with_readers(load_reader(path))
    for case in read_cases(CRISIS / "corpus_en.tsv")[:200]:
        first, second = shipped.second_reading(case.text), again.second_reading(case.text)
        assert first is not None
        assert first == second, case.text


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "reader_en.json"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "crisis", "train", *(str(CRISIS / f) for f in TRAINED_ON),
         "--out", str(out)], capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    # Digests, not the bytes: pytest's diff of two large files would take minutes.
    retrained = hashlib.sha256(out.read_bytes()).hexdigest()
    shipped = hashlib.sha256(reader_path("en").read_bytes()).hexdigest()
    assert retrained == shipped, ("bot/crisis/reader_en.json is stale: a change to the rules "
                                  "changes the reader's words; retrain it (tests/crisis/README.md)")


def test_explain_prints_the_readers_scores_and_words(tmp_path: Path) -> None:
    text = "nobody would even notice if i was gone"
    command = [sys.executable, "-m", "bot", "crisis", "explain", text]
    off = tmp_path / "config.yaml"
    off.write_text("safety:\n  second_reader: false\n  sentence_reader: false\n",
                   encoding="utf-8")
    without = subprocess.run([*command, "--config", str(off)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
    assert "reader:" not in without.stdout
    forced = subprocess.run([*command, "--config", str(off), "--reader"], capture_output=True,
                            text=True, check=True, cwd=ROOT)
    assert "reader: risk " in forced.stdout
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    lines = done.stdout.splitlines()
    risk = next(line for line in lines if line.startswith("reader: risk "))
    assert "(threshold 0." in risk and "+ '" in risk, risk
    kinds = next(line for line in lines if line.startswith("reader: kind "))
    assert all(k.value in kinds for k in Kind), kinds


def test_a_reader_only_match_has_the_readers_kind(shipped: Detector) -> None:
    detector = shipped.with_readers(made_up_reader(Kind.PARTNER_ABUSE))
    assert not shipped.scan(f"it is {MADE_UP} at home")
    detection = detector.scan(f"it is {MADE_UP} at home")
    assert detection.rules == (READER_RULE,)
    assert detection.kinds == (Kind.PARTNER_ABUSE,)
    assert detection.matches[0].words == (MADE_UP,)
    assert "the second reader scores it a risk" in detection.matches[0].why


def test_a_rule_match_keeps_the_rules_kind(shipped: Detector) -> None:
    detector = shipped.with_readers(made_up_reader(Kind.HARM_TO_OTHERS))
    detection = detector.scan(f"i want to kill myself, {MADE_UP}")
    assert READER_RULE not in detection.rules
    assert detection.kinds == (Kind.SUICIDE,)


@pytest.mark.parametrize(("text", "reason"), [
    (f"i have never been {MADE_UP}", "a negation (`never`) governs it"),
    (f"my cousin is {MADE_UP}", "someone else (`cousin`) is the subject"),
])
def test_the_context_layer_cancels_a_reader_only_match(shipped: Detector, text: str,
                                                       reason: str) -> None:
    detector = shipped.with_readers(made_up_reader(Kind.SUICIDE))
    assert detector.scan(f"i am {MADE_UP}")
    assert not detector.scan(text)
    explained = "\n".join(detector.explain(text))
    assert "over the threshold" in explained and reason in explained, explained


def test_a_reader_only_detection_reaches_the_engine_as_its_kind(with_reader: Loaded) -> None:
    detector = with_reader.engine.resources.crisis
    found = next(((case, detection) for case in read_cases(CRISIS / "train_en.tsv")
                  if case.kind != "none"
                  and (detection := detector.scan(case.text)).rules == (READER_RULE,)), None)
    assert found is not None, "the shipped reader adds no match the rules miss in train_en"
    case, detection = found
    d = Driver.new(with_reader.engine)
    d.text(case.text)
    assert_crisis(d, case.text, had_session=False, running=False)
    rows = [e.data for e in d.ledger() if e.kind == "crisis_language"]
    assert rows[0]["kinds"] == [k.value for k in detection.kinds]


#: The reader may add at most this share of false alarms to the rules' own on a file it was
#: trained on (its threshold keeps rules and reader together near 2% over all of them).
ADDED_FALSE_ALARMS = 0.01


@pytest.mark.parametrize("name", TRAINED_ON)
def test_the_reader_adds_few_false_alarms(shipped: Detector, name: str) -> None:
    cases = read_cases(CRISIS / name)
    rules, both = evaluate(shipped.with_readers(), cases), evaluate(shipped, cases)
    added = [c.text for c in both.false_alarms if c not in rules.false_alarms]
    assert both.false_alarm_rate <= rules.false_alarm_rate + ADDED_FALSE_ALARMS, added


def test_no_text_of_the_bot_itself_is_a_reader_match(shipped: Detector) -> None:
    """Stop requests, answers to "are you safe?" and under-arousal words are everyday
    messages the bot expects, and what a scene's character says, its example answers and its
    smaller steps are the sentences the exercises exist for: the reader must not turn one into
    a crisis (the trainer keeps its threshold above them; a stale reader fails here)."""
    intents = ROOT / "prompts" / "en" / "intents.yaml"
    phrases = own_texts(intents, [])
    texts = own_texts(intents, script_files([ROOT / "scripts"]))
    assert len(phrases) > 150 and len(texts) - len(phrases) > 60
    flagged = [t for t in texts if shipped.scan(t).rules == (READER_RULE,)]
    assert not flagged, flagged


def test_the_trainer_keeps_the_threshold_above_texts_to_clear() -> None:
    """A message only the reader catches (on a file the rules miss a few of) is not caught
    once it is a text to clear: the threshold rises above its score."""
    detector = crisis_detector(ROOT / "prompts", "en", second_reader=False)
    rows = prepare(detector, read_cases(CRISIS / "holdout3_en.tsv"))
    plain = detector.with_readers(train(detector, rows))
    caught = [row.case.text for row in rows if not row.rules
              and plain.scan(row.case.text).rules == (READER_RULE,)]
    assert caught, "the reader alone catches none of holdout3: pick another file"
    matched = next(row.case.text for row in rows if row.rules)
    cleared = detector.with_readers(train(detector, rows, [caught[0], matched]))
    assert cleared.reader is not None and plain.reader is not None
    score = plain.second_reading(caught[0])
    assert score is not None
    # just above its score (three decimals), not above the rule-matched text's
    assert score.verdict.score < cleared.reader.threshold <= score.verdict.score + 0.001
    assert cleared.scan(caught[0]).rules != (READER_RULE,)
