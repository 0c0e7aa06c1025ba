"""Stored states of earlier releases, brought up to the current form before they load.

A client's state is stored as JSON (:class:`~bot.engine._state.ClientState`) and must load
after every upgrade: a state that does not load would start the client afresh, consent and
progress lost. Each change of the stored form bumps :data:`VERSION` and adds a step here;
``tests/fixtures/states`` keeps states each release stored, and what it did next with them.

* Version 1 (no ``state_version`` key): ``pending`` is a string (``"consent:adult"``,
  ``"settings:tz"``, ``"menu"``, …) and the frame's part is ``sub`` (``"rating"``, …).
* Version 2: ``pending`` is ``{"kind": ..., ...}`` (:mod:`bot.engine._questions`) and the
  frame's part is ``part``.
"""

from __future__ import annotations

from typing import Any

#: The form of the state this release stores.
VERSION = 2

#: The version-1 strings of the questions whose name changed.
_V1_QUESTIONS = {"settings:tz": {"kind": "timezone"}, "settings:time": {"kind": "reminder_time"}}
_V1_NAMED = frozenset({"menu", "settings", "crisis", "level", "stop", "delete", "kept_answers"})


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a stored state) in the current form; a state already in it is returned as is.

    Raises:
        ValueError: For a state no release stored (an unknown question or part).
    """
    version = data.get("state_version", 1)
    if version == VERSION:
        return data
    if version != 1:
        raise ValueError(f"a state of form {version!r} is not one this release can read")
    data = dict(data, state_version=VERSION, pending=_v1_question(data.get("pending")))
    session = data.get("session")
    if isinstance(session, dict) and isinstance(session.get("frame"), dict):
        frame = dict(session["frame"])
        # "" was a step being entered: no part yet (it never ended up stored).
        data["session"] = dict(session, frame=dict(frame, part=frame.pop("sub", None) or None))
    return data


def _v1_question(pending: object) -> dict[str, str] | None:
    if pending is None:
        return None
    if not isinstance(pending, str):
        raise ValueError(f"a version-1 question is a string, not {pending!r}")
    if pending in _V1_QUESTIONS:
        return _V1_QUESTIONS[pending]
    if pending in _V1_NAMED:
        return {"kind": pending}
    kind, _, step = pending.partition(":")
    if kind == "consent" and step:
        return {"kind": "consent", "step": step}
    raise ValueError(f"no release asked the question {pending!r}")
