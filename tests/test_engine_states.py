"""Stored states of earlier releases load, and the engine goes on from them as it did then.

``tests/fixtures/states/v1-states.json`` holds client states saved by the engine of the first
release (``pending`` and the step's part as plain strings), one per situation: every question
outside the script, every part of every step kind, a closing rating, a paused session.
``v1-replies.json.gz`` holds what that engine did next with each of them: for every live
button, a few texts and commands, the messages, ledger rows, timers, effects and the new
state. Both were written by that engine, from copies of the scripts it ran
(``tests/fixtures/states/scripts``), and are never regenerated: they are the old behaviour.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from bot.engine import Button, ClientState, Command, Engine, Event, Outcome, Text
from tests.support.engine_driver import engine_for_files

HERE = Path(__file__).resolve().parent / "fixtures" / "states"
STATES: dict[str, dict[str, object]] = json.loads((HERE / "v1-states.json").read_text("utf-8"))


@cache
def _replies() -> dict[str, list[dict[str, object]]]:
    with gzip.open(HERE / "v1-replies.json.gz", "rt", encoding="utf-8") as file:
        found: dict[str, list[dict[str, object]]] = json.load(file)
    return found


@cache
def _engine() -> Engine:
    return engine_for_files(sorted((HERE / "scripts").glob("*.yaml")))


def _event(kind: str, value: str, name: str) -> Event:
    if kind == "button":
        return Button(data=value, display_name=name)
    if kind == "text":
        return Text(text=value, display_name=name)
    return Command(name=value, display_name=name)


def _seen(out: Outcome) -> dict[str, object]:
    """An outcome in the form the fixtures record it."""
    return {
        "messages": [[m.text, [[[b.label, b.data] for b in row] for row in m.buttons],
                      m.replace_keyboard, m.urgent] for m in out.messages],
        "ledger": [[e.kind, e.data] for e in out.ledger],
        "answers": [[a.step, a.text, a.kind] for a in out.answers],
        "timers_set": [[t.kind, t.due.isoformat()] for t in out.timers_set],
        "timers_cancel": list(out.timers_cancel),
        "effects": [e.value for e in out.effects],
    }


def test_every_situation_is_kept() -> None:
    assert len(STATES) >= 40 and set(STATES) == set(_replies())


@pytest.mark.parametrize("name", sorted(STATES))
def test_a_stored_state_loads_and_goes_on_as_before(name: str) -> None:
    saved = STATES[name]
    state = ClientState.model_validate(saved["state"])
    now = datetime.fromisoformat(str(saved["now"]))
    for reply in _replies()[name]:
        kind, value = reply["event"]  # type: ignore[misc]
        out = _engine().handle(state, _event(kind, value, str(saved["name"])), now)
        expected = dict(reply["outcome"])  # type: ignore[call-overload]
        then = ClientState.model_validate(expected.pop("state"))
        assert _seen(out) == expected, (name, reply["event"])
        assert out.state.model_dump(mode="json") == then.model_dump(mode="json"), (
            name, reply["event"])
