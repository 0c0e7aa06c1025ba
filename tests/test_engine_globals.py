"""Global behaviour in every state: stop, crisis language and the commands a client may use.

Each test runs one input against a client in one situation: at each step kind and part of a
step (say, ask, check-in rating/expected/actual/relief/cues, calming page, re-rating, prompt,
skip reason, role-play turn and check-in, exercise page, journaling page, connection), and
outside the script (consent, menu, level offer, settings, paused, crisis question, halted).
Situations are reached by driving the real engine from the start over the shipped scripts.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import Loaded
from bot.engine import (
    COMMANDS,
    Blocked,
    ClientState,
    ConsentQuestion,
    CrisisQuestion,
    DeleteQuestion,
    Effect,
    LevelQuestion,
    MenuQuestion,
    Opt,
    SafetyPlan,
    SettingsQuestion,
    is_stop_word,
)
from tests.support.engine_driver import (
    AT_STEP,
    CRISIS,
    SITUATIONS,
    Driver,
    assert_crisis,
    assert_halted,
    build_situations,
    in_scene,
    running,
)


@pytest.fixture(scope="module")
def situations(loaded: Loaded) -> dict[str, Driver]:
    """Every situation, built once; tests work on forks."""
    return build_situations(loaded.engine)


@pytest.fixture(params=SITUATIONS)
def situation(request: pytest.FixtureRequest, situations: dict[str, Driver]) -> Driver:
    """A fresh copy of a client in one situation."""
    return situations[str(request.param)].fork()


def test_situations_are_where_they_say(situations: dict[str, Driver]) -> None:
    assert set(situations) == set(SITUATIONS)
    for name, (step, sub) in AT_STEP.items():
        d = situations[name]
        assert (d.step, d.part, d.state.pending) == (step, sub, None), name
        assert d.state.session is not None and not d.state.session.paused, name
    assert situations["consent pending"].state.pending == ConsentQuestion()
    assert situations["menu pending"].state.pending == MenuQuestion()
    assert situations["level offer pending"].state.pending == LevelQuestion()
    assert situations["settings pending"].state.pending == SettingsQuestion()
    assert situations["crisis question"].state.pending == CrisisQuestion()
    assert situations["halted"].state.halted
    paused = situations["paused"].state.session
    assert paused is not None and paused.paused
    assert situations["calm exercise page"].state.silence_armed
    assert situations["journaling write page"].codes() == ["sk"]


# -- helpers -----------------------------------------------------------------------------------


def _same_state(before: ClientState, after: ClientState) -> None:
    """Equal apart from the time of the last message and the keyboard counters."""
    skip = {"last_active", "keyboard", "offered"}
    assert after.model_dump(exclude=skip) == before.model_dump(exclude=skip)


# -- stop ----------------------------------------------------------------------------------------

STOP_WORDS = ("STOP", "stop", "Stop", "End", "end", "cancel", "CANCEL", "UNSUBSCRIBE",
              "unsubscribe", "quit", "QuIt", "opt out", "OPT OUT", "  Opt   Out  ", "optout",
              "Stop.", "\tstop\n", "Opt-out")


def test_stop_command_halts_at_once(situation: Driver) -> None:
    had_session = situation.state.session is not None
    situation.command("stop")
    assert_halted(situation, had_session, "command")


@pytest.mark.parametrize("word", STOP_WORDS)
@pytest.mark.parametrize("name", ["say", "prompt", "checkin rating", "ask with free text",
                                  "connection", "roleplay turn", "journaling write page",
                                  "settings pending", "consent pending", "halted"])
def test_stop_words_halt_at_once(situations: dict[str, Driver], name: str, word: str) -> None:
    d = situations[name].fork()
    had_session = d.state.session is not None
    d.text(word)
    assert_halted(d, had_session, "word")


@pytest.mark.parametrize("word", STOP_WORDS[::3])
def test_stop_words_halt_everywhere(situation: Driver, word: str) -> None:
    had_session = situation.state.session is not None
    situation.text(word)
    assert_halted(situation, had_session, "word")


@pytest.mark.parametrize("text", ["stop it", "I want to end this", "don't stop", "cancelled",
                                  "stopp", "quit smoking"])
def test_longer_messages_with_stop_words_do_not_halt(
        situations: dict[str, Driver], text: str) -> None:
    d = situations["prompt"].fork()
    d.text(text)
    assert not d.state.halted
    assert "stopped" not in d.kinds()


def test_blocking_the_bot_halts_silently(situations: dict[str, Driver]) -> None:
    d = situations["calm exercise page"].fork()
    d.send(Blocked())
    assert d.state.halted and d.state.session is None
    assert d.messages == []
    assert "*" in d.last.timers_cancel and Effect.CANCEL_OUTBOX in d.last.effects
    assert [e.data for e in d.ledger() if e.kind == "stopped"] == [{"via": "blocked"}]


@pytest.mark.parametrize("first", ["block", "stop"])
def test_a_block_on_a_halted_client_is_one_halt(situations: dict[str, Driver], first: str) -> None:
    """Telegram reports a block twice (a 403 on a send and a chat-member update)."""
    d = situations["prompt"].fork()
    if first == "stop":
        d.command("stop")
    else:
        d.send(Blocked())
    d.send(Blocked())
    assert d.messages == [] and d.ledger() == []
    assert len([e for e in d.all_ledger() if e.kind == "stopped"]) == 1
    d.start()  # /start lifts the halt; a later block is a new one
    d.send(Blocked())
    assert [e.data for e in d.ledger() if e.kind == "stopped"] == [{"via": "blocked"}]


# -- after a halt --------------------------------------------------------------------------------

TIMER_KINDS = ("reminder", "silence", "followup", "anything")


def test_after_a_halt_nothing_is_sent_unprompted(situation: Driver) -> None:
    situation.command("stop")
    halted = situation.state.model_copy(deep=True)
    for delay in (timedelta(0), timedelta(minutes=11), timedelta(days=1), timedelta(days=30)):
        for kind in TIMER_KINDS:
            situation.fire(kind, due=halted.last_active + delay if halted.last_active else None)
            assert situation.messages == [], (kind, situation.plain())
            assert not situation.last.timers_set
            assert situation.state == halted
        situation.advance(hours=13)


def test_after_a_halt_armed_timers_stay_silent(loaded: Loaded) -> None:
    """Reminders on and the silence follow-up armed: the halt silences both."""
    d = Driver.new(loaded.engine)
    d.consent(reminders=True)
    assert any(t.kind == "reminder" for t in d.last.timers_set)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("9")
    assert d.state.silence_armed and any(t.kind == "silence" for t in d.last.timers_set)
    d.command("stop")
    for kind in ("silence", "reminder"):
        d.advance(hours=11)
        d.fire(kind)
        assert d.messages == [] and not d.last.timers_set and not d.last.ledger


@pytest.mark.parametrize("name", ["pause", "resume", "smaller", "skip", "progress", "settings",
                                  "frobnicate"])
def test_after_a_halt_other_commands_only_say_it_is_stopped(
        situation: Driver, name: str) -> None:
    situation.command("stop")
    before = situation.state.model_copy(deep=True)
    situation.command(name)
    assert situation.texts() == [situation.render("stop.halted")]
    assert situation.state.halted
    _same_state(before, situation.state)


@pytest.mark.parametrize("act", ["text", "photo", "number"])
def test_after_a_halt_messages_get_one_reply(situations: dict[str, Driver], act: str) -> None:
    d = situations["halted"].fork()
    if act == "text":
        d.text("hello?")
    elif act == "number":
        d.text("3")
    else:
        d.non_text("sticker")
    assert d.texts() == [d.render("stop.halted")]
    assert d.state.halted and not d.last.timers_set


def test_after_a_halt_what_the_client_asks_for_is_answered(
        situations: dict[str, Driver]) -> None:
    d = situations["halted"].fork()
    d.command("help")
    assert d.texts() == [d.render("help")]
    d.command("privacy")
    assert d.said("privacy", retention_days=d.engine.resources.policy.retention_days,
        answers_days=d.engine.resources.policy.answers_days)
    d.command("mydata")
    assert Effect.EXPORT in d.last.effects
    d.command("sos")
    assert d.resources_text() in d.texts()
    d.press("sf")
    d.text(CRISIS)
    assert d.texts()[0] == d.resources_text(CRISIS)
    assert "crisis_language" in d.kinds()
    d.command("delete")
    assert d.said("delete.confirm")
    d.press("dy")
    assert Effect.ERASE in d.last.effects
    assert d.state.halted


def test_start_after_a_halt_comes_back(situations: dict[str, Driver]) -> None:
    d = situations["halted"].fork()
    d.start()
    assert not d.state.halted
    assert "restarted" in d.kinds()
    assert d.state.pending == MenuQuestion()


# -- crisis language -----------------------------------------------------------------------------

CRISIS_TEXTS = (
    CRISIS,
    "I want to kill myself",
    "Sometimes I think everyone would be BETTER OFF DEAD without me...",
    "thinking about suicide tbh",
    "10 — I just want to end it all",
)


def test_crisis_language_interrupts_everything(situation: Driver) -> None:
    had_session, was_running = situation.state.session is not None, running(situation)
    scene = in_scene(situation)
    situation.text(CRISIS)
    assert_crisis(situation, CRISIS, had_session=had_session, running=was_running, scene=scene)


@pytest.mark.parametrize("text", CRISIS_TEXTS)
@pytest.mark.parametrize("name", ["prompt", "checkin rating", "ask with free text",
                                  "roleplay turn", "connection", "journaling write page",
                                  "consent pending", "settings pending"])
def test_crisis_phrasings(situations: dict[str, Driver], name: str, text: str) -> None:
    d = situations[name].fork()
    had_session, was_running, scene = d.state.session is not None, running(d), in_scene(d)
    d.text(text)
    assert_crisis(d, text, had_session=had_session, running=was_running, scene=scene)


def test_crisis_with_a_safety_plan_shows_it_first(loaded: Loaded) -> None:
    engine = loaded.engine
    d = Driver.new(engine)
    d.state.safety_plan = SafetyPlan(  # as the service hands it in from the store
        warning_signs="not sleeping", internal_coping="walk the dog",
        people_to_ask="my sister Jo", professionals="Dr Lee, 555-0100",
        safe_environment="give the pills to Jo")
    d.consent()
    d.pick("first-steps")
    d.at("prompt-1")
    d.text(CRISIS)
    assert_crisis(d, CRISIS, had_session=True, running=True, plan=True)
    first = d.texts()[0]  # the plan comes right after the emergency number
    assert "walk the dog" in first and "Dr Lee" in first
    assert first.index("call 911") < first.index("not sleeping") < first.index("988")
    # another client of the same practice has no plan: none is shown
    other = Driver.new(engine, client_id="test:bo")
    other.start()
    other.text(CRISIS)
    assert_crisis(other, CRISIS, had_session=False, running=False)


def test_safe_keeps_the_session_paused_and_the_hold(situations: dict[str, Driver]) -> None:
    d = situations["crisis question"].fork()
    d.press(d.label("safe"))
    since = d.state.crisis_hold_since
    assert since is not None
    until = d.local_time(since + d.engine.resources.policy.crisis_hold)
    assert d.texts() == [d.render("crisis.safe", paused=True, has_plan=False),
                         d.render("crisis.hold", until=until, support_only=False)]
    assert d.kinds() == ["crisis_safe"]
    session = d.state.session
    assert session is not None and session.paused


def test_another_button_never_counts_as_an_answer_to_are_you_safe(
        situations: dict[str, Driver]) -> None:
    """/pause shows a Resume button; pressing it must not log "safe"."""
    d = situations["crisis question"].fork()
    d.command("pause")
    d.press(d.label("resume"))
    assert "crisis_safe" not in d.kinds() and "crisis_not_safe" not in d.kinds()
    assert not any(d.said("crisis.safe", paused=paused, has_plan=False)
                   for paused in (True, False))


def test_sos_outside_an_exercise_shows_the_same_without_a_hold(
        situations: dict[str, Driver]) -> None:
    d = situations["menu pending"].fork()
    d.command("sos")
    assert d.texts() == [d.resources_text(), d.render("crisis.are_you_safe")]
    assert d.kinds() == ["sos_viewed"]
    assert d.state.crisis_hold_since is None
    d.press(d.label("safe"))
    # nothing is paused, so nothing "stays paused"
    assert d.texts() == [d.render("crisis.safe", paused=False, has_plan=False)]
    assert "stays paused" not in d.texts()[0]


# -- commands answered in every state ------------------------------------------------------------


@pytest.mark.parametrize("name", ["sos", "help", "privacy", "mydata", "delete"])
def test_always_answered(situation: Driver, name: str) -> None:
    halted = situation.state.halted
    session = situation.state.session
    was_running, scene = running(situation), in_scene(situation)
    situation.command(name)
    d = situation
    if name == "sos":
        # mid-exercise, /sos pauses it (stepping out of a scene) and holds practice at level 1
        assert d.texts() == [d.resources_text(running=was_running, scene=scene),
                             d.render("crisis.are_you_safe")]
        assert d.kinds() == (["sos_viewed", "crisis_hold", "pacing"] if was_running
                             else ["sos_viewed"])
        assert d.state.pending == CrisisQuestion()
        if was_running:
            assert d.state.crisis_hold_since == d.now
        if d.state.session is not None:
            assert d.state.session.paused is (was_running or d.state.session.paused)
    elif name == "help":
        assert d.texts() == [d.render("help")]
    elif name == "privacy":
        assert d.texts() == [d.render("privacy",
                                      retention_days=d.engine.resources.policy.retention_days,
        answers_days=d.engine.resources.policy.answers_days)]
    elif name == "mydata":
        assert d.texts() == [d.render("mydata.intro")]
        assert d.last.effects == [Effect.EXPORT] and d.kinds() == ["export_requested"]
    else:
        assert d.texts() == [d.render("delete.confirm")]
        assert d.codes() == ["dy", "dn"] and d.state.pending == DeleteQuestion()
        assert Effect.ERASE not in d.last.effects
    assert d.state.halted == halted
    assert (d.state.session is None) == (session is None)
    assert "stopped" not in d.kinds()


def test_delete_cancelled_goes_back_to_the_step(situations: dict[str, Driver]) -> None:
    d = situations["prompt"].fork()
    d.command("delete")
    d.press(d.label("delete_cancel"))
    assert d.texts()[0] == d.render("delete.cancelled")
    assert Effect.ERASE not in d.last.effects
    assert d.has_button("sh")  # the prompt again, with live buttons


# -- pacing commands, progress, settings, unknown commands ---------------------------------------


def _category(d: Driver) -> str:
    if d.state.halted:
        return "halted"
    if d.state.session is None:
        return "idle"
    return "paused" if d.state.session.paused else "running"


def test_pause(situation: Driver) -> None:
    kind = _category(situation)
    situation.command("pause")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
    elif kind == "idle":
        assert d.texts() == [d.render("pause.nothing")]
    else:
        assert d.texts() == [d.paused_text()] and d.codes() == ["re"]
        assert d.state.session is not None and d.state.session.paused
        if kind == "running":
            assert [e.data["choice"] for e in d.ledger() if e.kind == "pacing"] == ["pause"]


def test_resume(situation: Driver) -> None:
    kind = _category(situation)
    before = situation.state.model_copy(deep=True)
    situation.command("resume")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
    elif kind == "idle":
        assert d.texts() == [d.render("pause.nothing")]
    elif kind == "paused":
        assert d.state.session is not None and not d.state.session.paused
        assert d.messages and d.messages[-1].buttons
        resumed = [e for e in d.ledger() if e.kind == "pacing" and e.data["choice"] == "resume"]
        assert resumed or "session_started" in d.kinds()  # a crisis restarts a level lower
    else:
        assert d.messages and d.messages[-1].buttons  # the current step again
        assert d.state.session is not None and before.session is not None
        assert d.state.session.frame == before.session.frame
        assert not d.ledger()


def test_smaller(situation: Driver) -> None:
    kind = _category(situation)
    situation.command("smaller")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
    elif kind == "idle":
        assert d.texts() == [d.render("pause.nothing")]
    elif kind == "paused":
        assert d.texts() == [d.paused_text()]
    else:
        smaller = [e for e in d.ledger() if e.kind == "pacing" and e.data["choice"] == "smaller"]
        assert smaller or d.texts()[0] == d.render("pacing.smallest")
        assert d.messages[-1].buttons  # and the step again, at once


def test_skip(situation: Driver) -> None:
    kind = _category(situation)
    before = situation.state.model_copy(deep=True)
    situation.command("skip")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
    elif kind == "idle":
        assert d.texts() == [d.render("pause.nothing")]
    elif kind == "paused":
        assert d.texts() == [d.paused_text()]
    else:
        assert before.session is not None
        moved = (d.state.session is None or d.state.session.frame != before.session.frame)
        skipped = any(e.kind == "pacing" and e.data["choice"] == "skip" for e in d.ledger())
        if d.texts()[0] == d.render("pacing.cannot_skip"):
            assert not moved and not skipped
        else:
            assert moved


def test_progress(situation: Driver) -> None:
    kind = _category(situation)
    situation.command("progress")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
        return
    p = d.state.progress
    since = d.state.crisis_hold_since
    until = since + d.engine.resources.policy.crisis_hold if since is not None else None
    assert d.texts()[0] == d.render(
        "progress", exercises_done=p.exercises_done, smaller_steps=p.smaller_steps,
        connections=p.connections, level=d.state.level, max_level=d.state.contract.max_level,
        prompts_shared=p.prompts_shared, held=until is not None,
        held_until=d.local_time(until) if until is not None else "", support_only=False)
    if kind == "running" or d.state.pending is not None:
        assert len(d.messages) >= 2 and d.messages[-1].buttons  # the question again


def test_settings(situation: Driver) -> None:
    kind = _category(situation)
    situation.command("settings")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
        return
    if not d.state.has(Opt.CORE, d.engine.resources.policy.consent_version):
        # no opt-ins before the terms are agreed to: the terms again
        assert d.texts() == [d.render(
            "consent.intro", retention_days=d.engine.resources.policy.retention_days,
        answers_days=d.engine.resources.policy.answers_days,
            therapist_delay=d.engine.resources.policy.therapist_delay,
            crisis_hold_hours=d.engine.resources.policy.crisis_hold_hours)]
        assert d.state.pending == ConsentQuestion()
        return
    assert d.state.pending == SettingsQuestion()
    assert d.codes() == ["gp", "gf", "gs", "gr", "ga", "gz", "gt", "gc", "gd"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_published_command_is_one_the_engine_knows(
        situations: dict[str, Driver], name: str) -> None:
    for where in ("menu pending", "prompt"):
        d = situations[where].fork()
        d.command(name)
        assert d.render("unexpected.unknown_command") not in d.texts(), (where, name)


def test_unknown_command(situation: Driver) -> None:
    kind = _category(situation)
    before = situation.state.model_copy(deep=True)
    situation.command("frobnicate")
    d = situation
    if kind == "halted":
        assert d.texts() == [d.render("stop.halted")]
    else:
        assert d.texts()[0] == d.render("unexpected.unknown_command")
        if kind == "running" or d.state.pending is not None:
            assert d.messages[-1].buttons  # the question again
    _same_state(before, d.state)
    assert not d.ledger()


def test_settings_close_goes_back_to_the_step(situations: dict[str, Driver]) -> None:
    d = situations["settings pending"].fork()
    d.press(d.label("close"))
    assert d.texts()[0] == d.render("settings.saved")
    assert d.has_button("sh") and d.state.pending is None


def test_settings_change_pace_is_a_ledger_row(situations: dict[str, Driver]) -> None:
    d = situations["settings pending"].fork()
    d.press(d.label("change_pace"))
    assert [e.data for e in d.ledger()] == [{"choice": "change-pace", "pace": "steady"}]
    assert d.state.settings.pace == "steady"


def test_settings_toggles_are_versioned_consent_rows(situations: dict[str, Driver]) -> None:
    d = situations["settings pending"].fork()
    version = d.engine.resources.policy.consent_version
    d.press(d.label("change_free_text"))
    assert [e.data for e in d.ledger()] == [
        {"opt": "store_free_text", "given": True, "version": version}]
    assert d.state.has(Opt.STORE_FREE_TEXT, version)
    d.press(d.label("change_free_text"))
    assert [e.data for e in d.ledger()] == [
        {"opt": "store_free_text", "given": False, "version": version}]
    assert not d.state.has(Opt.STORE_FREE_TEXT, version)


def test_settings_region_chooses_the_crisis_lines(situations: dict[str, Driver]) -> None:
    d = situations["settings pending"].fork()
    d.press(d.label("change_region"))
    regions = d.engine.resources.policy.regions
    assert d.codes() == [f"gc{name}" for name in
                         sorted(regions, key=lambda name: regions[name].label)]
    d.press("gcUK")
    assert d.state.settings.region == "UK"
    assert ("settings_changed", {"setting": "region", "region": "UK"}) in [
        (e.kind, e.data) for e in d.last.ledger]
    d.command("sos")
    assert "call 999" in d.texts()[0]


def test_stop_words_are_not_read_through_the_crisis_scans_disguise_repairs() -> None:
    """"QuIt" is quit: a capital I is an l only to the crisis scan (kiII is kill)."""
    assert is_stop_word("QuIt") and is_stop_word("OPT OUT") and not is_stop_word("quilt")
