"""``/safetyplan`` in the engine: the client writes Stanley & Brown's six parts in their own
words, one at a time, each skippable; changes one part later; accepts or replaces a
therapist's suggestion; and the plan comes right after the emergency number in a crisis.

Real engine, real shipped texts; the plan reaches the engine in the state, as the service
hands it in from the store (``tests/test_store_plans.py`` covers that side).
"""

from __future__ import annotations

import json

import pytest

from bot.app import Loaded
from bot.engine import (
    PART_CHARS,
    PARTS,
    Clinician,
    CrisisQuestion,
    SafetyPlan,
    SafetyPlanQuestion,
    StopQuestion,
    Suggestion,
    plan_from,
)
from bot.engine._context import MESSAGE_CHARS
from tests.support.engine_driver import CRISIS, Driver

HEADINGS = ["My warning signs", "What I can do on my own", "People and places that distract me",
            "People I can ask for help", "Professionals and crisis lines",
            "Making my surroundings safer"]


@pytest.fixture
def d(loaded: Loaded) -> Driver:
    driver = Driver.new(loaded.engine)
    driver.consent()
    return driver


def saved(d: Driver) -> list[tuple[str, ...]]:
    """The parts changed by every version the last event saves."""
    return [p.changed for p in d.last.plans]


def test_the_start_says_plainly_what_is_saved_before_anything_is_written(d: Driver) -> None:
    d.command("safetyplan")
    text = d.plain()
    assert "it is saved" in text and "shown back to you in hard moments" in text
    assert "/delete erases it" in text
    assert "Your therapist does not see it" in text  # no sharing opt-in
    assert d.labels() == ["Write my plan", "Not now"]
    assert not d.last.plans and not d.kinds()
    d.press("Not now")
    assert d.said("safetyplan.not_now")
    assert not d.last.plans and d.state.safety_plan is None


def test_with_sharing_the_start_says_the_therapist_sees_it(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(share=True)
    d.command("safetyplan")
    assert "your therapist can see your plan too" in d.plain()


def test_building_asks_the_six_parts_in_order_each_skippable(d: Driver) -> None:
    d.command("safetyplan")
    d.press("Write my plan")
    assert d.rows("safety_plan") == [{"action": "write"}]
    seen = []
    for number, heading in enumerate(HEADINGS, start=1):
        first_line = d.plain().splitlines()[0]
        seen.append(first_line)
        assert first_line == f"{number} of 6: {heading}"
        assert d.labels() == ["Skip this part"]
        if number in (1, 4):
            d.text(f"  my words for part {number}  ")
            assert saved(d) == [(PARTS[number - 1],)]
        else:
            d.press("Skip this part")
            assert not d.last.plans
    assert d.state.safety_plan == SafetyPlan(warning_signs="my words for part 1",
                                             people_to_ask="my words for part 4")
    # the whole plan at the end, then what next
    whole, overview = d.texts()
    assert "<b>1. My warning signs</b>\nmy words for part 1" in whole
    assert "<b>2. People I can ask for help</b>\nmy words for part 4" in whole
    assert "What I can do on my own" not in whole
    assert d.labels() == ["Change a part", "Done"]
    assert "shown first on /sos" in overview
    # the ledger has the facts, never the words
    assert d.rows("safety_plan")[1:] == [{"action": "saved", "part": "warning_signs"},
                                         {"action": "saved", "part": "people_to_ask"}]
    assert "my words" not in json.dumps([e.data for e in d.all_ledger()])
    d.press("Done")
    assert d.said("safetyplan.done")
    assert not isinstance(d.state.pending, SafetyPlanQuestion)


def test_changing_one_part_later(d: Driver) -> None:
    d.state.safety_plan = SafetyPlan(warning_signs="not sleeping", internal_coping="a walk")
    d.command("safetyplan")
    assert "not sleeping" in d.texts()[0]  # the plan as it is, first
    assert d.labels() == ["Change a part", "Done"]
    d.press("Change a part")
    assert d.labels() == [*HEADINGS, "Done"]
    d.press("What I can do on my own")
    text = d.plain()
    assert text.startswith("What I can do on my own")  # one part: no "2 of 6"
    assert "Your plan says now:\na walk" in text
    assert d.labels() == ["Keep it as it is"]
    d.text("a walk with the dog")
    assert saved(d) == [("internal_coping",)]
    assert d.last.plans[0].plan == SafetyPlan(warning_signs="not sleeping",
                                              internal_coping="a walk with the dog")
    assert d.labels() == ["Change a part", "Done"]  # back to the overview, not the next part
    d.press("Change a part")
    d.press("My warning signs")
    d.press("Keep it as it is")
    assert not d.last.plans
    assert d.state.safety_plan.warning_signs == "not sleeping"  # type: ignore[union-attr]


def test_a_part_too_long_is_not_saved_and_can_be_sent_again(d: Driver) -> None:
    d.command("safetyplan")
    d.press("Write my plan")
    d.text("x" * (PART_CHARS + 1))
    assert d.said("safetyplan.too_long", chars=PART_CHARS, length=PART_CHARS + 1)
    assert not d.last.plans
    assert isinstance(d.state.pending, SafetyPlanQuestion) and d.state.pending.part == 0
    d.press("Skip this part")  # the part's buttons still answer it
    assert d.plain().startswith("2 of 6")


def test_a_suggestion_is_shown_and_used_only_with_the_clients_yes(d: Driver) -> None:
    d.state.plan_suggestion = Suggestion(version=4, by="tg:9000", plan=SafetyPlan(
        warning_signs="Staying in bed all day", internal_coping="Cold water on my face"))
    d.command("safetyplan")
    assert "Your therapist has suggested wording" in d.plain()
    d.press("Write my plan")
    assert "Your therapist suggested:\nStaying in bed all day" in d.plain()
    assert d.labels() == ["Use this wording", "Skip this part"]
    d.press("Use this wording")
    [change] = d.last.plans
    assert change.author == "client" and change.status == "accepted"
    assert change.suggestion == 4 and change.plan.warning_signs == "Staying in bed all day"
    assert d.rows("safety_plan")[-1] == {"action": "saved", "part": "warning_signs",
                                         "suggestion": 4, "suggested_by": "tg:9000"}
    # the client's own words replace a suggestion: typing is writing their own
    assert "Cold water on my face" in d.plain()
    d.text("Hold an ice cube")
    assert d.last.plans[0].plan.internal_coping == "Hold an ice cube"
    assert d.last.plans[0].suggestion is None
    for _ in range(4):
        d.press("Skip this part")
    assert d.state.plan_reviewed == 4 and d.state.plan_suggestion is None
    assert d.rows("safety_plan")[-1] == {"action": "suggestion_reviewed", "suggestion": 4}


def test_reviewing_a_suggestion_goes_through_only_its_parts(d: Driver) -> None:
    d.state.safety_plan = SafetyPlan(warning_signs="not sleeping")
    d.state.plan_suggestion = Suggestion(version=2, by="operator", plan=SafetyPlan(
        warning_signs="not sleeping", safe_environment="Sam keeps my spare pills"))
    d.command("safetyplan")
    assert d.labels() == ["Change a part", "See the suggestions", "Done"]
    d.press("See the suggestions")
    # the warning signs already say what was suggested: only the last part is asked
    assert d.plain().startswith("Making my surroundings safer\nWhat could make")
    d.press("Skip this part")  # keep mine (nothing): the suggestion is not used
    assert not d.last.plans
    assert d.state.plan_reviewed == 2
    assert d.labels() == ["Change a part", "Done"]  # nothing left to review


def test_a_use_press_for_a_suggestion_that_changed_meanwhile_saves_nothing(d: Driver) -> None:
    d.state.plan_suggestion = Suggestion(version=1, by="tg:9000",
                                         plan=SafetyPlan(warning_signs="old wording"))
    d.command("safetyplan")
    d.press("Write my plan")
    # a newer suggestion arrives from the store before the press
    d.state.plan_suggestion = Suggestion(version=2, by="tg:9000",
                                         plan=SafetyPlan(warning_signs="new wording"))
    d.press("Use this wording")
    assert not d.last.plans
    assert d.said("safetyplan.suggestion_changed")
    assert "new wording" in d.plain() and "old wording" not in d.plain()
    d.press("Use this wording")
    assert d.last.plans[0].plan.warning_signs == "new wording"
    assert d.last.plans[0].suggestion == 2


def test_stale_and_forged_presses_change_nothing(d: Driver) -> None:
    d.command("safetyplan")
    old = d.button("Write my plan").data
    d.press("Write my plan")
    for data in (old, "999:pk", f"{d.state.keyboard}:pp9", f"{d.state.keyboard}:pg",
                 f"{d.state.keyboard}:zz"):
        d.press_data(data)
        assert d.said("unexpected.stale_button")
        assert not d.last.plans
        assert isinstance(d.state.pending, SafetyPlanQuestion) and d.state.pending.part == 0


def test_crisis_words_while_writing_get_the_crisis_response_first(d: Driver) -> None:
    d.command("safetyplan")
    d.press("Write my plan")
    d.text("Not sleeping")
    d.text(CRISIS)  # typed as a part: the gatekeeper answers first, nothing is saved
    assert d.texts()[0].startswith("<b>If you or anyone else is in danger right now, call")
    assert "Not sleeping" in d.texts()[0]  # the part written a moment ago is shown already
    assert d.state.pending == CrisisQuestion()
    assert not d.last.plans
    assert CRISIS not in json.dumps([p.plan.parts() for h in d.history for p in h.plans])


def test_stop_works_while_writing_and_keeps_what_was_saved(d: Driver) -> None:
    d.command("safetyplan")
    d.press("Write my plan")
    d.text("Not sleeping")
    d.command("stop")
    assert d.state.halted and d.state.pending == StopQuestion()
    assert d.state.safety_plan == SafetyPlan(warning_signs="Not sleeping")
    d.command("safetyplan")  # halted: nothing starts
    assert d.said("stop.halted")


def test_a_stop_request_in_words_while_writing_can_come_back(d: Driver) -> None:
    d.command("safetyplan")
    d.press("Write my plan")
    d.press("Skip this part")
    d.text("please stop")
    assert d.said("stop.request") and not d.last.plans
    d.press(d.label("keep_going"))
    assert d.plain().startswith("2 of 6")


def test_before_consent_the_terms_come_first(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.start()
    d.command("safetyplan")
    assert not isinstance(d.state.pending, SafetyPlanQuestion)
    assert "consent" in type(d.state.pending).__name__.lower()


def test_after_the_plan_the_question_asked_before_comes_back(d: Driver) -> None:
    d.command("sos")
    assert d.state.pending == CrisisQuestion()
    d.command("safetyplan")
    d.press("Not now")
    assert d.state.pending == CrisisQuestion()  # "are you safe right now?" again
    assert d.texts()[-1] == d.render("crisis.are_you_safe")


def test_sos_without_a_plan_offers_one_gently_after_the_safety_answer(d: Driver) -> None:
    d.command("sos")
    assert "/safetyplan" not in d.texts()[0]  # the first message is the lines, nothing else
    d.press(d.label("safe"))
    assert "/safetyplan helps you write your own plan" in d.plain()
    d.state.safety_plan = SafetyPlan(warning_signs="x")
    d.command("sos")
    d.press(d.label("safe"))
    assert "/safetyplan" not in d.plain()


def test_not_safe_shows_the_plan_right_after_the_emergency_number(d: Driver) -> None:
    d.state.safety_plan = SafetyPlan(people_to_ask="Jo, 0123 456")
    d.command("sos")
    d.press(d.label("not_safe"))
    first = d.texts()[0]
    assert first.index("Please call 911 now") < first.index("Jo, 0123 456")
    assert sum("Jo, 0123 456" in t for t in d.texts()) == 1  # once, in the first message


def test_a_plan_too_long_to_share_the_first_message_comes_second(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.state.safety_plan = SafetyPlan.model_validate(
        {part: f"{part} " + "w" * (PART_CHARS - len(part) - 1) for part in PARTS})
    plan = d.plan_text()
    assert len(plan) <= MESSAGE_CHARS  # a whole plan always fits a message of its own
    d.command("sos")
    first, second = d.texts()[:2]
    assert "call 911" in first and "warning_signs" not in first
    assert second == plan
    assert d.texts()[2] == d.render("crisis.are_you_safe")


def test_a_therapists_suggestion_is_saved_as_a_suggestion_and_told_once(d: Driver) -> None:
    d.send(Clinician(action="suggest-plan", by="tg:9000",
                     parts=(("internal_coping", "Cold water"), ("warning_signs", ""))))
    [change] = d.last.plans
    assert (change.author, change.status, change.changed) == (
        "tg:9000", "suggested", ("internal_coping",))
    assert d.state.safety_plan is None  # never the client's plan by itself
    assert d.rows("safety_plan")[-1] == {"action": "suggested", "by": "tg:9000",
                                         "parts": ["internal_coping"]}
    assert d.texts() == [d.render("safetyplan.suggested")]
    assert "Cold water" not in d.plain()  # the note says that, not what


def test_a_suggestion_after_a_halt_or_at_night_is_saved_but_not_told(d: Driver) -> None:
    night = d.fork()
    night.advance(hours=14)  # 23:00 in the practice's time zone: quiet hours
    night.send(Clinician(action="suggest-plan", by="tg:9000",
                         parts=(("internal_coping", "Cold water"),)))
    assert night.last.plans and not night.texts()
    d.command("stop")
    d.send(Clinician(action="suggest-plan", by="tg:9000",
                     parts=(("internal_coping", "Cold water"),)))
    assert d.last.plans and not d.texts()


def test_plan_from_checks_names_and_lengths() -> None:
    assert plan_from({"warning_signs": "  a  "}) == SafetyPlan(warning_signs="a")
    with pytest.raises(ValueError, match="not a part of the safety plan: coping_steps"):
        plan_from({"coping_steps": "x"})
    with pytest.raises(ValueError, match=f"longer than {PART_CHARS} characters: distraction"):
        plan_from({"distraction": "x" * (PART_CHARS + 1)})
