"""Walk every step of every shipped script, and check that /stop and crisis language work there.

Each script is explored by driving the real engine from the menu: every button of every
``ask``, free text where an ``ask`` takes it, low ratings, a high rating at every check-in (so
that its calming exercise and re-rating are visited too), and answers that go on everywhere
else. Two clients explore: a newcomer, and a returning client at the contract's top level who
keeps what they type and has noted a moment of connection (so branches on those are taken).
Every place a client waits is then checked for ``/stop`` and for crisis language; a failure
names the script and the step.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from bot.app import Loaded, build
from bot.config import load_config
from bot.engine import Engine, LevelQuestion
from tests.support.engine_driver import (
    CRISIS,
    Driver,
    assert_crisis,
    assert_halted,
    in_scene,
    running,
)

ROOT = Path(__file__).resolve().parents[1]
_LOADED = build(load_config(None, {}))
PASS_THROUGH = ("branch", "set", "end")
#: (script id, step id) of every step where a client waits for an answer.
WAITING = sorted(
    (sid, step_id)
    for sid, script in _LOADED.scripts.items()
    for step_id, step in script.steps.items()
    if step.kind not in PASS_THROUGH
)
RUNNABLE = sorted(sid for sid, s in _LOADED.scripts.items() if s.first_step is not None)
MAX_PLACES = 3000


def _clients(engine: Engine, script_id: str) -> list[Driver]:
    newcomer = Driver.new(engine, client_id="test:new")
    newcomer.consent()
    newcomer.pick(script_id)
    seasoned = Driver.new(engine, client_id="test:old")
    seasoned.consent(free_text=True)
    seasoned.state.level = seasoned.state.contract.max_level
    seasoned.state.progress.connections = 2
    seasoned.state.progress.last_connection = "coffee with Sam"
    seasoned.pick(script_id)
    return [newcomer, seasoned]


@cache
def explore(script_id: str) -> dict[str, dict[str, Driver]]:
    """Every (step, part of step) a client can wait at, with a client waiting there."""
    engine = _LOADED.engine
    found: dict[str, dict[str, Driver]] = {}
    seen: set[str] = set()
    calmed: set[str] = set()
    stack = _clients(engine, script_id)
    while stack:
        assert len(seen) < MAX_PLACES, f"{script_id}: too many places; a loop?"
        d = stack.pop()
        session = d.state.session
        if session is None:
            if d.state.pending == LevelQuestion():
                continue
            assert d.state.pending is None, d.state.pending
            continue
        key = d.state.client_id + session.model_dump_json(exclude={"started_at"})
        if key in seen:
            continue
        seen.add(key)
        found.setdefault(session.frame.step, {}).setdefault(session.frame.part, d)
        step, sub = session.frame.step, session.frame.part
        if sub == "ask":
            for code in [c for c in d.codes() if c.startswith("c")]:
                branch = d.fork()
                branch.press(code)
                stack.append(branch)
            script = engine.resources.scripts[script_id]
            ask = script.steps[step].ask
            if ask is not None and ask.free_text is not None:
                branch = d.fork()
                branch.text("3" if ask.free_text.number else "a few words of my own")
                stack.append(branch)
            continue
        if sub == "rating" and step not in calmed:
            calmed.add(step)
            high = d.fork()
            high.text("9")
            assert high.part == "calm", f"{script_id}:{step}: 9 did not lead to calming"
            stack.append(high)
        nxt = d.fork()
        nxt.answer_current()
        stack.append(nxt)
    return found


@pytest.fixture(scope="module")
def loaded_walk() -> Loaded:
    return _LOADED


def test_there_is_something_to_walk() -> None:
    assert len(RUNNABLE) >= 8
    assert len(WAITING) > 80


@pytest.mark.parametrize("script_id", RUNNABLE)
def test_every_step_is_reached_by_driving(script_id: str) -> None:
    found = explore(script_id)
    waiting = {step for sid, step in WAITING if sid == script_id}
    assert waiting - set(found) == set()
    subs = {sub for places in found.values() for sub in places}
    assert "calm" in subs and "recheck" in subs


@pytest.mark.parametrize("script_id", RUNNABLE)
def test_every_path_can_be_completed(script_id: str) -> None:
    """Plain answers from the start reach the end and count as a finished exercise."""
    d = _clients(_LOADED.engine, script_id)[0]
    d.walk_to_end()
    ends = [e for e in d.all_ledger() if e.kind == "session_ended"]
    assert len(ends) == 1 and ends[0].data["completed"] is True, ends
    assert d.state.progress.exercises_done == 1


def _places(script_id: str, step_id: str) -> list[tuple[str, Driver]]:
    found = explore(script_id).get(step_id, {})
    assert found, f"{script_id}:{step_id} was never reached"
    return sorted(found.items())


@pytest.mark.parametrize(("script_id", "step_id"), WAITING, ids=[f"{s}:{t}" for s, t in WAITING])
def test_stop_works_at_every_step(script_id: str, step_id: str) -> None:
    for sub, place in _places(script_id, step_id):
        for how in ("command", "word"):
            d = place.fork()
            if how == "command":
                d.command("stop")
            else:
                d.text("Stop")
            try:
                assert_halted(d, True, how)
            except AssertionError as exc:
                raise AssertionError(f"{script_id}:{step_id} ({sub}), {how}: {exc}") from exc
            d.fire("silence", d.now)
            d.fire("reminder", d.now)
            assert d.messages == []


@pytest.mark.parametrize(("script_id", "step_id"), WAITING, ids=[f"{s}:{t}" for s, t in WAITING])
def test_crisis_language_works_at_every_step(script_id: str, step_id: str) -> None:
    for sub, place in _places(script_id, step_id):
        d = place.fork()
        was_running, scene = running(d), in_scene(d)
        d.text(f"I don't know. {CRISIS}.")
        try:
            assert_crisis(d, f"I don't know. {CRISIS}.", had_session=True, running=was_running,
                          scene=scene)
        except AssertionError as exc:
            raise AssertionError(f"{script_id}:{step_id} ({sub}): {exc}") from exc
        d.press(d.label("not_safe"))
        assert d.engine.resources.policy.emergency in d.texts()[0]


@pytest.mark.parametrize(("script_id", "step_id"), WAITING, ids=[f"{s}:{t}" for s, t in WAITING])
def test_the_step_can_be_shown_again(script_id: str, step_id: str) -> None:
    """An unknown command repeats the question at every place, with live buttons."""
    for sub, place in _places(script_id, step_id):
        d = place.fork()
        d.command("frobnicate")
        assert d.texts()[0] == d.render("unexpected.unknown_command"), (sub, d.plain())
        assert len(d.messages) >= 2 and d.messages[-1].buttons, (script_id, step_id, sub)
        assert d.step == step_id and d.part == sub


_BOT_AS_PERSON = re.compile(r"\b(we|we'll|we're|us|our|let's|together)\b", re.IGNORECASE)
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")


def _bot_voice(node: object) -> list[str]:
    """Every text the bot says in its own voice: not a character's lines, not quoted words
    or modelled answers ("someone might say: …")."""
    if isinstance(node, dict):
        if "says" in node:  # a role-play line: the character speaks
            return []
        return [t for k, v in node.items() if k not in ("example", "examples")
                for t in _bot_voice(v)]
    if isinstance(node, list):
        return [t for v in node for t in _bot_voice(v)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("path", sorted((ROOT / "scripts").glob("*.yaml")), ids=lambda p: p.name)
def test_the_bot_never_speaks_as_a_person_beside_the_client(path: Path) -> None:
    """The bot is a practice tool: no "we", "us" or "let's" in its own voice (issue 11)."""
    texts = _bot_voice(yaml.safe_load(path.read_text(encoding="utf-8")))
    found = [t for t in texts if _BOT_AS_PERSON.search(_QUOTED.sub("", t))]
    assert not found, found
