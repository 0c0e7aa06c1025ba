"""After a risk signal: the safety question in words, "not safe", the time-based hold, /sos.

Issue 11's reproductions, each driven through the real engine over the shipped scripts: a
typed answer to "are you safe right now?" was refused; "not safe" did not stop practice;
``/sos`` neither paused the exercise nor held practice; the hold lifted seconds after the
signal; distress that stayed high ended with no crisis lines; a level up came after calming
and again right after "Not yet".
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.app import Loaded
from bot.engine import Clinician, CrisisQuestion, LevelQuestion, MenuQuestion
from tests.support.engine_driver import CRISIS, Driver, build_situations, engine_with, in_scene


@pytest.fixture(scope="module")
def situations(loaded: Loaded) -> dict[str, Driver]:
    return build_situations(loaded.engine)


def _until(d: Driver) -> str:
    since = d.state.crisis_hold_since
    assert since is not None
    return d.local_time(since + d.engine.resources.policy.crisis_hold)


def _assert_not_safe(d: Driver, *, unsure: bool, ended: bool, scene: bool = False,
                     alert: str = "off") -> None:
    """The not-safe response in order, practice ended for the hold, no text kept."""
    lines = d.engine.resources.policy.lines()
    texts = d.texts()
    assert texts[0] == d.render("crisis.not_safe", emergency=lines.emergency, unsure=unsure,
                                scene=scene, plan=d.plan_text(), alert=alert)
    assert lines.emergency in texts[0]
    assert texts[-1] == d.render("crisis.practice_ended", ended=ended, until=_until(d))
    for resource in lines.lines["suicide"]:
        assert any(resource.contact in t for t in texts[1:-1]), resource
    assert all(m.urgent for m in d.messages)
    assert d.state.session is None and d.state.not_safe and d.state.pending is None
    assert d.state.crisis_hold_since == d.now
    not_safe = d.rows("crisis_not_safe")
    assert not_safe and not_safe[0]["answer"] == ("unsure" if unsure else "not_safe")
    if ended:
        assert d.rows("session_ended")[-1]["reason"] == "not-safe"


# -- §1 the safety question understands words --------------------------------------------------


@pytest.mark.parametrize("text", ["no", "not really", "im not safe", "NO", "nope, not safe",
                                  "i really dont feel very safe"])
def test_a_typed_no_is_answered_as_not_safe(situations: dict[str, Driver], text: str) -> None:
    d = situations["crisis question"].fork()
    d.text(text)
    assert not d.said("unexpected.text_at_buttons")
    _assert_not_safe(d, unsure=False, ended=True)
    assert d.rows("crisis_not_safe") == [{"answer": "not_safe", "typed": True}]
    if len(text) > 4:  # the words are kept nowhere
        assert text not in json.dumps([e.data for e in d.ledger()])
        assert text not in d.state.model_dump_json()


@pytest.mark.parametrize("text", ["yes", "yeah im safe", "Yes I'm safe", "i am ok"])
def test_a_typed_yes_is_answered_as_safe(situations: dict[str, Driver], text: str) -> None:
    d = situations["crisis question"].fork()
    d.text(text)
    assert d.texts() == [d.render("crisis.safe", paused=True, has_plan=False),
                         d.render("crisis.hold", until=_until(d), support_only=False)]
    assert d.rows("crisis_safe") == [{"typed": True}]
    session = d.state.session
    assert session is not None and session.paused and not d.state.not_safe


@pytest.mark.parametrize("text", ["idk", "maybe", "hmm", "🙂", "what"])
def test_anything_unclear_is_not_sure_and_answered_as_not_safe(
        situations: dict[str, Driver], text: str) -> None:
    d = situations["crisis question"].fork()
    d.text(text)
    _assert_not_safe(d, unsure=True, ended=True)
    assert d.texts()[0].startswith("I wasn't sure I understood")


def test_the_question_has_a_not_sure_button(situations: dict[str, Driver]) -> None:
    d = situations["crisis question"].fork()
    assert d.labels() == [d.label("safe"), d.label("not_safe"), d.label("not_sure")]
    d.press(d.label("not_sure"))
    _assert_not_safe(d, unsure=True, ended=True)
    assert d.rows("crisis_not_safe") == [{"answer": "unsure"}]


def test_crisis_language_in_the_answer_is_a_new_signal(situations: dict[str, Driver]) -> None:
    d = situations["crisis question"].fork()
    d.text(CRISIS + ". no")
    assert d.kinds()[0] != "crisis_not_safe" and "crisis_language" in d.kinds()
    assert d.state.pending == CrisisQuestion()


# -- §2 "not safe": practice ends, only support follows ----------------------------------------


def test_not_safe_then_ok_then_resume_never_restarts_the_exercise(
        situations: dict[str, Driver]) -> None:
    d = situations["crisis question"].fork()
    d.press(d.label("not_safe"))
    _assert_not_safe(d, unsure=False, ended=True)
    started = len(d.rows("session_started"))
    d.text("ok")
    # a short support reply with the lines, /sos and the question again; never a script step
    lines = d.engine.resources.policy.lines()
    assert d.texts() == [d.render("crisis.support", emergency=lines.emergency,
                                  groups=lines.groups(("suicide",)), until=_until(d)),
                         d.render("crisis.are_you_safe")]
    assert d.state.session is None and d.state.pending == CrisisQuestion()
    d.press(d.label("safe"))  # safe now: practice still waits for the hold
    assert d.texts() == [d.render("crisis.safe", paused=False, has_plan=False),
                         d.render("crisis.hold", until=_until(d), support_only=True)]
    for command in ("resume", "start"):
        d.command(command) if command == "resume" else d.start()
        assert d.texts() == [d.render("crisis.practice_waits", until=_until(d))], command
        assert d.state.session is None and d.state.pending != MenuQuestion()
    d.text("what now")
    assert d.said("crisis.support", emergency=lines.emergency,
                  groups=lines.groups(("suicide",)), until=_until(d))
    assert len(d.rows("session_started")) == started


def test_a_menu_shown_before_not_safe_cannot_start_an_exercise(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.start()
    assert d.state.pending == MenuQuestion()
    menu = d.fork()
    d.text(CRISIS)
    d.press(d.label("not_safe"))
    # the old menu's button is stale; a fresh /start shows no menu either
    d.start()
    assert d.texts() == [d.render("crisis.practice_waits", until=_until(d))]
    assert menu.state.pending == MenuQuestion()


def test_sos_mid_roleplay_then_not_safe_steps_out_and_never_plays_on(
        situations: dict[str, Driver]) -> None:
    d = situations["roleplay turn"].fork()
    assert in_scene(d)
    d.command("sos")
    assert d.texts()[0] == d.resources_text(running=True, scene=True)
    assert "Stepping out of the practice scene" in d.texts()[0]
    session = d.state.session
    assert session is not None and session.paused and d.state.crisis_hold_since == d.now
    assert d.rows("crisis_hold") == [{"reason": "sos", "until": (
        d.now + d.engine.resources.policy.crisis_hold).isoformat()}]
    d.press(d.label("not_safe"))
    _assert_not_safe(d, unsure=False, ended=True, scene=True)
    d.text("I told them how I feel")
    assert not [e for e in d.ledger() if e.kind == "roleplay_turn"]
    assert d.said("crisis.are_you_safe")


def test_sos_then_safe_keeps_the_exercise_paused_until_resume(
        situations: dict[str, Driver]) -> None:
    d = situations["roleplay turn"].fork()
    d.command("sos")
    d.press(d.label("safe"))
    assert d.texts()[0] == d.render("crisis.safe", paused=True, has_plan=False)
    assert "stays paused" in d.texts()[0]
    d.text("I told them how I feel")  # the scene does not go on
    assert d.texts() == [d.paused_text()]
    assert not [e for e in d.ledger() if e.kind == "roleplay_turn"]
    # /resume starts it afresh one level lower, under the hold: no role-play
    d.command("resume")
    assert "roleplay_started" not in d.kinds()


def test_no_reminder_while_only_support_may_follow(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True)
    d.text(CRISIS)
    d.press(d.label("not_safe"))
    d.advance(hours=5)
    d.fire("reminder", d.now)
    assert d.texts() == [] and d.rows("reminder_skipped") == [{"reason": "crisis-hold"}]


# -- §3 the hold is time-based ----------------------------------------------------------------


def test_a_checkin_seconds_after_the_signal_does_not_lift_the_hold(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.state.level = 2
    d.consent()
    d.text(CRISIS)
    d.press(d.label("safe"))
    d.advance(seconds=2)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("3")  # the check-in is over
    assert d.said("checkin.thanks") and "crisis_hold_cleared" not in d.kinds()
    assert d.state.crisis_hold_since is not None
    d.at("prompt-1", "prompt")
    session = d.state.session
    assert session is not None and session.frame.prompt is not None
    assert loaded.scripts["first-steps"].prompts[session.frame.prompt].level == 1


def test_after_not_safe_practice_opens_only_after_the_hold_hours(loaded: Loaded) -> None:
    engine = engine_with(loaded.engine, crisis_hold=timedelta(hours=6))
    d = Driver.new(engine)
    d.consent()
    d.text(CRISIS)
    d.press(d.label("not_safe"))
    d.advance(hours=5, minutes=59)
    d.start()
    assert d.said("crisis.practice_waits", until=_until(d))
    d.advance(minutes=2)
    d.pick("first-steps")
    assert d.state.session is not None
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("3")
    assert d.rows("crisis_hold_cleared") == [{"by": "check-in"}]
    assert d.state.crisis_hold_since is None and not d.state.not_safe


def test_a_therapist_clearing_the_hold_ends_support_only(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.text(CRISIS)
    d.press(d.label("not_safe"))
    d.advance(minutes=30)
    d.send(Clinician(action="clear-hold", by="therapist:1"))
    d.advance(minutes=5)
    d.pick("first-steps")  # minutes after "not safe": the therapist's word opens practice
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("3")
    assert [r["by"] for r in d.rows("crisis_hold_cleared")] == ["therapist", "check-in"]


def test_no_roleplay_during_the_hold(situations: dict[str, Driver]) -> None:
    d = situations["menu pending"].fork()
    d.text(CRISIS)
    d.press(d.label("safe"))
    d.pick("telling-a-friend")
    d.walk_until(lambda x: x.step != "scene" and "roleplay_left_out" in [
        e.kind for e in x.all_ledger()])
    assert d.rows("roleplay_left_out") or "roleplay_left_out" in [
        e.kind for e in d.all_ledger()]
    assert "roleplay_started" not in [e.kind for e in d.all_ledger()]


def test_progress_and_consent_say_how_long(situations: dict[str, Driver]) -> None:
    d = situations["crisis question"].fork()
    d.press(d.label("not_safe"))
    d.command("progress")
    assert f"practice is limited until {_until(d)}" in d.plain()
    assert "only support" in d.plain()
    policy = d.engine.resources.policy
    intro = d.render("consent.intro", retention_days=policy.retention_days,
                     answers_days=policy.answers_days, therapist_delay=policy.therapist_delay,
                     crisis_hold_hours=policy.crisis_hold_hours)
    assert "at least 24 hours" in intro


# -- §4 sustained distress, level-up limits ----------------------------------------------------


def test_distress_still_high_after_two_rounds_brings_crisis_lines_and_the_question(
        loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("10")
    d.walk_until(lambda x: x.part == "recheck")
    d.text("10")
    d.walk_until(lambda x: x.part == "recheck")
    d.text("10")
    assert d.state.session is None
    assert d.texts() == [d.resources_text(), d.render("checkin.still_high", sustained=True),
                         d.render("crisis.are_you_safe")]
    assert d.state.pending == CrisisQuestion()
    d.press(d.label("safe"))
    d.text("hello")  # the menu does not come back in that session
    assert d.texts() == [d.render("session.resting")]
    assert d.state.pending != MenuQuestion()
    d.start()  # the client's own choice brings it back
    assert d.state.pending == MenuQuestion()


def _complete(d: Driver) -> None:
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("5")
    d.at("checkin-after", "rating")
    d.text("2")
    d.text("3")
    d.walk_until(lambda x: x.state.session is None or x.state.pending == LevelQuestion())


def test_not_yet_waits_for_the_rule_to_hold_again(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    rule = d.state.contract.advance.completed_at_level
    d.state.progress.completed_at_level = {"1": rule - 1}
    _complete(d)
    assert d.state.pending == LevelQuestion()
    d.press(d.label("level_no"))
    for n in range(1, rule + 1):
        d.advance(days=1)
        _complete(d)
        assert (d.state.pending == LevelQuestion()) is (n == rule), n
        d.state.pending = None


def test_no_level_up_after_a_hold_lifted_in_the_same_session(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.state.progress.completed_at_level = {"1": 9}
    d.state.crisis_hold_since = d.now - timedelta(days=2)
    _complete(d)  # its check-in lifts the hold
    assert "crisis_hold_cleared" in [e.kind for e in d.all_ledger()]
    assert d.state.pending != LevelQuestion()
    assert "level_offered" not in [e.kind for e in d.all_ledger()]


def test_no_level_up_after_a_restart_of_a_session_that_needed_calming(loaded: Loaded) -> None:
    """A session that needed calming, paused and started afresh a day later (one level
    lower), is still the session that needed calming: its end brings no "practising steadily"
    offer, however many completions the rule counts."""
    d = Driver.new(loaded.engine)
    d.consent()
    d.state.progress.completed_at_level = {"1": 9}
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")  # high: calming
    d.walk_until(lambda x: x.part == "recheck")
    d.text("2")
    d.command("pause")
    d.advance(days=1, hours=1)
    d.command("resume")
    assert "long-pause" in [r.get("reason") for r in d.rows("session_ended")]
    session = d.state.session
    assert session is not None and session.calmed and session.high_distress
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("5")
    d.at("checkin-after", "rating")
    d.text("2")
    d.text("3")
    d.walk_until(lambda x: x.state.session is None or x.state.pending == LevelQuestion())
    assert d.state.pending != LevelQuestion()
    assert "level_offered" not in [e.kind for e in d.all_ledger()]
