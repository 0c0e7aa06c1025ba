"""`rehearse check --explore`: every path of every shipped script through the real engine.

The shipped scripts are walked once per test module, and must break no invariant (a known
engine fault, tracked in issue 11, is an expected failure of its own). Engines with a
fault injected by a subclass, and a script edited after its check, prove that each invariant
is really checked and that a violation comes with its path; a fixture script that passes the
static checker but that no client can finish proves the no-end check, through the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from bot.app import build
from bot.config import load_config
from bot.crisis import Detection, Detector
from bot.engine import (
    Alert,
    Button,
    ClientState,
    Command,
    Engine,
    Event,
    LedgerEntry,
    Message,
    Outcome,
    Text,
    TimerFired,
)
from bot.explore import CLIENTS, Exploration, Limits, explore
from bot.explore._observe import Labels
from bot.explore._rules import Rules, Watch
from bot.script import LoadedScript

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "scripts" / "explore_fail_no_end.yaml"
_LOADED = build(load_config(None, {}))
SHIPPED = sorted(sid for sid, s in _LOADED.scripts.items() if s.first_step is not None)

#: Violations of the current engine that issue 11 fixes; each has an expected-failure test
#: below (strict: it fails once the fault is fixed, so that the entry is removed).
KNOWN: set[tuple[str, str]] = set()  # violations known and accepted: none


@cache
def explored(script_id: str) -> Exploration:
    return explore(_LOADED.scripts[script_id], _LOADED.engine.resources, keep_transcript=True)


def _walk(engine: type[Engine] = Engine, script: LoadedScript | None = None,
          script_id: str = "first-steps", clients: int | slice = slice(None)) -> Exploration:
    chosen = CLIENTS[clients] if isinstance(clients, slice) else (CLIENTS[clients],)
    return explore(script or _LOADED.scripts[script_id], _LOADED.engine.resources,
                   engine=engine, clients=chosen)


def _only(result: Exploration, code: str) -> list[str]:
    found = [v for v in result.violations if v.code == code]
    assert found, f"no {code}; found: {[v.code for v in result.violations]}"
    return [str(v) for v in found]


# -- the shipped scripts ------------------------------------------------------------------------


def test_there_is_something_to_explore() -> None:
    assert len(SHIPPED) >= 8


@pytest.mark.parametrize("script_id", SHIPPED)
def test_shipped_script_breaks_no_invariant(script_id: str) -> None:
    result = explored(script_id)
    unexpected = [str(v) for v in result.violations if (v.code, v.message) not in KNOWN]
    assert not unexpected, "\n".join(unexpected)
    assert not result.truncated, result.summary()
    assert result.states > 100 and result.transitions > 4 * result.states and result.paths


@pytest.mark.parametrize("script_id", SHIPPED)
def test_no_step_up_offered_after_high_distress(script_id: str) -> None:
    found = explored(script_id).violations
    assert not [v for v in found if v.code == "explore-step-up-after-distress"]


def test_the_walk_tries_what_a_client_can_do() -> None:
    """Every kind of input appears in the transcript of a script with prompts."""
    inputs = {json.loads(line)[1] for line in explored("first-steps").transcript}
    wanted = ['press "I agree"', 'press "Yes"', 'press "2"', 'press "7"', 'press "10"',
              'type "2"', 'type "a few words of my own"', 'press "I shared it"',
              'press "Smaller step"', 'press "Skip"', 'press "Pause"', 'press "Resume"',
              "/pause, then /resume", "/skip", "/smaller", "/stop", 'type "Stop"',
              "10 minutes of silence: the silence timer fires",
              'type "I don\'t know. I want to kill myself.", then "no, not really"']
    assert [w for w in wanted if w not in inputs] == []
    assert any(i.startswith("15 minutes pass (the session cap)") for i in inputs)
    assert any(i.startswith('type "I don\'t know. ') for i in inputs)  # crisis language
    cues = {json.loads(line)[1] for line in explored("noticing-the-body").transcript}
    assert {'press "Numb"', 'press "Tight chest"', 'press "Frozen"'} <= cues


def test_the_client_after_a_crisis_only_sees_level_1() -> None:
    """The third client's session restarts one level lower and stays at level 1 on hold."""
    levels = set()
    for line in explored("first-steps").transcript:
        for outcome in json.loads(line)[3]:
            for entry in outcome["ledger"]:
                if entry[0] == "prompt" and outcome["state"]["crisis_hold_since"] is not None:
                    levels.add(entry[1]["level"])
    assert levels == {1}


# -- determinism and the fingerprint ------------------------------------------------------------


def test_a_walk_is_the_same_every_time() -> None:
    first = _walk(script_id="telling-a-friend", clients=0)
    again = _walk(script_id="telling-a-friend", clients=0)
    assert first.fingerprint == again.fingerprint
    assert (first.states, first.transitions, first.paths) == (again.states, again.transitions,
                                                             again.paths)
    assert [str(v) for v in first.violations] == [str(v) for v in again.violations]


@pytest.mark.slow
def test_the_fingerprint_is_the_same_in_another_process() -> None:
    """Two processes with different hash seeds print the same digests."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "bot", "check", "--explore",
                               "--fingerprint", "scripts/telling-a-friend.yaml"],
                              cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        assert "Traceback" not in done.stderr
        outputs.append([line for line in done.stdout.splitlines()
                        if line.endswith("  scripts/telling-a-friend.yaml")])
    assert len(outputs[0]) == 1 and len(outputs[0][0].split()[0]) == 64
    assert outputs[0] == outputs[1]
    assert outputs[0][0].split()[0] == explored("telling-a-friend").fingerprint


class _Reworded(Engine):
    """Says one thing differently: "This part can't be skipped" loses its full stop."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, Command) and event.name == "skip":
            out.messages = [dataclasses.replace(m, text=m.text.replace(".", "", 1))
                            for m in out.messages]
        return out


def test_the_fingerprint_changes_with_any_outcome() -> None:
    same = _walk(script_id="telling-a-friend", clients=0)
    changed = _walk(_Reworded, script_id="telling-a-friend", clients=0)
    assert (changed.states, changed.transitions) == (same.states, same.transitions)
    assert changed.fingerprint != same.fingerprint


# -- faults the explorer must find ---------------------------------------------------------------


class _ChattyStop(Engine):
    """Sends a second message after /stop."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, Command) and event.name == "stop":
            out.messages.append(Message("Sorry to see you go!"))
        return out


class _LateReminder(Engine):
    """Still reminds a halted client when the reminder timer fires."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, TimerFired) and state.halted:
            out.messages.append(Message("Time to practise!"))
        return out


def test_a_second_message_after_stop_is_found_with_its_path() -> None:
    report = _only(_walk(_ChattyStop, clients=0), "explore-stop")[0]
    lines = report.splitlines()
    assert lines[0].startswith(f"{_LOADED.scripts['first-steps'].file}:")
    assert "2 message(s) were sent, not exactly the one confirmation [explore-stop]" in lines[0]
    assert lines[1].startswith("  client: level-1 (")
    assert lines[2:] == ["    1. /stop"]  # the shortest path: before anything else


def test_a_message_sent_after_a_halt_is_found() -> None:
    report = _only(_walk(_LateReminder, clients=0), "explore-stop")
    assert any("a timer firing afterwards sent a message" in r for r in report)


class _DeafToCrisis(Engine):
    """Does not notice crisis language while a session runs."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        if (isinstance(event, Text) and state.session is not None
                and self.resources.crisis.scan(event.text)):
            event = Text(text="ok", display_name=event.display_name)
        return super().handle(state, event, now)


def test_crisis_language_missed_mid_session_is_found() -> None:
    reports = _only(_walk(_DeafToCrisis, clients=0), "explore-crisis")
    assert any("crisis lines are missing: Call or text 988" in r for r in reports)


class _Preamble(Engine):
    """Puts a message of its own before the crisis lines (as the engine did before issue 8)."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, Text) and self.resources.crisis.scan(event.text):
            out.messages.insert(0, Message("Some words in your message worry me."))
        return out


def test_crisis_lines_that_do_not_come_first_are_found() -> None:
    reports = _only(_walk(_Preamble, clients=0), "explore-crisis")
    assert any("the first message does not carry the emergency number" in r for r in reports)


class _ForgetsNotSafe(Engine):
    """Forgets a "not safe" answer at once, as the engine did before issue 11: the next
    /start offers the menu and practice goes on."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        forgetful = state.model_copy(deep=True)
        forgetful.not_safe = False
        return super().handle(forgetful, event, now)


def test_exercise_content_after_not_safe_is_found() -> None:
    reports = _only(_walk(_ForgetsNotSafe, clients=0), "explore-not-safe")
    assert any("an exercise went on: session_started" in r for r in reports)


class _AlertsEveryone(Engine):
    """Alerts the therapist on crisis language whether or not the client opted in."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, Text) and self.resources.crisis.scan(event.text):
            out.alerts = out.alerts or [Alert("Rehearse safety alert")]
        return out


def test_an_alert_without_the_opt_in_is_found() -> None:
    reports = _only(_walk(_AlertsEveryone, clients=0), "explore-alert-consent")
    assert any("has not opted in" in r for r in reports)


class _QuotesTheClient(Engine):
    """Puts the client's words into the alert to the therapist."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if isinstance(event, Text):
            out.alerts = [Alert(f"{a.text} They wrote: {event.text}") for a in out.alerts]
        return out


def test_an_alert_with_the_clients_words_is_found() -> None:
    assert not [v for v in _walk(clients=1).violations if v.code.startswith("explore-")]
    reports = _only(_walk(_QuotesTheClient, clients=1), "explore-crisis")
    assert any("carries the client's words" in r for r in reports)


def test_a_step_up_after_a_crisis_hold_in_the_session_is_found() -> None:
    rules = Rules(_LOADED.scripts["first-steps"], _LOADED.engine.resources.policy,
                  _LOADED.engine.resources.crisis, Labels.of(_LOADED.engine.resources.texts))
    state = ClientState(client_id="c")
    offer = Outcome(state=state, ledger=[LedgerEntry("level_offered", {"level": 1})])
    _, quiet = rules.transition(state, offer, Watch())
    assert quiet == []
    held = Outcome(state=state, ledger=[LedgerEntry("crisis_hold", {"reason": "sos"}),
                                        LedgerEntry("level_offered", {"level": 1})])
    _, found = rules.transition(state, held, Watch())
    assert [p.code for p in found] == ["explore-step-up-after-distress"]
    assert "a crisis hold" in found[0].message


class _LevelBlind(Engine):
    """Runs sessions as if the client were at the contract's top level."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        lifted = state.model_copy(deep=True)
        lifted.level = state.contract.max_level
        if lifted.session is not None:
            lifted.session.level = lifted.level
        out = super().handle(lifted, event, now)
        out.state.level = state.level
        return out


def test_a_prompt_above_the_clients_level_is_found() -> None:
    reports = _only(_walk(_LevelBlind, clients=0), "explore-level")
    assert any("(level 3) was shown, above the client's level (1)" in r for r in reports)


class _NoCalming(Engine):
    """Records a high rating but goes on as if it were low (no de-escalation)."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        out = super().handle(state, event, now)
        if any(e.kind == "deescalation" for e in out.ledger):
            high = next(e for e in out.ledger if e.kind == "checkin")
            out = super().handle(state, Text(text="2", display_name=event.display_name), now)
            out.ledger = [LedgerEntry(e.kind, {**e.data, "distress": high.data["distress"]})
                          if e.kind == "checkin" else e for e in out.ledger]
        return out


def test_content_after_high_distress_without_calming_is_found() -> None:
    reports = _only(_walk(_NoCalming, clients=1), "explore-high-distress")
    assert any("was shown after a rating of 7, before any de-escalation" in r for r in reports)


def _without_step(script_id: str, step_id: str) -> LoadedScript:
    """A script with one step removed after it was checked (as if it slipped past)."""
    script = _LOADED.scripts[script_id]
    steps = {k: v for k, v in script.steps.items() if k != step_id}
    return dataclasses.replace(script, steps=steps)


def test_a_prompt_before_any_checkin_is_found() -> None:
    script = _without_step("first-steps", "checkin-before")
    reports = _only(_walk(script=script, clients=1), "explore-before-checkin")
    assert any("(level 3) was shown before any check-in" in r for r in reports)


def test_a_role_play_before_any_checkin_is_found() -> None:
    script = _without_step("telling-a-friend", "checkin-before")
    reports = _only(_walk(script=script, clients=0), "explore-before-checkin")
    assert any("role-play" in r and "before any check-in" in r for r in reports)


class _Fragile(Engine):
    """Fails on /smaller at a role-play line."""

    def handle(self, state: ClientState, event: Event, now: datetime) -> Outcome:
        if isinstance(event, Button) and event.data.endswith(":sm") and state.session is not None:
            raise KeyError("smaller")
        return super().handle(state, event, now)


def test_an_engine_failure_is_found_with_its_path() -> None:
    report = _only(_walk(_Fragile, script_id="telling-a-friend", clients=0),
                   "explore-engine-error")[0]
    assert "the engine failed: KeyError: 'smaller'" in report
    assert report.splitlines()[-1].endswith('press "Smaller step"')


def test_a_walk_stops_at_its_limits_and_says_so() -> None:
    result = explore(_LOADED.scripts["first-steps"], _LOADED.engine.resources,
                     limits=Limits(max_states=50))
    assert result.truncated and result.states == 50
    assert "stopped at the limits" in result.summary()
    assert not [v for v in result.violations if v.code == "explore-no-end"]


# -- the command ----------------------------------------------------------------------------------


def _rehearse(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, check=False)


def test_a_script_no_client_can_finish_fails_the_command() -> None:
    assert _rehearse("check", str(FIXTURE)).returncode == 0  # the static checker passes it
    done = _rehearse("check", "--explore", str(FIXTURE))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = done.stdout.split(f"{FIXTURE}:13:5: violation: from here no answer leads to the "
                               "end of the session", 1)
    assert len(report) == 2, done.stdout
    lines = report[1].splitlines()[1:]  # after the rest of the first line: client, path
    path = lines[1:next(i for i, line in enumerate(lines) if not line.startswith("  "))]
    assert lines[0].startswith("  client: ") and path[0] == "    1. /start"
    assert path[-1].endswith('press "Round and round"')
    assert f"{FIXTURE}: explored " in done.stdout
    assert "violation(s)" in done.stderr


def test_explore_as_json() -> None:
    done = _rehearse("check", "--explore", "--format", "json", str(FIXTURE))
    data = json.loads(done.stdout)
    assert data["findings"][0]["code"] == "no-after-checkin"
    [walked] = data["explored"]
    assert walked["script"] == "explore-no-end" and len(walked["fingerprint"]) == 64
    no_end = [v for v in walked["violations"] if v["code"] == "explore-no-end"]
    assert no_end[0]["line"] == 13 and no_end[0]["path"][0] == "/start"


def test_fingerprint_without_explore_is_a_usage_error() -> None:
    done = _rehearse("check", "--fingerprint", "scripts/first-steps.yaml")
    assert done.returncode == 2 and "--fingerprint needs --explore" in done.stderr


def test_a_walk_says_when_it_could_not_try_crisis_language() -> None:
    """Rules that detect none of the walk's (English) sentences: the summary says so."""

    class Blind(Detector):
        def scan(self, text: str) -> Detection:
            return Detection()

    res = _LOADED.engine.resources
    blind = Blind(res.crisis.book)
    result = explore(_LOADED.scripts["story-of-connection"],
                     dataclasses.replace(res, crisis=blind), clients=CLIENTS[:1])
    assert not result.crisis_tried
    assert "crisis language not tried" in result.summary()
    assert explored("story-of-connection").crisis_tried
