"""The sentence reader: its shipped files, determinism, the configuration switch, explanations,
the engine, the bot's own texts, broken files, and the targets on the files it was trained on.

What it adds on text it never saw is measured on sealed files (docs/safety.md §5); here the
shipped model is held to what the trainer promised and to the tuning files' targets.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import Loaded, build, crisis_detector
from bot.config import load_config
from bot.crisis import (
    Detector,
    Kind,
    SentenceReader,
    evaluate,
    load_sentence_reader,
    read_cases,
    sentence_path,
)
from bot.crisis._detect import SENTENCE_RULE
from bot.crisis._train import own_texts
from bot.crisis._train_sentence import LABELS, THRESHOLD, exempt, rows
from bot.script import ScriptError, script_files
from tests.support.engine_driver import Driver, assert_crisis
from tests.test_crisis_reader import TRAINED_ON as READER_TRAINED_ON

ROOT = Path(__file__).resolve().parents[1]
CRISIS = ROOT / "tests" / "crisis"
#: The files the shipped sentence reader is fine-tuned on: the second reader's and train14 and
#: train15, written for it (never a sealed one; train12 and train13 were tried too,
#: docs/safety.md §5).
TRAINED_ON = [*READER_TRAINED_ON, "train14_en.tsv", "train15_en.tsv"]
#: Messages that neither the rules nor the second reader catch and the sentence reader does
#: (from train12 and train13, which neither reader was trained on), with their kind.
ONLY_SENTENCE = [
    ("Wrote a note, it's on the pillow. I've read it over ten times.", Kind.SUICIDE),
    ("My husband forces me when he's drunk and says married people can't rape each other",
     Kind.SEXUAL_VIOLENCE),
    ("I want to set fire to my ex's car while she's in it", Kind.HARM_TO_OTHERS),
]


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The shipped detector: rules, second reader and sentence reader."""
    return crisis_detector(ROOT / "prompts", "en", second_reader=True, sentence_reader=True)


@pytest.fixture(scope="module")
def without_sentence(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    config = tmp_path_factory.mktemp("sentence") / "config.yaml"
    config.write_text("safety:\n  sentence_reader: false\n", encoding="utf-8")
    return build(load_config(config, {}))


def test_the_sentence_reader_is_on_unless_switched_off(
    loaded: Loaded, without_sentence: Loaded, detector: Detector
) -> None:
    on = loaded.engine.resources.crisis.sentence
    assert on is not None and detector.sentence is not None
    assert on.where == detector.sentence.where
    assert without_sentence.engine.resources.crisis.sentence is None
    assert without_sentence.engine.resources.crisis.reader is not None


def test_the_shipped_files_load_match_and_are_small() -> None:
    path = sentence_path("en")
    data = json.loads(path.read_text(encoding="utf-8"))
    model = path.with_name(data["model"])
    assert model.stat().st_size < 25_000_000
    assert hashlib.sha256(model.read_bytes()).hexdigest() == data["sha256"]
    assert data["labels"] == list(LABELS)
    reader = load_sentence_reader(path)
    assert reader.threshold == THRESHOLD


def test_scores_are_deterministic_and_sum_to_one(detector: Detector) -> None:
    sentence = detector.sentence
    assert sentence is not None
    again = load_sentence_reader(sentence_path("en"))
    for case in read_cases(CRISIS / "corpus_en.tsv")[:100]:
        first, second = sentence.read(case.text), again.read(case.text)
        assert first == second, case.text
        assert abs(first.score - sum(p for _, p in first.kinds)) < 1e-4
        assert {k for k, _ in first.kinds} == set(Kind)


@pytest.mark.parametrize(("text", "kind"), ONLY_SENTENCE)
def test_the_sentence_reader_adds_what_the_others_miss(detector: Detector, text: str,
                                                       kind: Kind) -> None:
    assert not detector.with_readers(detector.reader).scan(text)
    detection = detector.scan(text)
    assert detection.rules == (SENTENCE_RULE,)
    assert detection.kinds == (kind,)
    assert "the sentence reader scores it a risk" in detection.matches[0].why


def test_a_rule_or_second_reader_match_comes_first(detector: Detector) -> None:
    assert SENTENCE_RULE not in detector.scan("i want to kill myself").rules
    assert not detector.scan("")
    assert not detector.scan("   ")


def test_a_sentence_only_detection_reaches_the_engine(loaded: Loaded,
                                                      without_sentence: Loaded) -> None:
    text, kind = ONLY_SENTENCE[0]
    d = Driver.new(loaded.engine)
    d.text(text)
    assert_crisis(d, text, had_session=False, running=False)
    rows_ = [e.data for e in d.ledger() if e.kind == "crisis_language"]
    assert rows_[0]["kinds"] == [kind.value]
    off = Driver.new(without_sentence.engine)
    off.text(text)
    assert not [e for e in off.ledger() if e.kind == "crisis_language"]


def test_a_failing_sentence_reader_leaves_the_rules_answer(
    detector: Detector, caplog: pytest.LogCaptureFixture
) -> None:
    """A model that raises (a damaged file, an input it refuses) costs its own verdict only:
    the rules still answer, and the log names the length, never the words."""
    assert detector.sentence is not None
    broken = copy.copy(detector.sentence)
    broken._session = None  # type: ignore[assignment]  # any call fails
    broken._verdicts = {}  # nothing remembered from the working reader
    failing = detector.with_readers(detector.reader, broken)
    text, _ = ONLY_SENTENCE[0]
    assert not failing.scan(text)
    assert failing.scan("i want to kill myself").kinds == (Kind.SUICIDE,)
    assert "the sentence reader failed on a message of" in caplog.text
    assert "pillow" not in caplog.text


def test_explain_prints_the_sentence_readers_scores(tmp_path: Path) -> None:
    text, _ = ONLY_SENTENCE[0]
    command = [sys.executable, "-m", "bot", "crisis", "explain", text]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    lines = done.stdout.splitlines()
    risk = next(line for line in lines if line.startswith("sentence reader: risk "))
    assert "over the threshold" in risk, risk
    assert any(line.startswith("sentence reader: without each word") for line in lines)
    assert any(line.startswith(f"MATCH {ONLY_SENTENCE[0][1].value}") for line in lines)
    off = tmp_path / "off.yaml"
    off.write_text("safety:\n  sentence_reader: false\n", encoding="utf-8")
    without = subprocess.run([*command, "--config", str(off)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
    assert "sentence reader" not in without.stdout
    assert "no crisis response" in without.stdout


def test_no_text_of_the_bot_itself_is_a_sentence_match(detector: Detector) -> None:
    """The bot's own short texts and its scripts' lines stay under the threshold (the trainer
    sets it above them; a change of script that crosses it fails here and in the trainer)."""
    texts = own_texts(ROOT / "prompts" / "en" / "intents.yaml", script_files([ROOT / "scripts"]))
    flagged = [t for t in texts if detector.scan(t).rules == (SENTENCE_RULE,)]
    assert not flagged, flagged
    assert detector.sentence is not None
    assert set(exempt(detector.sentence, detector, texts)) <= detector.sentence.exempt


def test_rows_are_the_folded_texts_and_labels() -> None:
    cases = read_cases(CRISIS / "corpus_en.tsv")
    made = rows(cases)
    assert len(made) == len(cases)
    for case, (text, label) in zip(cases, made, strict=True):
        assert LABELS[label] == case.kind
        assert text == SentenceReader.prepare(case.text)
    assert SentenceReader.prepare(" I\u200bm K\u0456LLING  it ") == "im killing  it"
    assert SentenceReader.prepare("a\udcffb") == "a?b"  # a lone surrogate, not text


#: The sentence reader may add at most this share of false alarms to those of the rules and the
#: second reader on a file it was trained on. When it shipped it added the most on the probes,
#: whose benign rows each borrow a risk pattern's words (22 of 727, 3.0%), and on train5 (5 of
#: 180, 2.8%); on unseen files it added 0.5 to 5 points (docs/safety.md §5).
ADDED_FALSE_ALARMS = 0.035
#: Where the shipped detector stays under 95% on a file it learned from: holdout4's suicide
#: rows, 187 of 199 (93.97%; 79% without the sentence reader; 189 with the model of
#: 2026-12-07, which had not learned train14 and train15's everyday plans and give-aways).
BELOW_TARGET = {("holdout4_en.tsv", Kind.SUICIDE): 0.935}


@pytest.mark.parametrize("name", TRAINED_ON)
def test_the_targets_hold_on_the_files_it_was_trained_on(detector: Detector,
                                                         name: str) -> None:
    """Explicit statements 100% and every kind at least 95% on every file it learned from but
    one kind of one (without it, ten of them miss a kind), for few false alarms more."""
    cases = read_cases(CRISIS / name)
    score = evaluate(detector, cases)
    assert score.recall("category:explicit") == 1.0
    for kind in Kind:
        floor = BELOW_TARGET.get((name, kind), 0.95)
        assert score.recall(kind.value) >= floor, (kind, [c.text for c in score.missed])
    before = evaluate(detector.with_readers(detector.reader), cases)
    added = [c.text for c in score.false_alarms if c not in before.false_alarms]
    assert len(added) <= ADDED_FALSE_ALARMS * score.benign, added


def _broken(tmp_path: Path, change: dict[str, object]) -> Path:
    shipped = sentence_path("en")
    data = json.loads(shipped.read_text(encoding="utf-8"))
    data.update(change)
    (tmp_path / data["model"]).write_bytes(shipped.with_name(data["model"]).read_bytes()
                                           if "model" not in change else b"not a model")
    path = tmp_path / "sentence_en.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"format": 2}, "format 2, expected 1"),
    ({"sha256": "0" * 64}, "the description says 000"),
    ({"labels": ["suicide"]}, "the labels need 'none'"),
    ({"labels": ["none", "weather"]}, "'weather' is not a valid Kind"),
    ({"threshold": 2}, "threshold 2.0, expected more than 0 and at most 1"),
    ({"threshold": float("nan")}, "threshold nan"),
    ({"max_tokens": 600}, "max_tokens 600, expected 3 to 512"),
    ({"model": "other.onnx", "sha256": hashlib.sha256(b"not a model").hexdigest()}, ""),
])
def test_a_broken_sentence_reader_is_reported(tmp_path: Path, change: dict[str, object],
                                              message: str) -> None:
    path = _broken(tmp_path, change)
    with pytest.raises(ScriptError, match="not a sentence reader") as raised:
        load_sentence_reader(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{path}:1:1")


def test_a_missing_model_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sentence_en.json"
    path.write_text(sentence_path("en").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ScriptError, match="No such file"):
        load_sentence_reader(path)



def test_an_exempt_text_is_left_to_the_rules(detector: Detector) -> None:
    """A text of the bot's own that the trainer found over the threshold ("i want to end
    this", a stop request, in one training run) is not counted, however it is typed."""
    assert detector.sentence is not None
    text, _ = ONLY_SENTENCE[0]
    sentence = copy.copy(detector.sentence)
    sentence.exempt = frozenset({SentenceReader.key(text)})
    exempting = detector.with_readers(detector.reader, sentence)
    assert not exempting.scan(text)
    assert not exempting.scan(f"  {text.upper()}!! ")
    explained = "\n".join(exempting.explain(text))
    assert "not counted: the message is one of the bot's own texts" in explained, explained
    assert detector.scan(text).rules == (SENTENCE_RULE,)


@pytest.mark.parametrize("text", ["مرحبا، كيف حالك؟", "你好，我今天很好", "😢😢", "...",
                                  "ik ga naar huis", "merci beaucoup",
                                  "je vais au marché demain", "vou ao mercado amanhã",
                                  "'; DROP TABLE ledger; -- | % | _ | ' OR '1'='1 | "
                                  "\"; DELETE FROM clients; -- | tg:% | \\' | ` | -- | /*"])
def test_text_in_another_language_is_not_read(detector: Detector, text: str) -> None:
    """Out of what it learned: the Arabic greeting scored 0.957, the Dutch "I'm going home"
    0.97, a line of SQL 0.93. The rules still read it."""
    assert not SentenceReader.reads(text, detector.speller.knows)
    assert not detector.scan(text)
    assert "sentence reader: not read" in "\n".join(detector.explain(text))


@pytest.mark.parametrize("text", ["i can't do this anymore 😢",
                                  "k\u0456ll myself",  # a Cyrillic і among Latin letters
                                  "ctb 2nite", "tbh ngl im so done w everything fr fr",
                                  "my abuela is sick again", "kopitiam"])
def test_english_with_chat_emoji_look_alikes_or_a_loanword_is_read(detector: Detector,
                                                                   text: str) -> None:
    assert SentenceReader.reads(text, detector.speller.knows)


def test_a_long_message_is_read_to_its_end(detector: Detector) -> None:
    """Risk after the model's token limit is read in a later window, and the riskiest window
    is the verdict; the benign start alone stays clear."""
    sentence = detector.sentence
    assert sentence is not None
    day = ("Today I went to the shops with my sister and we bought bread, milk, some apples "
           "and a birthday card for our aunt, then we had coffee at the little place on the "
           "corner where the owner always remembers our order and asks after our mum. ") * 2
    # The threat, not the note on the pillow: after the day's last forty word pieces the note
    # scores 0.75 with the model of 2026-12-08 (docs/safety.md §4: a long ordinary passage
    # dilutes a short risk sentence in the same window).
    text, kind = ONLY_SENTENCE[2]
    assert len(sentence._tokenizer.encode(sentence.prepare(day)).ids) == 96  # cut at the limit
    assert not sentence.read(day).over
    assert not detector.with_readers(detector.reader).scan(day + text)
    late = sentence.read(day + text)
    assert late.over and late.kind == kind
    assert detector.scan(day + text).rules == (SENTENCE_RULE,)


def test_verdicts_are_remembered_by_digest_only(detector: Detector) -> None:
    """A message read again is not run through the model again, and what is remembered
    holds no text."""
    sentence = copy.copy(detector.sentence)
    assert sentence is not None
    sentence._verdicts = {}
    text, _ = ONLY_SENTENCE[0]
    first = sentence.read(text)
    sentence._session = None  # type: ignore[assignment]  # the model is not asked again
    assert sentence.read(f"  {text}") == first
    assert all(isinstance(key, bytes) and len(key) == 16 for key in sentence._verdicts)
    assert not any(text.lower().encode() in key for key in sentence._verdicts)
