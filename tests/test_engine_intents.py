"""Clear intents in words, at every place a client can type: a stop request in words.

Real engine, real shipped scripts, texts and intents; every situation of
:func:`tests.support.engine_driver.build_situations`.
"""

from __future__ import annotations

import pytest

from bot.app import Loaded
from bot.engine import ClientState, MenuQuestion, StopRequestQuestion
from tests.support.engine_driver import SITUATIONS, Driver, build_situations

WAITING = tuple(s for s in SITUATIONS if s != "halted")
STOP_REQUESTS = ("please stop", "I want to stop", "enough", "leave me alone", "no more")


@pytest.fixture(scope="module")
def situations(loaded: Loaded) -> dict[str, Driver]:
    return build_situations(loaded.engine)


def _same(before: ClientState, after: ClientState) -> None:
    skip = {"last_active", "keyboard", "offered"}
    assert after.model_dump(exclude=skip) == before.model_dump(exclude=skip)


@pytest.mark.parametrize("name", WAITING)
@pytest.mark.parametrize("words", STOP_REQUESTS)
def test_a_stop_request_in_words_asks_once_and_moves_nothing_on(
        situations: dict[str, Driver], name: str, words: str) -> None:
    d = situations[name].fork()
    before = d.state.model_copy(deep=True)
    d.text(words)
    assert d.texts() == [d.render("stop.request")], (name, d.plain())
    assert d.labels() == [d.label("stop_everything"), d.label("keep_going")]
    assert isinstance(d.state.pending, StopRequestQuestion)
    assert d.state.pending.before == before.pending
    assert d.state.session == before.session  # no step taken, no line of the character
    assert [(e.kind, e.data) for e in d.ledger()] == [("stop_request", {"choice": "asked"})]
    assert not d.last.answers  # a stop request is never kept as an answer


@pytest.mark.parametrize("name", WAITING)
def test_keep_going_returns_to_exactly_where_the_client_was(
        situations: dict[str, Driver], name: str) -> None:
    d = situations[name].fork()
    before = d.state.model_copy(deep=True)
    d.text("please stop")
    d.text("stop please")  # asked again: the same question, the same way back
    d.press("xk")
    _same(before, d.state)
    assert [(e.kind, e.data) for e in d.ledger()] == [("stop_request", {"choice": "keep-going"})]
    again = situations[name].fork()
    again.command("nonsense")  # an unknown command shows the current question again
    assert d.texts()[-1] == again.texts()[-1], (name, d.plain())
    assert d.codes() == again.codes()


@pytest.mark.parametrize("name", WAITING)
def test_stop_everything_is_stop(situations: dict[str, Driver], name: str) -> None:
    d = situations[name].fork()
    had_session = d.state.session is not None
    d.text("I want to stop")
    d.press("xs")
    assert d.state.halted and d.state.session is None
    assert d.rows("stopped")[-1] == {"via": "request"}
    assert d.said("stop.confirm")
    assert any(r["reason"] == "stop" for r in d.rows("session_ended")) is had_session


def test_exact_stop_words_still_halt_at_once(situations: dict[str, Driver]) -> None:
    d = situations["roleplay turn"].fork()
    d.text("STOP")
    assert d.state.halted and d.rows("stopped")[-1] == {"via": "word"}


def test_a_stop_request_while_halted_gets_the_one_reply(situations: dict[str, Driver]) -> None:
    d = situations["halted"].fork()
    d.text("please stop")
    assert d.texts() == [d.render("stop.halted")]


def test_words_that_are_not_a_stop_request_are_answers(situations: dict[str, Driver]) -> None:
    d = situations["prompt"].fork()
    d.text("I can't stop thinking about my sister")
    assert not isinstance(d.state.pending, StopRequestQuestion)
    assert d.said("prompt.ack")


# -- under-arousal in words and ticked ----------------------------------------------------------

UNDER_WORDS = ("I feel numb, kind of far away", "everything feels foggy and I'm frozen")


def _calming_exercise(d: Driver) -> str | None:
    return d.state.session.frame.calm_exercise if d.state.session else None


@pytest.mark.parametrize("name", ["prompt", "roleplay turn", "checkin rating",
                                  "ask with free text", "connection",
                                  # steps that wait for a button take the words too
                                  "say", "ask with buttons", "exercise page", "skip reason",
                                  "checkin cues", "checkin relief", "roleplay check-in"])
@pytest.mark.parametrize("words", UNDER_WORDS)
def test_under_arousal_in_words_routes_to_grounding(
        situations: dict[str, Driver], name: str, words: str) -> None:
    d = situations[name].fork()
    d.text(words)
    assert d.said("checkin.under"), (name, d.plain())
    assert "far away" in d.render("checkin.under") and "a lot" not in d.render("checkin.under")
    assert d.part == "calm" and _calming_exercise(d) == "grounding-54321"
    assert d.rows("under_arousal")[-1] == {"step": d.step, "said": "words"}
    assert not d.last.answers  # the words are not kept as an answer
    if name == "roleplay turn":  # out of the role before grounding
        assert d.texts()[0] == d.render("roleplay.step_out", character="Robin")
    d.walk_until(lambda x: x.part == "recheck")
    assert d.texts()[-1] == d.render("checkin.question")  # then a re-rating
    d.text("1")  # low after grounding: the exercise goes on from where the client was
    assert d.said("checkin.thanks") and not d.said("session.closed"), (name, d.plain())
    # (at the last check-in of a script, going on is its end)
    assert d.state.session is None or not d.state.session.frame.calming
    assert not [r for r in d.rows("session_ended") if r.get("reason") == "script-changed"]


def test_a_negated_cue_is_not_under_arousal(situations: dict[str, Driver]) -> None:
    d = situations["prompt"].fork()
    d.text("I'm not numb at all")
    assert not d.said("checkin.under") and d.said("prompt.ack")


def test_a_ticked_numb_at_a_low_rating_is_grounding_in_words_that_fit(
        situations: dict[str, Driver]) -> None:
    d = situations["checkin cues"].fork()  # noticing-the-body, after a rating of 2
    d.press("knumb")
    d.press("kd")
    assert d.said("checkin.under") and not any("out of 10 is a lot" in t for t in d.texts())
    assert _calming_exercise(d) == "grounding-54321"
    d.walk_until(lambda x: x.part == "recheck")
    d.text("1")  # low after grounding: it goes on, not "still a lot"
    assert not d.said("checkin.still_high", sustained=False) and d.said("checkin.thanks")
    assert d.state.session is not None and not d.state.session.frame.calming


def test_under_arousal_at_a_high_rating_is_grounding_in_every_round(
        situations: dict[str, Driver]) -> None:
    d = situations["checkin rating"].fork()  # first-steps: breathing comes first otherwise
    d.text("I feel numb")
    exercises = [_calming_exercise(d)]
    d.walk_until(lambda x: x.part == "recheck")
    d.text("9")
    exercises.append(_calming_exercise(d))
    assert exercises == ["grounding-54321", "grounding-54321"]


@pytest.mark.parametrize("name", ["menu pending", "paused"])
@pytest.mark.parametrize("words", UNDER_WORDS)
def test_under_arousal_in_words_outside_an_exercise_gets_a_grounding(
        situations: dict[str, Driver], name: str, words: str) -> None:
    """At the menu, or with the exercise paused, the words get a short grounding, then what
    was on offer before; nothing starts by itself."""
    d = situations[name].fork()
    before = d.state.session
    d.text(words)
    assert d.texts()[0] == d.render("grounding.offer")
    assert not d.said("unexpected.text_at_buttons")
    assert d.rows("under_arousal") == [{"step": None, "said": "words"}]
    assert d.state.session == before and not d.last.answers
    if name == "paused":
        assert d.texts()[1:] == [d.paused_text()]
    else:
        assert d.state.pending == MenuQuestion() and len(d.texts()) == 2
