"""Pacing and the contract: levels, smaller steps, de-escalation, silence, caps, reminders.

Real engine, real shipped scripts and texts; small YAML scripts in tmp where a shape is
needed that no shipped script has. Time moves only by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Loaded, build
from bot.config import ContractDefaults, load_config
from bot.engine import (
    ClientState,
    Contract,
    Engine,
    LevelQuestion,
    Opt,
    Redeemed,
    ReminderTimeQuestion,
)
from bot.engine._terms import Pace
from bot.script import LoadedScript
from tests.support.engine_driver import (
    CRISIS,
    T0,
    Driver,
    engine_for_files,
    engine_with,
    script_beside_library,
)


def _client(engine: Engine, *, level: int = 1, max_level: int | None = None,
            **consent: bool) -> Driver:
    d = Driver.new(engine)
    d.state.level = level
    if max_level is not None:
        d.state.contract.max_level = max_level
    d.consent(**consent)  # type: ignore[arg-type]
    return d


def _prompt_messages(d: Driver, script: LoadedScript) -> dict[str, int]:
    """Which prompts (by id, with level) the client was shown, in full or smaller wording."""
    texts = d.engine.resources.texts
    shown: dict[str, int] = {}
    sent = [m.text for out in d.history for m in out.messages]
    for prompt in script.prompts.values():
        full = str(texts.text(prompt.text, {})).strip()
        forms = [full]
        if prompt.smaller:
            small = str(texts.text(prompt.smaller, {}))
            forms.append(str(texts.system("prompt.smaller", text=small)).strip())
        if any(text in forms for text in sent):
            shown[prompt.id] = prompt.level
    return shown


# -- levels and the contract ---------------------------------------------------------------------


@pytest.mark.parametrize("smaller", [False, True])
def test_nothing_above_the_contract_max_level_is_shown(loaded: Loaded, smaller: bool) -> None:
    script = loaded.scripts["first-steps"]
    d = _client(loaded.engine, level=3, max_level=1)
    d.pick("first-steps")
    d.at("prompt-1")
    for _ in range(12):
        if d.state.session is None:
            break
        if smaller and d.part == "prompt":
            d.command("smaller")
        d.answer_current()
    d.walk_to_end()
    shown = _prompt_messages(d, script)
    assert shown, "no prompt was shown at all"
    assert set(shown.values()) == {1}, shown
    levels = [e["level"] for e in d.rows("prompt")]
    assert levels and set(levels) == {1}


def test_roleplay_turns_above_the_level_use_the_smaller_line(loaded: Loaded) -> None:
    script = loaded.scripts["telling-a-friend"]
    play = script.steps["scene"].roleplay
    assert play is not None
    d = _client(loaded.engine, level=1)
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    d.walk_until(lambda x: x.step != "scene")
    sent = "\n".join(m.text for out in d.history for m in out.messages)
    for turn in play.turns:
        if turn.level > 1:
            assert turn.says not in sent
            assert turn.smaller is not None and turn.smaller in sent
        else:
            assert turn.says in sent
    turns = d.rows("roleplay_turn")
    assert [t["smaller"] for t in turns] == [t.level > 1 for t in play.turns]


def test_roleplay_turns_above_the_level_without_smaller_are_left_out(
        loaded: Loaded, tmp_path: Path) -> None:
    path = script_beside_library(tmp_path, "scene.yaml", _SCENE)
    engine = engine_for_files([path])
    d = _client(engine, level=1)
    d.pick("scene")
    d.walk_to_end()
    sent = "\n".join(m.text for out in d.history for m in out.messages)
    assert "Tell me your deepest fear." not in sent
    assert "How was your week" in sent and "Good to see you." in sent
    assert d.rows("turn_left_out") == [{"step": "talk", "turn": 1, "level": 3}]
    # at level 3 the same turn is played in full
    deep = _client(engine, level=3, max_level=3)
    deep.pick("scene")
    deep.walk_to_end()
    assert "Tell me your deepest fear." in "\n".join(
        m.text for out in deep.history for m in out.messages)


_SCENE = """\
script: {id: scene, title: Scene, version: 1, author: Tests, level: 3,
         summary: A scene with a deep turn., calm: [paced-breathing]}
includes: [library.yaml]
steps:
  - id: check
    checkin: {moment: before}
  - id: talk
    roleplay:
      character: Robin
      practises: disclosing
      scene: Coffee with Robin.
      checkin_every: 5
      turns:
        - says: How was your week
          smaller: Good week
        - says: Tell me your deepest fear.
          level: 3
          example: I fear being left.
        - says: Good to see you.
          example: You too.
  - id: done
    end: Done.
"""


def _complete_first_steps(d: Driver, *, after: int = 2, expected: int = 5,
                          actual: int = 3) -> None:
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    d.text(str(expected))
    d.at("after-prompt-1")
    d.press("c1")
    d.at("checkin-after", "rating")
    d.text(str(after))
    d.text(str(actual))
    d.walk_until(lambda x: x.state.session is None or x.state.pending == LevelQuestion())


def _offered(d: Driver) -> bool:
    return "level_offered" in d.kinds() and d.state.pending == LevelQuestion()


def test_level_up_is_proposed_only_when_the_rule_holds(loaded: Loaded) -> None:
    d = _client(loaded.engine)  # rule: 3 completed at the level, after ≤ 4, actual ≤ expected
    for day in range(3):
        d.now = T0 + timedelta(days=day)
        _complete_first_steps(d)
        assert _offered(d) == (day == 2), day
    assert d.said("level.offer", level=1, next_level=2)
    assert d.codes() == ["ly", "ln"]
    assert d.state.level == 1  # never moves without a yes


@pytest.mark.parametrize(("after", "expected", "actual"), [(5, 5, 3), (2, 3, 6), (9, 5, 3)])
def test_sessions_that_do_not_meet_the_rule_do_not_count(
        loaded: Loaded, after: int, expected: int, actual: int) -> None:
    d = _client(loaded.engine)
    for day in range(4):
        d.now = T0 + timedelta(days=day)
        if after >= 7:  # high distress: calming, then a low re-rating closes normally
            _complete_with_high_after(d)
        else:
            _complete_first_steps(d, after=after, expected=expected, actual=actual)
        assert not _offered(d)
        d.state.pending = None
    assert d.state.progress.completed_at_level.get("1", 0) == 0
    assert d.state.progress.exercises_done == 4


def _complete_with_high_after(d: Driver) -> None:
    d.pick("first-steps")
    d.at("after-prompt-1")
    d.press("c1")
    d.at("checkin-after", "rating")
    d.text("9")
    d.walk_until(lambda x: x.part == "recheck")
    d.text("3")  # better now; the session goes on to its end
    d.walk_until(lambda x: x.state.session is None)


def test_level_yes_moves_one_level_no_keeps_it(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.state.progress.completed_at_level = {"1": 2}
    _complete_first_steps(d)
    assert _offered(d)
    no = d.fork()
    no.press(no.label("level_no"))
    assert no.state.level == 1 and no.kinds() == ["level_kept"]
    typed = d.fork()
    typed.text("yes")  # typing is not an explicit yes on the offer
    assert typed.state.level == 1 and typed.said("unexpected.text_at_buttons")
    d.press(d.label("level_yes"))
    assert d.state.level == 2
    assert d.rows("level_changed") == [{"from_level": 1, "to_level": 2, "asked": True}]
    # the next session starts at level 2, and no second change is offered at once
    d.now += timedelta(days=1)
    _complete_first_steps(d)
    assert not _offered(d)
    assert d.state.level == 2


def test_at_most_one_level_change_per_session(loaded: Loaded) -> None:
    d = _client(loaded.engine, max_level=5)
    d.state.progress.completed_at_level = {"1": 9, "2": 9, "3": 9}
    _complete_first_steps(d)
    assert len(d.rows("level_offered")) == 1
    d.press(d.label("level_yes"))
    assert d.state.level == 2 and d.state.pending is None
    assert len([e for e in d.all_ledger() if e.kind == "level_changed"]) == 1


def test_never_beyond_max_level(loaded: Loaded) -> None:
    d = _client(loaded.engine, level=2, max_level=2)
    d.state.progress.completed_at_level = {"2": 9}
    _complete_first_steps(d)
    assert not _offered(d)
    assert d.state.level == 2


def test_no_level_offer_under_a_crisis_hold(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.state.progress.completed_at_level = {"1": 9}
    d.state.crisis_hold_since = T0 - timedelta(days=1)
    d.state.contract.advance.max_after_distress = 10
    d.now = T0
    # a check-in of this later session clears the hold; the offer then may come
    _complete_first_steps(d)
    assert "crisis_hold_cleared" in [e.kind for e in d.all_ledger()]
    held = _client(loaded.engine)
    held.state.progress.completed_at_level = {"1": 9}
    held.pick("first-steps")
    held.at("prompt-1")
    held.text(CRISIS)
    held.press(held.label("safe"))
    held.command("resume")  # same day, same hold: restarts one level lower, still held
    held.walk_to_end()
    assert held.state.pending != LevelQuestion() and "level_offered" not in [
        e.kind for e in held.all_ledger()]


# -- smaller step ----------------------------------------------------------------------------------


def test_smaller_takes_effect_at_once(loaded: Loaded) -> None:
    script = loaded.scripts["first-steps"]
    texts = loaded.renderer
    d = _client(loaded.engine, level=2)
    d.pick("first-steps")
    d.at("prompt-1", "prompt")
    first = d.state.session.frame.prompt if d.state.session else None
    assert first is not None and script.prompts[first].level == 2
    assert d.texts()[-1] == str(texts.text(script.prompts[first].text, {})).strip()

    d.command("smaller")  # 1: the gentler wording of the same prompt
    smaller = script.prompts[first].smaller
    assert smaller is not None
    assert d.texts() == [d.render("prompt.smaller", text=texts.text(smaller, {}))]
    d.press("sm")  # 2: a lower-level prompt
    frame = d.state.session.frame if d.state.session else None
    assert frame is not None and frame.prompt is not None
    lower = script.prompts[frame.prompt]
    assert lower.level == 1
    assert d.texts() == [str(texts.text(lower.text, {})).strip()]
    d.command("smaller")  # 3: its gentler wording
    assert lower.smaller is not None
    assert d.texts() == [d.render("prompt.smaller", text=texts.text(lower.smaller, {}))]
    d.command("smaller")  # 4: nothing smaller is left
    assert d.texts()[0] == d.render("pacing.smallest")
    assert d.has_button("sh") and d.has_button("sk")
    assert [e["choice"] for e in d.rows("pacing")] == ["smaller"] * 3
    assert d.state.progress.smaller_steps == 3
    d.press("sh")
    assert d.rows("prompt")[-1] == {"step": "prompt-1", "prompt": lower.id, "level": 1,
                                        "smaller": True, "response": "shared"}


def test_smaller_in_a_roleplay_turn(loaded: Loaded) -> None:
    d = _client(loaded.engine, level=3)
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    play = loaded.scripts["telling-a-friend"].steps["scene"].roleplay
    assert play is not None and play.turns[0].smaller is not None
    d.press("sm")
    assert play.turns[0].smaller in d.texts()[-1]
    d.press("sm")  # then the modelled example, framed as "someone might say"
    assert play.turns[0].example is not None
    example = loaded.renderer.text(play.turns[0].example, {})
    assert d.texts()[0] == d.render("roleplay.example", example=example)


# -- de-escalation ---------------------------------------------------------------------------------


def _calm_pages(d: Driver) -> int:
    pages = 0
    while d.part == "calm":
        d.press("go")
        pages += 1
    return pages


def test_high_distress_routes_to_calming_and_closes_after_two_rounds(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("8")
    assert d.texts()[0] == d.render("checkin.high", distress=8)
    assert d.part == "calm" and d.state.session is not None
    assert d.state.session.frame.calm_exercise == "paced-breathing"
    assert d.rows("deescalation")[-1]["round"] == 1
    assert _calm_pages(d) == len(loaded.scripts["first-steps"].exercises["paced-breathing"].pages)
    assert d.part == "recheck" and d.texts() == [d.render("checkin.question")]
    d.text("8")
    assert d.state.session is not None
    assert d.state.session.frame.calm_exercise == "grounding-54321"
    _calm_pages(d)
    d.text("9")
    assert d.state.session is None
    assert d.said("checkin.still_high", sustained=True)
    assert d.rows("deescalation_closed") == [{"step": "checkin-before", "rounds": 2}]
    ended = d.rows("session_ended")[-1]
    assert ended["reason"] == "distress" and ended["completed"] is False
    assert "prompt" not in [e.kind for e in d.all_ledger()]  # never onward to a prompt


def test_low_rerating_goes_on(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("7")  # the contract's threshold (7) counts as high
    assert d.part == "calm"
    _calm_pages(d)
    d.text("3")
    assert d.said("checkin.thanks") and d.step == "prompt-1"
    assert not d.state.silence_armed


def test_contract_threshold_lower_than_default(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.state.contract.distress_threshold = 4
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("4")
    assert d.part == "calm"


def test_under_arousal_cue_routes_to_calming_even_at_low_distress(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("noticing-the-body")
    d.at("checkin-before", "rating")
    d.text("1")
    d.text("1")
    assert d.part == "cues"
    d.press("knumb")
    assert d.messages[0].replace_keyboard
    d.press("kd")
    assert d.texts()[0] == d.render("checkin.body_info", cues=[d.label("cue_numb")], under=True)
    assert d.part == "calm" and d.state.silence_armed
    over = _client(loaded.engine)
    over.pick("noticing-the-body")
    over.at("checkin-before", "cues")
    over.press("ktight_chest")
    over.press("kd")
    assert over.part != "calm" and over.said("checkin.thanks")


def test_high_distress_during_a_roleplay_steps_out_first(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("telling-a-friend")
    d.at("scene", "rating")
    d.text("9")
    assert d.texts()[0] == d.render("roleplay.step_out", character="Robin")
    assert d.part == "calm"


# -- silence ---------------------------------------------------------------------------------------


def test_high_distress_then_silence_gets_exactly_one_followup(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")
    delay = d.engine.resources.policy.silence_followup
    timers = [t for t in d.last.timers_set if t.kind == "silence"]
    assert [t.due for t in timers] == [d.now + delay]
    d.advance(seconds=delay.total_seconds())
    d.fire("silence", timers[0].due)
    assert d.texts() == [d.render("silence.followup")]
    assert d.state.session is None
    assert d.rows("session_ended")[-1]["reason"] == "silence"
    for _ in range(3):
        d.advance(minutes=30)
        d.fire("silence")
        assert d.messages == []


def test_silence_during_calming_still_gets_the_followup(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")
    d.advance(minutes=2)
    d.press("go")  # one calming page, then silence
    assert any(t.kind == "silence" and t.due == d.now + timedelta(minutes=10)
               for t in d.last.timers_set)
    d.advance(minutes=10)
    d.fire("silence")
    assert d.texts() == [d.render("silence.followup")]


def test_no_followup_once_distress_is_low_again(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")
    _calm_pages(d)
    d.text("2")
    assert "silence" in d.last.timers_cancel and not d.state.silence_armed
    d.advance(minutes=30)
    d.fire("silence")
    assert d.messages == []


def test_no_followup_after_a_low_rating(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    assert not any(t.kind == "silence" for t in d.last.timers_set)
    d.advance(minutes=30)
    d.fire("silence")
    assert d.messages == []


# -- caps ------------------------------------------------------------------------------------------


def test_session_cap_closes_with_a_last_rating(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("prompt-1")
    d.advance(minutes=d.state.contract.session_minutes + 1)
    d.press("sh")
    assert d.kinds() == ["session_cap"]
    assert d.texts() == [d.render("checkin.question")] and d.part == "rating"
    d.text("3")  # no "expected", no cues: just the last rating
    assert d.texts() == [d.render("checkin.thanks"), d.render("session.cap")]
    assert d.state.session is None
    assert d.rows("session_ended")[-1]["reason"] == "session-cap"


def test_session_cap_in_a_roleplay_steps_out_of_the_role_first(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    d.advance(minutes=20)
    d.text("Not much, honestly.")
    assert d.texts() == [d.render("roleplay.step_out", character="Robin"),
                         d.render("checkin.question")]
    d.text("9")  # still high at the end: calming, never an abrupt cut
    assert d.part == "calm"
    assert d.texts().count(d.render("roleplay.step_out", character="Robin")) == 0
    _calm_pages(d)
    d.text("2")
    assert d.said("session.cap") and d.state.session is None


def test_session_cap_waits_for_a_calming_exercise(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")
    d.advance(minutes=30)
    d.press("go")
    assert d.part == "calm" and "session_cap" not in d.kinds()


@pytest.mark.parametrize("where", ["say", "checkin-before", "after-prompt-1"])
def test_session_cap_at_any_step(loaded: Loaded, where: str) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    if where != "say":
        d.at(where)
    d.advance(minutes=16)
    d.command("skip") if where == "say" else d.text("hello")
    assert d.kinds() == ["session_cap"]
    d.text("1")
    assert d.state.session is None and d.said("session.cap")


def test_a_session_started_afresh_after_a_crisis_is_not_counted_twice(loaded: Loaded) -> None:
    d = _client(loaded.engine, level=2)
    d.state.contract.sessions_per_day = 1
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text(CRISIS)
    d.press(d.label("safe"))
    d.command("resume")  # the same session, started afresh one level lower
    assert not d.said("session.day_cap") and d.said("crisis.welcome_back")
    assert d.state.session is not None and sum(d.state.session_days.values()) == 1


def test_sessions_per_day_cap(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.state.contract.sessions_per_day = 2
    for _ in range(2):
        d.pick("first-steps")
        d.walk_to_end()
    d.pick("first-steps")
    assert d.texts() == [d.render("session.day_cap")] and d.state.session is None
    d.now = datetime(2026, 11, 26, 0, 1, tzinfo=UTC)  # a new day
    d.pick("first-steps")
    assert d.state.session is not None


def test_day_cap_counts_days_in_the_clients_time_zone(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.state.contract.sessions_per_day = 1
    d.state.settings.timezone = "America/New_York"
    d.now = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 18:00 in New York
    d.pick("first-steps")
    d.walk_to_end()
    d.now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # a new day in UTC, not in New York
    d.pick("first-steps")
    assert d.said("session.day_cap")
    d.now = datetime(2026, 11, 26, 5, 1, tzinfo=UTC)  # 00:01 in New York
    d.pick("first-steps")
    assert d.state.session is not None


# -- coming back -----------------------------------------------------------------------------------


def test_after_two_weeks_away_start_one_level_lower(loaded: Loaded) -> None:
    d = _client(loaded.engine, level=2)
    d.advance(days=15)
    d.pick("first-steps")
    assert d.texts()[0] == d.render("welcome_back")
    assert d.state.session is not None and d.state.session.level == 1
    assert d.state.level == 2  # the client's level itself is not taken away
    d.at("prompt-1")
    assert d.rows("session_started")[-1]["level"] == 1
    soon = _client(loaded.engine, level=2)
    soon.advance(days=13)
    soon.pick("first-steps")
    assert not soon.said("welcome_back")
    assert soon.state.session is not None and soon.state.session.level == 2


def test_a_long_pause_restarts_one_level_lower(loaded: Loaded) -> None:
    d = _client(loaded.engine, level=2)
    d.pick("first-steps")
    d.at("prompt-1")
    d.command("pause")
    d.advance(days=2)
    d.command("resume")
    assert "session_started" in d.kinds() and d.state.session is not None
    assert d.state.session.level == 1 and d.step == "welcome"
    short = _client(loaded.engine, level=2)
    short.pick("first-steps")
    short.at("prompt-1")
    short.command("pause")
    short.advance(hours=3)
    short.command("resume")
    assert short.texts()[0] == short.render("pause.resumed") and short.step == "prompt-1"


def test_after_a_crisis_one_level_lower_and_held_until_a_later_checkin(loaded: Loaded) -> None:
    script = loaded.scripts["first-steps"]
    d = _client(loaded.engine, level=3)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text(CRISIS)
    d.press(d.label("safe"))
    assert d.kinds() == ["crisis_safe"]
    # the same session, even after a check-in, keeps level 1
    d.command("resume")
    assert d.said("crisis.welcome_back") and not d.said("welcome_back")
    d.at("prompt-1")
    assert d.state.crisis_hold_since is not None
    frame = d.state.session.frame if d.state.session else None
    assert frame is not None and frame.prompt is not None
    assert script.prompts[frame.prompt].level == 1
    d.command("stop")
    d.start()
    # a session an hour later: its check-in does not lift the hold, which is time-based
    d.advance(hours=1)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("3")
    assert "crisis_hold_cleared" not in d.kinds() and d.state.crisis_hold_since is not None
    d.command("stop")
    d.start()
    # a session that starts the hold's hours after the signal: a fresh check-in lifts it;
    # content returns to the session level
    d.advance(hours=24)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("2")
    d.text("3")
    assert "crisis_hold_cleared" in d.kinds() and d.state.crisis_hold_since is None
    frame = d.state.session.frame if d.state.session else None
    assert frame is not None and frame.prompt is not None
    assert script.prompts[frame.prompt].level == 2  # one level lower than 3, no longer held


def test_crisis_hold_that_needs_the_therapist_is_not_lifted_by_a_checkin(
        loaded: Loaded) -> None:
    engine = engine_with(loaded.engine, crisis_hold_needs_therapist=True)
    d = _client(engine, level=3)
    d.state.crisis_hold_since = T0 - timedelta(days=3)
    d.pick("first-steps")
    d.at("prompt-1")
    assert d.state.crisis_hold_since is not None
    frame = d.state.session.frame if d.state.session else None
    assert frame is not None and frame.prompt is not None
    assert loaded.scripts["first-steps"].prompts[frame.prompt].level == 1


# -- every pacing choice is a ledger row -----------------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), [("s0", "not_today"), ("s1", "too_much"),
                                              ("s2", "private"), ("s3", None)])
def test_skip_with_reason_is_a_ledger_row(loaded: Loaded, code: str, reason: str | None) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("prompt-1")
    prompt = d.state.session.frame.prompt if d.state.session else None
    d.press("sk")
    assert d.texts() == [d.render("prompt.skip_reason")]
    d.press(code)
    assert d.rows("pacing")[-1] == {"choice": "skip", "step": "prompt-1", "prompt": prompt,
                                        "reason": reason}
    assert d.texts()[0] == d.render("prompt.skip_ack", reason=reason)
    assert d.step == "after-prompt-1"


def test_pause_resume_and_pace_are_ledger_rows(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.at("prompt-1")
    d.press("pa")
    assert d.kinds() == ["pacing"] and d.ledger()[0].data == {"choice": "pause",
                                                             "step": "prompt-1"}
    d.text("hello?")
    assert d.texts() == [d.render("pause.done")]
    d.press("re")
    assert d.ledger()[0].data == {"choice": "resume", "step": "prompt-1"}
    d.command("settings")
    d.press("gp")
    assert d.ledger()[0].data == {"choice": "change-pace", "pace": "steady"}
    d.press("gp")
    assert d.ledger()[0].data == {"choice": "change-pace", "pace": "gentle"}


def test_skip_at_a_roleplay_turn_and_connection(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    d.command("skip")
    assert d.rows("pacing")[-1] == {"choice": "skip", "step": "scene", "turn": 0}
    c = _client(loaded.engine)
    c.pick("story-of-connection")
    c.at("note-it")
    c.press("sk")
    assert c.rows("pacing")[-1] == {"choice": "skip", "step": "note-it"}
    assert c.state.progress.connections == 0


# -- reminders -------------------------------------------------------------------------------------


def _reminder_due(d: Driver) -> datetime:
    due = [t.due for t in d.last.timers_set if t.kind == "reminder"]
    assert len(due) == 1, d.last.timers_set
    return due[0]


def test_reminders_at_the_chosen_local_time(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="America/New_York", at="19:30")
    # 19:30 in New York on 25 Nov 2026 (EST, UTC-5) is 00:30 UTC on the 26th
    assert _reminder_due(d) == datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
    tokyo = Driver.new(loaded.engine)
    tokyo.consent(reminders=True, timezone="Asia/Tokyo", at="19:30")
    assert _reminder_due(tokyo) == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def test_reminders_never_in_quiet_hours(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="Europe/London")
    d.command("settings")
    d.press(d.label("change_reminders"))
    d.text("22:30")
    # A time in quiet hours is refused with the reason, and the question stays open.
    assert d.texts() == [d.render("settings.quiet_hours", start="21:00", end="08:00")]
    assert not [t for t in d.last.timers_set if t.kind == "reminder"]
    assert d.state.pending == ReminderTimeQuestion()


def test_reminder_is_sent_then_the_next_one_is_scheduled(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="Europe/London", at="19:00")
    due = _reminder_due(d)
    assert due == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    d.now = due + timedelta(seconds=5)
    d.fire("reminder", due)
    assert d.texts() == [d.render("reminder")] and d.kinds() == ["reminder_sent"]
    assert _reminder_due(d) == due + timedelta(days=1)


def test_no_reminder_during_a_session_or_paused(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="Europe/London", at="19:00")
    due = _reminder_due(d)
    d.pick("first-steps")
    d.at("prompt-1")
    d.command("pause")
    d.now = due
    d.fire("reminder", due)
    assert d.messages == [] and "reminder_sent" not in d.kinds()
    assert _reminder_due(d) == due + timedelta(days=1)


def test_a_late_reminder_is_skipped_not_sent_in_a_burst(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="Europe/London", at="19:00")
    due = _reminder_due(d)
    d.now = due + timedelta(days=3, hours=2)  # the bot was down for days
    d.fire("reminder", due)
    assert d.messages == []
    assert d.kinds() == ["reminder_skipped"]
    assert _reminder_due(d) == datetime(2026, 11, 29, 19, 0, tzinfo=UTC)  # the next one due


def test_reminders_stop_after_two_unanswered_and_resume_on_a_message(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True, timezone="Europe/London", at="19:00")
    due = _reminder_due(d)
    d.now = due
    d.fire("reminder", due)
    assert d.said("reminder")
    due = _reminder_due(d)
    d.now = due
    d.fire("reminder", due)
    assert d.said("reminder") and "reminders_suspended" in d.kinds()
    assert "reminder" in d.last.timers_cancel and not d.last.timers_set
    d.now = due + timedelta(days=1)
    d.fire("reminder", due + timedelta(days=1))  # a stray timer sends nothing more
    assert d.messages == []
    d.advance(hours=1)
    d.text("hi")
    assert d.state.reminders_unanswered == 0
    assert _reminder_due(d) > d.now


def test_reminder_opt_in_is_needed(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.state.settings.timezone = "Europe/London"
    d.now = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    d.fire("reminder", d.now)
    assert d.messages == []


def test_new_state_is_fresh(loaded: Loaded) -> None:
    state = loaded.engine.new_state("x")
    assert isinstance(state, ClientState)
    assert state.consents == {} and not state.has(Opt.CORE, 1)


# -- settings that shape a session: start level, check-in cadence, pace ------------------------


def test_a_new_client_starts_at_the_configured_level_never_above_the_max(
        loaded: Loaded) -> None:
    assert loaded.engine.new_state("a").level == 1
    configured = build(load_config(None, {}).model_copy(update={
        "contract_defaults": ContractDefaults(max_level=3, start_level=2)}))
    assert configured.engine.new_state("b").level == 2
    capped = engine_with(loaded.engine, start_level=3,
                         contract=Contract(max_level=2))
    assert capped.new_state("c").level == 2


def test_an_invite_leaves_no_client_above_its_max_level(loaded: Loaded) -> None:
    d = Driver(engine_with(loaded.engine, start_level=3), loaded.engine.new_state("x"))
    d.state.level = 3
    d.send(Redeemed(script_id="first-steps", max_level=1))
    assert (d.state.level, d.state.contract.max_level) == (1, 1)


_LONG_SCENE = """\
script: {id: long-scene, title: Long scene, version: 1, author: Tests, level: 1,
         summary: Five lines., calm: [paced-breathing]}
includes: [library.yaml]
steps:
  - id: check
    checkin: {moment: during}
  - id: talk
    roleplay:
      character: Robin
      practises: disclosing
      scene: Coffee with Robin.
      {every}turns:
        - {says: One, example: One.}
        - {says: Two, example: Two.}
        - {says: Three, example: Three.}
        - {says: Four, example: Four.}
        - {says: Five, example: Five.}
  - id: done
    end: Done.
"""


def _turns_between_checkins(engine: Engine, contract_every: int) -> list[int]:
    d = _client(engine)
    d.state.contract.checkin_every_turns = contract_every
    d.pick("long-scene")
    d.at("check", "rating")
    d.text("1")
    d.press("st")
    counts, turns = [], 0
    while d.step == "talk":
        if d.part == "turn":
            d.press("sd")
            turns += 1
        else:
            counts.append(turns)
            turns = 0
            d.text("1")
    return counts


@pytest.mark.parametrize(("script_every", "contract_every", "expected"), [
    (None, 2, [2, 2, 1]),  # the contract's cadence (the scene's closing check-in last)
    (None, 3, [3, 2]),
    (None, 1, [1, 1, 1, 1, 1]),
    ("checkin_every: 1", 3, [1, 1, 1, 1, 1]),  # a scene may ask more often
    ("checkin_every: 4", 2, [2, 2, 1]),  # never less often than the contract
])
def test_the_contract_sets_how_often_a_roleplay_checks_in(
        tmp_path: Path, script_every: str | None, contract_every: int,
        expected: list[int]) -> None:
    every = f"{script_every}\n      " if script_every else ""
    path = script_beside_library(tmp_path, "long.yaml", _LONG_SCENE.replace("{every}", every))
    assert _turns_between_checkins(engine_for_files([path]), contract_every) == expected


def test_at_a_gentle_pace_a_scene_waits_for_start_at_a_steady_pace_it_begins(
        loaded: Loaded) -> None:
    d = _client(loaded.engine)
    assert d.state.pace is Pace.GENTLE
    d.pick("telling-a-friend")
    d.at("checkin-before", "expected")
    d.text("3")
    assert d.part == "ready" and d.codes() == ["st", "pa"] and d.said(
        "roleplay.frame", character="Robin", scene=d.messages[-1].text.split("\n")[1])
    d.text("hello")  # words are not a start
    assert d.part == "ready" and d.said("unexpected.text_at_buttons")
    d.press("st")
    assert d.part == "turn" and d.has_button("sd")

    steady = _client(loaded.engine)
    steady.command("settings")
    steady.press("gp")  # change pace: steady
    assert steady.state.pace is Pace.STEADY
    steady.pick("telling-a-friend")
    steady.at("checkin-before", "expected")
    steady.text("3")
    assert steady.part == "turn" and steady.has_button("sd")


_PROMPTS = """\
script: {id: many, title: Many prompts, version: 1, author: Tests, level: 1,
         summary: Four prompts in a row., calm: [paced-breathing]}
includes: [library.yaml]
prompts:
  - {id: a, level: 1, topic: t, text: Share A., smaller: A small.}
  - {id: b, level: 1, topic: t, text: Share B., smaller: B small.}
  - {id: c, level: 1, topic: t, text: Share C., smaller: C small.}
  - {id: d, level: 1, topic: t, text: Share D., smaller: D small.}
  - {id: e, level: 1, topic: t, text: Share E., smaller: E small.}
steps:
  - id: check
    checkin: {moment: during}
  - {id: p1, prompt: {topic: t}}
  - {id: p2, prompt: {topic: t}}
  - {id: p3, prompt: {topic: t}}
  - {id: p4, prompt: {topic: t}}
  - id: after
    checkin: {moment: after}
  - id: done
    end: Done.
"""


def _many(tmp_path: Path) -> Driver:
    path = script_beside_library(tmp_path, "many.yaml", _PROMPTS)
    d = _client(engine_for_files([path]))
    d.pick("many")
    d.at("check", "rating")
    d.text("1")
    return d


def test_at_a_gentle_pace_two_prompts_in_a_row_ask_whether_that_is_enough(
        tmp_path: Path) -> None:
    d = _many(tmp_path)
    d.press("sh")
    d.text("something of mine")
    assert (d.step, d.part) == ("p3", "enough") and d.codes() == ["mo", "en"]
    assert d.said("pacing.enough", shared=2)
    d.press("en")
    assert d.rows("pacing")[-1] == {"choice": "enough-for-today", "step": "p3",
                                        "pace": "gentle", "prompts": 2}
    assert d.said("pacing.enough_ack")
    assert (d.step, d.part) == ("after", "rating")  # p3 and p4 are passed over
    d.walk_to_end()
    assert [e["prompt"] for e in d.rows("prompt")] == ["a", "b"]
    assert d.rows("session_ended")[-1]["completed"] is True


def test_one_more_goes_on_and_asks_again_after_as_many_prompts(tmp_path: Path) -> None:
    d = _many(tmp_path)
    d.press("sh")
    d.press("sh")
    d.press("mo")
    assert (d.step, d.part) == ("p3", "prompt")
    assert d.rows("pacing")[-1]["choice"] == "one-more"
    d.press("sh")
    assert (d.step, d.part) == ("p4", "prompt")  # one prompt since the question
    d.press("sh")
    assert (d.step, d.part) == ("after", "rating")


def test_skip_instead_of_one_more_is_enough_for_today(tmp_path: Path) -> None:
    d = _many(tmp_path)
    d.press("sh")
    d.press("sh")
    d.command("skip")
    assert d.said("pacing.enough_ack") and (d.step, d.part) == ("after", "rating")


def test_at_a_steady_pace_four_prompts_come_before_the_question(tmp_path: Path) -> None:
    d = _many(tmp_path)
    d.state.settings.pace = Pace.STEADY
    for step in ("p2", "p3", "p4"):
        d.press("sh")
        assert (d.step, d.part) == (step, "prompt")
    d.press("sh")
    assert (d.step, d.part) == ("after", "rating")


def test_a_question_of_the_script_between_prompts_counts_as_asking(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    d.walk_to_end(choice=0)  # "one more" at each of the script's own questions
    assert len(d.rows("prompt")) == 3
    assert not [e for e in d.rows("pacing") if "enough" in str(e["choice"])]


def test_pause_in_a_scene_steps_out_of_the_role_and_resume_frames_it_again(
        loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    line = d.texts()[-1]
    d.command("pause")
    assert d.texts() == [d.render("pause.done", character="Robin")]
    assert "stepping out of the role" in d.texts()[0]
    d.text("hello?")  # reminded it is paused: still out of the role
    assert d.texts() == [d.render("pause.done", character="Robin")]
    d.command("resume")
    assert d.texts()[1].startswith("<b>Back to the practice scene</b>: I'm a bot playing Robin")
    assert d.texts() == [d.render("pause.resumed"), d.texts()[1], line]
    assert d.part == "turn"


def test_pause_outside_a_scene_says_nothing_of_a_role(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("telling-a-friend")
    play = loaded.engine.resources.scripts["telling-a-friend"].steps["scene"].roleplay
    assert play is not None
    d.walk_until(lambda d: d.part == "rating" and d.state.session is not None
                 and d.state.session.frame.turn >= len(play.turns))
    assert d.said("roleplay.step_out", character="Robin")  # the scene's closing check-in
    d.command("pause")
    assert d.texts() == [d.render("pause.done")]
    assert "role" not in d.texts()[0]
    d.command("resume")
    assert not any("Back to the practice scene" in t for t in d.texts())


def _after_rating_with(d: Driver, answer_prompt: str) -> None:
    """Walk first-steps to the closing check-in, answering every prompt with a press."""
    for _ in range(200):
        if d.step == "checkin-after" and d.part == "rating":
            return
        if d.part == "prompt":
            d.press(answer_prompt)
            if d.part == "skip_reason":
                d.press("s3")
        else:
            d.answer_current()
    raise AssertionError("never reached the closing check-in")


def test_no_relief_question_after_every_prompt_was_skipped(loaded: Loaded) -> None:
    d = _client(loaded.engine)
    d.pick("first-steps")
    _after_rating_with(d, "sk")
    d.text("2")  # distress
    d.text("3")  # how hard it was
    assert not d.said("checkin.relief") and d.part != "relief"
    shared = _client(loaded.engine)
    shared.pick("first-steps")
    _after_rating_with(shared, "sh")
    shared.text("2")
    shared.text("3")
    assert shared.said("checkin.relief") and shared.part == "relief"
