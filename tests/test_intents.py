"""The intent reader on the shipped English phrases, and the intent book's loader.

The inputs are the ones a clinical review typed (issue 11): stop requests that were answered
"Thank you for sharing that", typed answers to "are you safe right now?" that were refused,
and under-arousal in words that never reached grounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.crisis import load_rules
from bot.intents import Intents, SafetyAnswer, load_intents
from bot.script import ScriptError
from tests.conftest import ROOT

PROMPTS = ROOT / "prompts" / "en"


@pytest.fixture(scope="module")
def intents() -> Intents:
    chat = load_rules(PROMPTS / "crisis_rules.yaml").chat
    return Intents(load_intents(PROMPTS / "intents.yaml"), chat)


@pytest.mark.parametrize("text", [
    "please stop", "stop please", "I want to stop", "stop it", "no more", "enough", "exit",
    "I quit", "halt", "leave me alone", "Please. Stop.", "i wanna stop", "ok, i want to stop now",
    "this is hard, i want to stop", "ENOUGH!!", "thats enough", "can we stop pls",
    "i dont want to do this anymore", "i can't do this right now", "stop it, leave me alone",
])
def test_clear_stop_requests_are_recognised(intents: Intents, text: str) -> None:
    assert intents.stop_request(text)


@pytest.mark.parametrize("text", [
    "I want to stop feeling so anxious at parties",
    "stop signs make me nervous",
    "I had enough sleep for once",
    "no more than twice a week",
    "I told him to stop and he did, which felt good",
    "done",  # exercises have a Done button
    "not today",  # a skip reason
    "I want to leave the party early next time",
    "I quit smoking last year",
    "my friend said enough is enough and left",
])
def test_sentences_that_only_contain_stop_words_are_answers(intents: Intents, text: str) -> None:
    assert not intents.stop_request(text)


@pytest.mark.parametrize(("text", "meaning"), [
    ("yes", SafetyAnswer.SAFE), ("Yes", SafetyAnswer.SAFE), ("yeah im safe", SafetyAnswer.SAFE),
    ("yep", SafetyAnswer.SAFE), ("I'm ok thanks", SafetyAnswer.SAFE), ("yesss", SafetyAnswer.SAFE),
    ("safe, thank you", SafetyAnswer.SAFE), ("i think so", SafetyAnswer.SAFE),
    ("no", SafetyAnswer.NOT_SAFE), ("NO", SafetyAnswer.NOT_SAFE),
    ("not really", SafetyAnswer.NOT_SAFE), ("im not safe", SafetyAnswer.NOT_SAFE),
    ("nope", SafetyAnswer.NOT_SAFE), ("no i'm not", SafetyAnswer.NOT_SAFE),
    ("yes im not safe", SafetyAnswer.NOT_SAFE), ("yes... actually no", SafetyAnswer.NOT_SAFE),
    ("i really dont feel very safe tonight", SafetyAnswer.NOT_SAFE),
    ("i dont feel saef", SafetyAnswer.NOT_SAFE),  # a typo in a word the book knows
    ("not sure", SafetyAnswer.UNSURE), ("idk", SafetyAnswer.UNSURE),
    ("maybe?", SafetyAnswer.UNSURE), ("kinda", SafetyAnswer.UNSURE),
    # unclear is unsure, which the engine treats as not safe
    ("thanks", SafetyAnswer.UNSURE), ("👍", SafetyAnswer.UNSURE), ("k", SafetyAnswer.UNSURE),
    ("he is in the other room", SafetyAnswer.UNSURE), ("", SafetyAnswer.UNSURE),
])
def test_typed_safety_answers(intents: Intents, text: str, meaning: SafetyAnswer) -> None:
    assert intents.safety_answer(text) is meaning


@pytest.mark.parametrize("text", [
    "I feel numb, kind of far away", "everything feels foggy and I'm frozen", "nothing feels real",
    "spaced out", "i zoned out again", "my mind went blank when he asked",
    "i cant feel anything", "kinda numbbb", "im on autopilot today",
])
def test_under_arousal_cues_anywhere_in_a_message(intents: Intents, text: str) -> None:
    assert intents.under_arousal(text)


@pytest.mark.parametrize("text", [
    "i'm not numb anymore", "no longer foggy", "my mum lives far away",
    "it's freezing outside", "I froze the leftovers", "I feel calm and present",
])
def test_no_cue_or_a_negated_cue_is_not_under_arousal(intents: Intents, text: str) -> None:
    assert not intents.under_arousal(text)


BOOK = """\
locale: en
filler: [please, just]
stop_requests: [please stop, i want to stop]
safety:
  safe: [yes, i am safe]
  not_safe: [no, not safe]
  unsure: [not sure]
  negations: [not]
under_arousal:
  cues: [numb]
  negations: [not]
"""


@pytest.mark.parametrize(("mistake", "replace", "where", "message"), [
    ("unknown key", ("locale: en", "locale: en\nstop_words: [x]"), (2, 1),
     "unknown key `stop_words`"),
    ("apostrophe", ("i want to stop]", "don't stop]"), (3, 30), "must be lower-case words"),
    ("two meanings", ("unsure: [not sure]", "unsure: [no]"), (7, 12),
     "`no` is already in `not_safe`"),
    ("only filler", ("[please stop,", "[please just,"), (3, 17), "only filler words"),
    ("phrase as a filler", ("filler: [please, just]", "filler: [please, just now]"), (2, 18),
     "must be a single word"),
    ("window", ("cues: [numb]\n", "cues: [numb]\n  window: 99\n"), (11, 11),
     "from 0 to 6"),
])
def test_mistakes_in_the_book_are_reported_at_their_place(
    tmp_path: Path, mistake: str, replace: tuple[str, str], where: tuple[int, int], message: str
) -> None:
    path = tmp_path / "intents.yaml"
    text = BOOK.replace(*replace)
    assert text != BOOK, mistake
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScriptError) as raised:
        load_intents(path)
    assert [(f.line, f.col) for f in raised.value.findings if message in f.message] == [where]


def test_the_shipped_book_loads_and_its_example_book_too(tmp_path: Path) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(BOOK, encoding="utf-8")
    assert load_intents(path).stop_requests == (("please", "stop"), ("i", "want", "to", "stop"))
    assert load_intents(PROMPTS / "intents.yaml").safe
