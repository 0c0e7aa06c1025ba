"""How the crisis detector reads a message: chat spelling repairs and rule conditions.

Each test loads a small real rule book from YAML, so it shows one mechanism on its own,
independent of the shipped English rules.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.crisis import Detector, _normalise, fold, load_rules
from bot.script import ScriptError

BOOK = """\
locale: en
lang: en
within: 3
chat:
  "he'll": he will
  wanna: want to
  2: to
concepts:
  NUMBER: [number]
  WANT: [want, wish]
  DIE: [die, dead]
  KILL: [kill]
  SELF: [myself]
  PILLS: [pill, pills, tablets]
  TAKE: [take, took]
  NEG: [not, never]
  PARTNER: [he, partner]
  HIT: [hit, hits]
  ME: [me]
  JUMP: [jump, dive]
rules:
  - id: want-to-die
    kind: suicide
    why: wants to die
    match: [WANT, to, DIE]
    within: 1
  - id: kill-myself
    kind: suicide
    why: kill myself
    match: [KILL, SELF]
    within: 1
  - id: suicide-word
    kind: suicide
    why: suicide
    match: [suicide]
  - id: sh
    kind: suicide
    why: sh
    match: [sh, again]
    within: 1
  - id: kms
    kind: suicide
    why: kms
    match: [kms]
    not_after: [NUMBER]
  - id: took-many-pills
    kind: suicide
    why: many pills
    match: [TAKE, largenumber, PILLS]
    within: 1
  - id: he-will-kill-me
    kind: partner_abuse
    why: threat
    match: [PARTNER, will, KILL, me]
    within: 1
  - id: partner-hits-me
    kind: partner_abuse
    why: violence
    match: [PARTNER, HIT, ME]
    within: 2
    not_inside: [NEG]
    not_near: [pillow fight, chess]
  - id: take-them-all
    kind: suicide
    why: all the pills
    match: [take, them, all]
    within: 0
    near: [PILLS]
  - id: jump
    kind: suicide
    why: jump
    match: [JUMP, off]
    within: 0
  - id: pills-tonight
    kind: suicide
    why: pills and a time, either way round
    match: [PILLS, tonight]
    within: 4
    any_order: true
"""


@pytest.fixture
def detector(tmp_path: Path) -> Detector:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK, encoding="utf-8")
    return Detector(load_rules(path))


def rules(detector: Detector, text: str) -> tuple[str, ...]:
    return detector.scan(text).rules


@pytest.mark.parametrize(("text", "rule"), [
    ("i want to d i e", "want-to-die"),                 # letters spelled out
    ("i w a n t t o d i e", "want-to-die"),
    ("s/h again", "sh"),                                # single letters around a slash
    ("s.h again", "sh"),                                # or dots
    ("thinking about s*icide", "suicide-word"),         # a star for a letter
    ("want to diiiie", "want-to-die"),                  # an exact word before a typo (dive)
    ("wan2die", "want-to-die"),                         # a chat digit inside a word
    ("i want to kiII myself", "kill-myself"),           # capital I for l
    ("i wsh to die", "want-to-die"),                    # a typo read both ways (wash, wish)
    ("i wanna kms", "kms"),
    ("he'll kill me", "he-will-kill-me"),               # not "hell kill me"
    ("i took 30 tablets", "took-many-pills"),           # ten or more is a large number
    ("i wnna die", "want-to-die"),                      # a typo of a chat spelling
    ("wannadie", "want-to-die"),                        # a chat spelling run together
    ("i want to dyie", "want-to-die"),                  # a three-letter word, a letter too many
])
def test_chat_spelling_is_repaired(detector: Detector, text: str, rule: str) -> None:
    assert rule in rules(detector, text), "\n".join(detector.explain(text))


@pytest.mark.parametrize("text", [
    "I'm running 5 kms tomorrow",     # after a number: a distance
    "I ran 10kms",                    # a number run into its unit
    "i took 2 tablets",               # a dose, not a large number
])
def test_numbers_are_numbers(detector: Detector, text: str) -> None:
    assert not detector.scan(text), "\n".join(detector.explain(text))


def test_a_pictograph_reads_as_its_name(detector: Detector) -> None:
    assert rules(detector, "i have a box 💊 and i will take them all") == ("take-them-all",)


def test_near_needs_its_context(detector: Detector) -> None:
    assert not detector.scan("i will take them all to the zoo")


def test_not_inside_cancels_a_negation_within_the_match(detector: Detector) -> None:
    assert rules(detector, "he hits me") == ("partner-hits-me",)
    assert not detector.scan("he never hits me")


@pytest.mark.parametrize("text", ["the pills tonight", "tonight the pills",
                                  "tonight i will take the pills", "pills are for tonight"])
def test_any_order_matches_either_way_round(detector: Detector, text: str) -> None:
    assert rules(detector, text) == ("pills-tonight",), "\n".join(detector.explain(text))


def test_any_order_keeps_its_window(detector: Detector) -> None:
    assert not detector.scan("tonight i will go out and then take my pills")
    assert not detector.scan("off i jump")  # an ordered rule stays ordered


@pytest.mark.parametrize(("change", "message"), [
    ("    any_order: true", "    any_order: yes please"),
    ("    match: [PILLS, tonight]", "    match: [PILLS, tonight, TAKE, ME, NEG]"),
])
def test_a_bad_any_order_is_reported_at_its_place(tmp_path: Path, change: str,
                                                  message: str) -> None:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK.replace(change, message), encoding="utf-8")
    with pytest.raises(ScriptError) as raised:
        load_rules(path)
    line = BOOK.splitlines().index(change) + 1
    assert f"crisis_rules.yaml:{line}:" in str(raised.value)
    assert "any_order" in str(raised.value)


def test_a_negated_context_does_not_cancel_a_match(tmp_path: Path) -> None:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK.replace("concepts:", "negations: [NEG]\nconcepts:") + """\
  - id: pills-and-tape
    kind: suicide
    why: pills and tape
    match: [PILLS, tape]
    within: 3
    not_near: [camping]
""", encoding="utf-8")
    detector = Detector(load_rules(path))
    assert not detector.scan("pills and tape for camping")
    assert rules(detector, "pills and tape and it is not for camping") == ("pills-and-tape",)
    assert rules(detector, "pills and tape never camping") == ("pills-and-tape",)


def test_the_matched_words_said_again_are_no_context(tmp_path: Path) -> None:
    # "kms" is both the match and, as kilometres, the everyday context: said a third time it
    # repeats the match; a real distance word still cancels it.
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK + """\
  - id: kms-repeated
    kind: suicide
    why: kms said twice
    match: [kms, kms]
    within: 1
    not_near: [kms, run]
""", encoding="utf-8")
    detector = Detector(load_rules(path))
    assert "kms-repeated" in rules(detector, "kms kms kms everything is awful")
    assert "kms-repeated" not in rules(detector, "kms kms run today")


def test_phrases_in_conditions_are_looked_up(detector: Detector) -> None:
    # `chess` and `pillow fight` appear only in not_near: they must still be found.
    assert not detector.scan("he hit me at chess")
    assert not detector.scan("he hit me in a pillow fight")


def test_explain_names_the_condition_that_cancelled_a_match(detector: Detector) -> None:
    lines = detector.explain("he hit me at chess")
    assert any("`chess`" in line and "not_near" in line for line in lines), lines
    lines = detector.explain("he never hits me")
    assert any("`NEG`" in line and "not_inside" in line for line in lines), lines


def test_fold_keeps_its_meaning_for_callers() -> None:
    # The engine's stop words use fold(): "QuIt" must stay "quit", not become "qult".
    assert fold("Don’t") == "dont"
    assert fold("QuIt") == "quit"


def test_a_capital_i_is_an_l_only_when_that_makes_a_word(detector: Detector) -> None:
    assert rules(detector, "i want to kіII myself") == ("kill-myself",)
    assert "quit" in detector.explain("QuIt")[0]


def test_fold_reads_look_alikes() -> None:
    assert fold("kіll") == "kill"  # a Cyrillic і


def test_an_unknown_concept_in_near_is_reported_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK.replace("near: [PILLS]", "near: [PILSS]"), encoding="utf-8")
    with pytest.raises(ScriptError) as raised:
        load_rules(path)
    line = BOOK.splitlines().index("    near: [PILLS]") + 1
    assert f"crisis_rules.yaml:{line}:12: error: unknown concept `PILSS`" in str(raised.value)


@pytest.mark.parametrize("chunk", ["ab", "a b ", "d i e ", "*a", "💊", "1 "])
def test_a_huge_message_costs_time_in_proportion(detector: Detector, chunk: str) -> None:
    # 100,000 characters of one pattern (the fuzz tests send such messages): before repairs
    # were bounded, "ab" repeated was one word split into every possible join (out of memory)
    # and a long run of spaced letters was rescanned from every letter.
    text = (chunk * (100_000 // len(chunk) + 1))[:100_000]
    started = time.process_time()
    detector.scan(text)
    assert time.process_time() - started < 10


def test_a_number_of_any_length_is_a_number(detector: Detector) -> None:
    # Python refuses int() of more than 4300 digits; a client can type that many.
    assert not detector.scan("9" * 9000 + " kms")
    assert rules(detector, "i took " + "9" * 9000 + " tablets") == ("took-many-pills",)


def test_the_dictionaries_are_loaded_before_the_first_message() -> None:
    """Building the detector loads simplemma's dictionary and the typo targets, so a client's
    first message (perhaps their first risk message) does not wait ~0.1 s for them."""
    _normalise._targets.cache_clear()
    _normalise._known.cache_clear()
    detector = Detector(load_rules(Path(__file__).resolve().parents[1]
                                   / "prompts/en/crisis_rules.yaml"))
    assert _normalise._targets.cache_info().currsize == 3
    assert _normalise._known.cache_info().currsize >= 1
    assert detector.scan("i want to die")
