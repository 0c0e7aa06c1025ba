"""Unexpected input at every place a client waits: a kind reply, the question again, no change.

Free text where buttons are expected, ratings out of range, empty, huge, emoji-only,
right-to-left, zero-width and control-character messages, photos, stale and forged buttons.
Each gets one short reply and the current question again, and changes nothing else in the
client's state (apart from the time of their last message and the keyboard counters).
"""

from __future__ import annotations

import pytest

from bot.app import Loaded
from bot.engine import ClientState, Effect
from tests.support.engine_driver import (
    AT_STEP,
    CRISIS,
    SITUATIONS,
    Driver,
    assert_crisis,
    build_situations,
)

RATING_SUBS = ("rating", "recheck", "expected", "actual")
#: Situations where typed text is an answer (a prompt, a role-play line, a journaling page…).
TAKES_TEXT = ("prompt", "roleplay turn", "connection", "journaling write page",
              "ask with free text")
#: The safety question reads any text as an answer, and anything unclear as "not sure"
#: (tests/test_engine_crisis_flow.py).
WAITING = tuple(s for s in SITUATIONS if s not in ("halted", "crisis question"))


@pytest.fixture(scope="module")
def situations(loaded: Loaded) -> dict[str, Driver]:
    return build_situations(loaded.engine)


def _same_state(before: ClientState, after: ClientState) -> None:
    skip = {"last_active", "keyboard", "offered"}
    assert after.model_dump(exclude=skip) == before.model_dump(exclude=skip)


def _expect_kind_reply(d: Driver, name: str, before: ClientState, first: str) -> None:
    """One kind reply, then the same question with live buttons; nothing else changed."""
    assert d.texts()[0] == first, (name, d.plain())
    assert len(d.messages) >= 2 or name == "paused", (name, d.plain())
    assert d.messages[-1].buttons, name
    assert d.messages[-1].text != first or name == "paused"
    _same_state(before, d.state)
    assert not d.ledger() and not d.last.answers and not d.last.effects
    assert d.state.offered == before.offered  # the very same question


def _kind_reply_for_text(d: Driver, name: str) -> str:
    """What a client is told when their text is not an answer here."""
    if name == "paused":
        return d.paused_text()
    if d.state.pending is None and d.part in RATING_SUBS:
        return d.render("unexpected.out_of_range", low=0, high=10)
    if name == "weekly check-in pending":  # its items take a typed number too
        return d.render("outcomes.number")
    return d.render("unexpected.text_at_buttons")


NOT_ANSWERS = {
    "emoji": "🙂🙃🫠",
    "arabic": "مرحبا، كيف حالك؟",
    "hebrew": "שלום, מה שלומך?",
    "words": "what do I do now",
}
BLANK = {
    "spaces": "   \t  ",
    "zero-width": "\u200b\u200c\u200d\u2060\ufeff",
    "control": "\x00\x07\x1b",
    "mixed-invisible": " \u200b \x0b \u200d ",
}


@pytest.mark.parametrize("name", [s for s in WAITING if s not in TAKES_TEXT])
@pytest.mark.parametrize("kind", [*NOT_ANSWERS, *BLANK, "huge"])
def test_text_that_is_not_an_answer(situations: dict[str, Driver], name: str,
                                    kind: str) -> None:
    d = situations[name].fork()
    text = {**NOT_ANSWERS, **BLANK}.get(kind, "x" * 100_000)
    before = d.state.model_copy(deep=True)
    first = _kind_reply_for_text(d, name)
    d.text(text)
    _expect_kind_reply(d, name, before, first)


@pytest.mark.parametrize("name", TAKES_TEXT)
@pytest.mark.parametrize("kind", list(BLANK))
def test_blank_text_where_text_is_the_answer(situations: dict[str, Driver], name: str,
                                             kind: str) -> None:
    d = situations[name].fork()
    before = d.state.model_copy(deep=True)
    d.text(BLANK[kind])
    _expect_kind_reply(d, name, before, d.render("unexpected.empty"))


@pytest.mark.parametrize("name", TAKES_TEXT)
def test_a_huge_message_where_text_is_the_answer(situations: dict[str, Driver],
                                                 name: str) -> None:
    d = situations[name].fork()
    limit = 300 if name == "ask with free text" else 4000  # the script's max_length here
    before = d.state.model_copy(deep=True)
    d.text("x" * 100_000)
    _expect_kind_reply(d, name, before, d.render("unexpected.too_long", limit=limit))


@pytest.mark.parametrize("name", TAKES_TEXT)
@pytest.mark.parametrize("kind", list(NOT_ANSWERS))
def test_any_script_or_emoji_is_an_answer_where_text_is(
        situations: dict[str, Driver], name: str, kind: str) -> None:
    d = situations[name].fork()
    assert d.state.session is not None
    frame = d.state.session.frame
    d.text(NOT_ANSWERS[kind])
    assert not d.said("unexpected.empty") and not d.said("unexpected.text_at_buttons")
    assert d.state.session is None or d.state.session.frame != frame  # taken: moved on
    assert d.last.answers == []  # not kept without the opt-in
    assert NOT_ANSWERS[kind] not in d.state.model_dump_json()


@pytest.mark.parametrize("name", [n for n, (_, sub) in AT_STEP.items() if sub in RATING_SUBS])
@pytest.mark.parametrize("value", ["11", "-1", "7.5", "seven", "1 0", "٧", "10/10", "０",
                                   "9999999", "+3", "3\u200b"])
def test_ratings_out_of_range(situations: dict[str, Driver], name: str, value: str) -> None:
    d = situations[name].fork()
    before = d.state.model_copy(deep=True)
    d.text(value)
    _expect_kind_reply(d, name, before, d.render("unexpected.out_of_range", low=0, high=10))
    assert d.messages[-1].buttons[0][0].label == "0"


@pytest.mark.parametrize("name", [n for n, (_, sub) in AT_STEP.items() if sub in RATING_SUBS])
@pytest.mark.parametrize("value", ["0", " 10 ", "04"])
def test_ratings_in_range_are_taken(situations: dict[str, Driver], name: str,
                                    value: str) -> None:
    d = situations[name].fork()
    d.text(value)
    assert not d.said("unexpected.out_of_range", low=0, high=10)
    assert any(e.kind.startswith("checkin") for e in d.ledger())


def test_a_huge_message_with_crisis_language_is_still_noticed(
        situations: dict[str, Driver]) -> None:
    d = situations["prompt"].fork()
    text = "word " * 20_000 + CRISIS
    d.text(text)
    assert_crisis(d, text, had_session=True, running=True)


@pytest.mark.parametrize("name", WAITING)
def test_non_text_messages(situations: dict[str, Driver], name: str) -> None:
    d = situations[name].fork()
    before = d.state.model_copy(deep=True)
    d.non_text("sticker")
    _expect_kind_reply(d, name, before, d.render("unexpected.non_text"))


# -- stale and forged buttons ----------------------------------------------------------------------


def _older_button(d: Driver) -> str:
    """The data of a button from an earlier keyboard than the live one."""
    live = str(d.state.keyboard)
    for out in reversed(d.history):
        for message in out.messages:
            for row in message.buttons:
                for spec in row:
                    if spec.data.partition(":")[0] != live:
                        return spec.data
    return f"{d.state.keyboard - 1}:{d.codes()[0]}"  # only one keyboard so far


def _forged(d: Driver) -> dict[str, str]:
    live = d.state.keyboard
    return {
        "random": "q8Zx!",
        "empty": "",
        "no-seq": "go",
        "unknown-code": f"{live}:zz",
        "other-question": f"{live}:dy",  # delete's confirm, offered nowhere here
        "withdraw": f"{live}:wd",
        "future-seq": f"{live + 1}:go",
        "too-long": f"{live}:" + "a" * 70,
        "huge-index": f"{live}:c999999999999999999999",
        "negative": f"{live}:r-1",
    }


@pytest.mark.parametrize("name", WAITING)
def test_a_stale_button(situations: dict[str, Driver], name: str) -> None:
    d = situations[name].fork()
    data = _older_button(d)
    before = d.state.model_copy(deep=True)
    d.press_data(data)
    _expect_kind_reply(d, name, before, d.render("unexpected.stale_button"))


FORGERIES = ("random", "empty", "no-seq", "unknown-code", "other-question", "withdraw",
             "future-seq", "too-long", "huge-index", "negative")


@pytest.mark.parametrize("name", WAITING)
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_button(situations: dict[str, Driver], name: str, forgery: str) -> None:
    d = situations[name].fork()
    data = _forged(d)[forgery]
    before = d.state.model_copy(deep=True)
    d.press_data(data)
    _expect_kind_reply(d, name, before, d.render("unexpected.stale_button"))
    assert Effect.ERASE not in d.last.effects


def test_a_button_pressed_twice_counts_once(situations: dict[str, Driver]) -> None:
    d = situations["prompt"].fork()
    data = d.button("sh").data
    d.press_data(data)
    shared = d.state.progress.prompts_shared
    d.press_data(data)
    assert d.said("unexpected.stale_button")
    assert d.state.progress.prompts_shared == shared


def test_the_halted_client_gets_one_reply_to_anything(situations: dict[str, Driver]) -> None:
    d = situations["halted"].fork()
    for text in ("🙂", "", "\u200b", "x" * 100_000, "مرحبا"):
        d.text(text)
        assert d.texts() == [d.render("stop.halted")]
    d.press_data(_forged(d)["random"])
    assert d.state.halted and Effect.ERASE not in d.last.effects
