"""What the explorer reads of the engine: its outcomes, and a few facts of the client's state.

Everything the explorer knows about the engine's insides is in this module, so that a change of
the engine's state representation is adapted here, in one place. The rest of the explorer only
uses the engine's public API: events in, :class:`~bot.engine.Outcome` out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.check import StepGraph
from bot.crisis import Detection, Detector
from bot.engine import OVER_CUES, UNDER_CUES, ButtonSpec, ClientState, Message, Outcome, Texts
from bot.script import LoadedScript, parse_condition

#: State fields that never change what the engine does next: the keyboard counter (it numbers
#: button data so that stale presses are recognised) and counters the engine only reports in
#: ``/progress``, which the walk never asks for; and when the weekly outcome check-in was last
#: asked (a time, new at every check-in; the walk never switches the check-in on).
VOLATILE: dict[str, object] = {
    "keyboard": True,
    "outcomes_asked_at": True,
    "progress": {"prompts_shared": True, "smaller_steps": True},
}


#: Counts of what a client did that scripts may read (``exercises_done``,
#: ``connection_count``): told apart up to :data:`COUNTED`, so that a loop which counts (a
#: session started afresh again and again) still ends.
COUNTS = ("exercises_done", "connections")
COUNTED = 2

#: Ratings a session records for the ledger, the texts and the pacing rule at its end. Places
#: that differ only in these are walked on from once (unless a condition of the script reads
#: one): the walk gives every 0–10 scale the same few values, so at a place where one of them
#: is read to decide (the threshold, the under-arousal cues) it is the same on every path.
RATINGS = ("distress", "distress_before", "expected", "actual", "relief")



@dataclass(frozen=True, slots=True)
class Labels:
    """The button labels and question texts the explorer recognises, from the system texts."""

    agree: str
    decline: str
    yes: str
    no: str
    opt_in: str
    opt_out: str
    shared: str
    said_it: str
    skip: str
    smaller: str
    pause: str
    stop_confirm: str
    keep_going: str
    under: str
    ask_timezone: str
    ask_reminder_time: str
    expected: str
    actual: str
    cues: frozenset[str]
    cues_walked: frozenset[str]

    @classmethod
    def of(cls, texts: Texts) -> Labels:
        """Read the labels and texts from the renderer."""
        def label(key: str) -> str:
            return texts.label(f"buttons.{key}")

        def system(key: str) -> str:
            return texts.system(key).strip()

        return cls(
            agree=label("agree"), decline=label("decline"), yes=label("yes"), no=label("no"),
            opt_in=label("opt_in"), opt_out=label("opt_out"), shared=label("shared"),
            said_it=label("said_it"), skip=label("skip"), smaller=label("smaller"),
            pause=label("pause"),
            stop_confirm=system("stop.confirm"), keep_going=label("keep_going"),
            under=system("checkin.under"),
            ask_timezone=system("settings.ask_timezone"),
            ask_reminder_time=system("settings.ask_reminder_time"),
            expected=system("checkin.expected"), actual=system("checkin.actual"),
            cues=frozenset(label(c.label) for c in (*OVER_CUES, *UNDER_CUES)),
            cues_walked=frozenset(label(c[0].label) for c in (OVER_CUES, UNDER_CUES)),
        )


@dataclass(frozen=True, slots=True)
class Shown:
    """Disclosure content a reply showed: a prompt or a role-play line.

    Attributes:
        kind: ``prompt`` or ``turn``.
        level: Its level.
        what: How a report names it, e.g. ``prompt `l2-needs``` or
            ``line 3 of role-play `scene```.
        gentler: A role-play line shown in its ``smaller`` wording (the engine's stand-in for a
            line deeper than the client's level).
    """

    kind: Literal["prompt", "turn"]
    level: int
    what: str
    gentler: bool = False


class Remembered:
    """The renderer, remembering what it rendered: the same text for the same key and values.

    Rendering is a pure function of its inputs, and a walk renders the same texts over and
    over; remembering them makes a walk about 1.6 times faster and changes no outcome.
    """

    def __init__(self, texts: Texts) -> None:
        self._texts = texts
        self._system: dict[str, str] = {}
        self._label: dict[str, str] = {}
        self._text: dict[str, str] = {}

    def system(self, key: str, **context: object) -> str:
        """Render a system text by key."""
        memo = _key(key, context)
        found = self._system.get(memo)
        if found is None:
            found = self._system[memo] = self._texts.system(key, **context)
        return found

    def text(self, source: str, context: Mapping[str, object]) -> str:
        """Render a script's template text."""
        memo = _key(source, context)
        found = self._text.get(memo)
        if found is None:
            found = self._text[memo] = self._texts.text(source, context)
        return found

    def label(self, key: str, **context: object) -> str:
        """Render a button label as plain text."""
        memo = _key(key, context)
        found = self._label.get(memo)
        if found is None:
            found = self._label[memo] = self._texts.label(key, **context)
        return found


class RememberedDetector(Detector):
    """The crisis detector, remembering what it found in each text it scanned.

    Scanning is a pure function of the text (and the rule book), and a walk sends the same
    few texts thousands of times; this one shares the detector's rule book and speller.
    """

    def __init__(self, detector: Detector) -> None:  # no super().__init__: nothing to rebuild
        self.__dict__.update(vars(detector))
        self._detector = detector
        self._found: dict[str, Detection] = {}

    def scan(self, text: str) -> Detection:
        """The rules ``text`` matches, as the wrapped detector finds them."""
        found = self._found.get(text)
        if found is None:
            found = self._found[text] = self._detector.scan(text)
        return found


def _key(source: str, context: Mapping[str, object]) -> str:
    if not context:
        return source
    return source + "\0" + json.dumps(context, sort_keys=True, default=repr)


def keyboard_of(messages: list[Message]) -> tuple[ButtonSpec, ...] | None:
    """The buttons of the newest message that has any, or None."""
    for message in reversed(messages):
        if message.buttons:
            return tuple(b for row in message.buttons for b in row)
    return None


def step_at(state: ClientState) -> str | None:
    """The step the client's session is at, if one runs."""
    return state.session.frame.step if state.session is not None else None


def running(state: ClientState) -> bool:
    """Whether a session runs and is not paused."""
    return state.session is not None and not state.session.paused


def crisis_hold(state: ClientState) -> bool:
    """Whether a crisis hold keeps content at level 1."""
    return state.crisis_hold_since is not None


def shown(script: LoadedScript, state: ClientState, out: Outcome, labels: Labels) -> Shown | None:
    """The prompt or role-play line a reply showed, recognised by the buttons that answer it."""
    keyboard = keyboard_of(out.messages)
    session = state.session
    if keyboard is None or session is None:
        return None
    names = {b.label for b in keyboard}
    frame = session.frame
    if labels.shared in names and frame.prompt is not None:
        prompt = script.prompts[frame.prompt]
        return Shown("prompt", prompt.level, f"prompt `{prompt.id}`")
    step = script.steps.get(frame.step)
    play = step.roleplay if step is not None else None
    if labels.said_it in names and play is not None and frame.turn < len(play.turns):
        turn = play.turns[frame.turn]
        return Shown("turn", turn.level, f"line {frame.turn + 1} of role-play `{frame.step}`",
                     gentler=frame.smaller and turn.smaller is not None)
    return None


class Canonical:
    """Writes a state as a string that is equal for states the engine treats alike.

    Times are written relative to the clock (the engine only compares them with it), and
    left out are the :data:`VOLATILE` counters (and :data:`COUNTS` are told apart only up to
    :data:`COUNTED`), the session's :data:`RATINGS` that no
    condition of the script reads, and the script's variables that nothing from the current
    step on can read (no text, condition or prompt of a step reachable from it, nor any
    exercise, names them).
    """

    def __init__(self, script: LoadedScript) -> None:
        graph = StepGraph(script)
        conditions = {step_id: [arm.if_ for arm in step.branch or () if arm.if_ is not None]
                      for step_id, step in script.steps.items()}
        read = {n for found in conditions.values() for c in found
                for n in parse_condition(c).names}
        self._ratings = {name: True for name in RATINGS if name not in read}
        anywhere = _words(*(p.model_dump_json() for p in script.prompts.values()),
                          *(e.model_dump_json() for e in script.exercises.values()))
        own = {step_id: _words(step.model_dump_json()) for step_id, step in script.steps.items()}
        live = dict(own)
        changed = True
        while changed:  # until every step's set includes its successors' sets
            changed = False
            for step_id in reversed(graph.order):
                grown = live[step_id].union(*(live[t] for t in graph.successors(step_id)))
                if grown != live[step_id]:
                    live[step_id], changed = grown, True
        self._live = {step_id: names | anywhere for step_id, names in live.items()}

    def __call__(self, state: ClientState, now: datetime) -> str:
        """The canonical string of ``state`` at ``now``."""
        progress = state.progress
        if any(getattr(progress, name) > COUNTED for name in COUNTS):
            clamped = {name: min(getattr(progress, name), COUNTED) for name in COUNTS}
            state = state.model_copy(update={"progress": progress.model_copy(update=clamped)})
        exclude = dict(VOLATILE)
        session = state.session
        if session is not None:
            live = self._live.get(session.frame.step, frozenset())
            dead = {name: True for name in session.vars if name not in live}
            exclude["session"] = {**self._ratings, "vars": dead}
        data = state.model_dump_json(exclude=exclude)  # type: ignore[arg-type]
        return _TIME.sub(lambda m: _offset(datetime.fromisoformat(m[1]), now), data)


def _words(*texts: str) -> frozenset[str]:
    return frozenset(w for text in texts for w in _WORD.findall(text))


def projection(state: ClientState, now: datetime) -> dict[str, object]:
    """The parts of a state a fingerprint compares: what the client has and where they are.

    The question the engine waits for and the part of a step it is at are left out on purpose:
    their representation is the engine's own business (issue 10 retypes them), and what they
    do shows in the messages and ledger rows every fingerprint records.
    """
    session = state.session
    hold = state.crisis_hold_since
    return {
        "halted": state.halted,
        "level": state.level,
        "max_level": state.contract.max_level,
        "consents": state.consents,
        "crisis_hold_since": None if hold is None else _offset(hold, now),
        "progress": state.progress.model_dump(mode="json"),
        "session": None if session is None else {
            "script": session.script, "step": session.frame.step, "level": session.level,
            "paused": session.paused, "vars": session.vars, "distress": session.distress,
            "expected": session.expected, "actual": session.actual, "relief": session.relief,
        },
    }


_WORD = re.compile(r"[a-z][a-z0-9_]*")
#: A time in pydantic's JSON: a quoted ISO 8601 date and time.
_TIME = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)"')


def _offset(when: datetime, now: datetime) -> str:
    return f'"{(when - now).total_seconds():+g}s"'


def relative(data: object, now: datetime) -> object:
    """``data`` with every datetime replaced by its offset from ``now`` in seconds."""
    if isinstance(data, datetime):
        return _offset(data, now)
    if isinstance(data, dict):
        return {str(k): relative(v, now) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [relative(v, now) for v in data]
    return data
