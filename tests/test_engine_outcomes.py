"""The weekly outcome check-in, in the engine: switched on per client by their therapist, asked
at the first session start a week after the last one, one 0–10 item at a time, each skippable
and all of it skippable; never before consent, after /stop or while only support may follow.

Real engine, real shipped texts and scripts.
"""

from __future__ import annotations

import pytest

from bot.app import Loaded
from bot.engine import (
    OUTCOME_ITEMS,
    OUTCOME_RATED,
    OUTCOMES_DECLINED,
    OUTCOMES_SWITCHED,
    Clinician,
    MenuQuestion,
    OutcomeQuestion,
    StopQuestion,
)
from tests.support.engine_driver import CRISIS, Driver, assert_crisis, build_situations

THERAPIST = "tg:9000"
SKIP, NOT_THIS_WEEK = "Skip this question", "Not this week"


def switch(d: Driver, on: bool = True) -> None:
    d.send(Clinician(action="outcomes-on" if on else "outcomes-off", by=THERAPIST))


@pytest.fixture
def d(loaded: Loaded) -> Driver:
    driver = Driver.new(loaded.engine)
    driver.consent()
    switch(driver)
    return driver


def test_off_by_default_and_off_means_never_asked(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    assert not d.state.outcomes
    d.start()
    assert d.state.pending == MenuQuestion()
    switch(d)
    switch(d, on=False)
    d.advance(days=30)
    d.start()
    assert d.state.pending == MenuQuestion() and not d.rows(OUTCOME_RATED)
    assert [r["on"] for r in d.rows(OUTCOMES_SWITCHED)] == [True, False]


def test_switching_is_a_ledger_row_and_tells_the_client_nothing(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    switch(d)
    assert d.rows(OUTCOMES_SWITCHED) == [{"on": True, "by": THERAPIST}]
    assert not d.messages


def test_asked_at_start_one_item_at_a_time_pressed_or_typed(d: Driver) -> None:
    d.start()
    assert d.state.pending == OutcomeQuestion()
    text = d.plain()
    assert "weekly check-in" in text and "only if you share your practice" in text
    assert "how close did you feel to someone" in text
    assert d.labels() == [*map(str, range(11)), SKIP, NOT_THIS_WEEK]
    d.press("7")
    assert "how easy was it to say what you need" in d.plain()
    assert "weekly check-in" not in d.plain()  # the introduction comes once
    d.text(" 3 ")
    assert "how willing are you to reach out" in d.plain()
    for wrong in ("eleven", "11", "-1", "3.5"):
        d.text(wrong)
        assert d.said("outcomes.number") and d.state.pending == OutcomeQuestion(item=2)
    d.press("10")
    assert d.rows(OUTCOME_RATED) == [{"item": "closeness", "value": 7},
                                     {"item": "saying_needs", "value": 3},
                                     {"item": "reaching_out", "value": 10}]
    assert d.said("outcomes.thanks") and d.state.pending == MenuQuestion()


def test_skip_one_item_and_skip_all(d: Driver) -> None:
    d.start()
    d.press(SKIP)
    assert d.state.pending == OutcomeQuestion(item=1) and not d.rows(OUTCOME_RATED)
    d.press("5")
    d.press(NOT_THIS_WEEK)
    assert d.rows(OUTCOMES_DECLINED) == [{"item": OUTCOME_ITEMS[2]}]
    assert d.said("outcomes.not_this_week") and d.state.pending == MenuQuestion()
    assert [r["item"] for r in d.rows(OUTCOME_RATED)] == ["saying_needs"]


def test_not_asked_again_before_seven_days(d: Driver) -> None:
    d.start()
    d.press(NOT_THIS_WEEK)
    d.advance(days=6, hours=23)
    d.start()
    assert d.state.pending == MenuQuestion()
    d.advance(hours=1)
    d.start()
    assert d.state.pending == OutcomeQuestion()


def test_a_menu_choice_asks_it_first_then_starts_the_exercise(d: Driver) -> None:
    assert d.state.pending == MenuQuestion()
    title = d.engine.resources.scripts["first-steps"].meta.title[:40]
    d.press(title)
    assert d.state.pending == OutcomeQuestion(script="first-steps")
    assert d.state.session is None
    for _ in OUTCOME_ITEMS:
        d.press(SKIP)
    assert d.state.session is not None and d.state.session.script == "first-steps"


def test_never_before_consent(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    switch(d)
    d.start()
    assert d.state.pending is not None and d.state.pending.kind == "consent"


def test_crisis_words_during_it_show_resources_first_and_no_check_in_follows(
        d: Driver) -> None:
    d.start()
    d.text(CRISIS)
    assert_crisis(d, CRISIS, had_session=False, running=False)
    assert not d.rows(OUTCOME_RATED)
    d.press(d.label("not_safe"))
    d.advance(days=7)  # due again, and the hold's support-only time is over
    d.start()
    assert d.state.pending == OutcomeQuestion()


def test_never_while_only_support_may_follow_not_safe(d: Driver) -> None:
    d.start()
    d.press(NOT_THIS_WEEK)
    d.advance(days=7)
    d.text(CRISIS)
    d.press(d.label("not_safe"))
    d.start()
    assert "weekly check-in" not in d.plain()
    assert not isinstance(d.state.pending, OutcomeQuestion)


def test_stop_during_it_halts_and_a_later_press_is_stale(d: Driver) -> None:
    d.start()
    seven = d.button("7").data
    d.command("stop")
    assert d.state.halted and d.state.pending == StopQuestion()
    d.press_data(seven)
    assert not d.rows(OUTCOME_RATED)


def test_stale_and_forged_presses_change_nothing(d: Driver) -> None:
    d.start()
    for forged in ("{live}:r11", "{next}:r7", "{live}:oix", "r7", "{live}:ow1"):
        live = d.state.keyboard
        d.press_data(forged.format(live=live, next=live + 1))
        assert d.said("unexpected.stale_button"), forged
        assert d.state.pending == OutcomeQuestion()
    assert not d.rows(OUTCOME_RATED) and not d.rows(OUTCOMES_DECLINED)


def test_the_shared_situations_include_the_check_in(loaded: Loaded) -> None:
    """tests/test_engine_globals.py runs /stop, /sos, crisis words and every global command
    against it, like every other situation."""
    assert build_situations(loaded.engine)["weekly check-in pending"].state.pending == (
        OutcomeQuestion())
