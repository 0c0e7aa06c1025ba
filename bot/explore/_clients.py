"""The simulated clients, and everything a client can do at a place: the explorer's inputs.

A walk starts from each :data:`CLIENTS` entry: a client the engine has never seen, who sends
``/start``, answers the consent questions (giving the opt-ins their profile gives and those the
script needs), does what their profile does at the menu, and chooses the script. From then on
every place is answered in every way :class:`Planner` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from bot.engine import (
    Button,
    ButtonSpec,
    ClientState,
    Command,
    Event,
    Message,
    Opt,
    Outcome,
    Resources,
    Start,
    Text,
    TimerFired,
)
from bot.explore._observe import Labels, running, step_at
from bot.script import LoadedScript

#: The first name the simulated clients give (scripts greet them with it).
NAME = "Alex"
#: A free-text answer.
WORDS = "a few words of my own"
#: The low rating tried at every 0–10 keyboard (at or above the threshold and 10 are tried too).
LOW = 2
#: The highest rating.
HIGH = 10
#: The time zone and reminder time of clients who opt in to reminders.
TIMEZONE, REMINDER_AT = "Europe/London", "19:00"
#: The stop word tried at every place (any of STOP, END, CANCEL, … halts).
STOP_WORD = "Stop"
#: A typed answer "not safe" to "are you safe right now?".
NOT_SAFE = "no, not really"


class Kind(Enum):
    """What an input is to the walk."""

    ANSWER = "answer"  # the client answers: the walk goes on from where it leads
    TIME = "time"  # time passes (a timer fires, the session cap): the walk goes on too
    STOP = "stop"  # /stop or a stop word: checked, not walked on from
    CRISIS = "crisis"  # crisis language: checked, not walked on from
    NOT_SAFE = "not-safe"  # crisis language, then "no": checked with what follows, not walked
    STOP_REQUEST = "stop-request"  # "please stop": asked, then "Keep going"; checked
    UNDER_AROUSAL = "under-arousal"  # "I feel numb": grounding; checked, not walked on from
    PROBE = "probe"  # e.g. declining consent, a rating of 10: checked, not walked on from

    @property
    def walked(self) -> bool:
        """Whether the walk goes on from where the input leads."""
        return self in (Kind.ANSWER, Kind.TIME)


@dataclass(frozen=True, slots=True)
class Act:
    """One input: an event, after ``wait`` has passed.

    Attributes:
        label: How a path shows it, e.g. ``press "Go on"``.
        event: The event the engine gets.
        kind: Whether the walk goes on from it.
        wait: Time that passes before the event.
        chooses: It chooses the script from the menu: the session part of the walk begins.
        prelude: It is one of the client's menu actions before choosing.
        then: A second event sent right after the first (``/pause``, then ``/resume``).
        once: Tried only at the first place the walk reaches with the same ``position``
            (the step, the buttons, …) or the same ``step``, not at every place.
    """

    label: str
    event: Event
    kind: Kind = Kind.ANSWER
    wait: timedelta = timedelta(0)
    then: Event | None = None
    once: str = ""
    chooses: bool = False
    prelude: bool = False


@dataclass(frozen=True, slots=True)
class Client:
    """A simulated client: who they are when the walk starts.

    Attributes:
        name: A short name for reports.
        about: One line for a report: who this client is.
        opt_ins: The optional opt-ins they give (those the script needs are always given).
        top_level: At the contract's top level (else at level 1).
        due_step_up: The contract's rule for offering a step up already holds at their level.
        connection: A moment of connection they noted earlier, if any.
        at_menu: What they do at the menu before choosing, in order: ``("type", TEXT)``
            (``{crisis}`` in it stands for crisis language), ``("press", BUTTON_KEY)`` or
            ``("start", "")``.
    """

    name: str
    about: str
    opt_ins: frozenset[Opt] = frozenset()
    top_level: bool = False
    due_step_up: bool = False
    connection: str | None = None
    at_menu: tuple[tuple[str, str], ...] = ()

    def first_state(self, state: ClientState) -> ClientState:
        """Shape a new client's state (from :meth:`~bot.engine.Engine.new_state`)."""
        if self.top_level:
            state.level = state.contract.max_level
        if self.due_step_up:
            needed = state.contract.advance.completed_at_level
            state.progress.completed_at_level[str(state.level)] = needed
        if self.connection is not None:
            state.progress.connections = 1
            state.progress.last_connection = self.connection
        return state


_ALL = frozenset({Opt.STORE_FREE_TEXT, Opt.SHARE_WITH_THERAPIST, Opt.REMINDERS,
                  Opt.ALERT_THERAPIST})
#: The clients every script is walked with, in order.
CLIENTS = (
    Client("level-1", "level 1, due to be offered a step up, no optional opt-in",
           due_step_up=True),
    Client("top-level", "at the contract's top level, every opt-in, a moment of connection "
           "noted", opt_ins=_ALL, top_level=True, connection="coffee with Sam"),
    Client("after-crisis", "the top-level client after crisis language at the menu and "
           "\"I'm safe\"", opt_ins=_ALL, top_level=True, connection="coffee with Sam",
           at_menu=(("type", "{crisis}"), ("press", "safe"), ("start", ""))),
)


@dataclass(frozen=True, slots=True)
class Place:
    """What the client sees and has at one place of the walk.

    Attributes:
        state: The client's state.
        now: The clock.
        new: The client has not written yet.
        keyboard: The buttons of the newest message that had any.
        fresh: Whether those came with the last reply.
        asked: What the last reply asked for in words, as :meth:`Planner.asked` names it.
        timers: The timers the engine asked for, by kind.
        toggled: The last input ticked or unticked a button (a body cue) in place.
        chosen: The script was chosen from the menu.
        prelude: How many of the client's menu actions are done.
        ending: The session is over (it ran, or could not start).
    """

    state: ClientState
    now: datetime
    new: bool = False
    keyboard: tuple[ButtonSpec, ...] = ()
    fresh: bool = False
    asked: str = ""
    timers: tuple[tuple[str, datetime], ...] = ()
    toggled: bool = False
    chosen: bool = False
    prelude: int = 0
    ending: bool = False


@dataclass
class Planner:
    """Lists every input of a client at a place, in a stable order."""

    script: LoadedScript
    resources: Resources
    labels: Labels
    crisis_text: str | None
    handle: Callable[[ClientState, Event, datetime], Outcome]
    _required: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._required = frozenset(c.value for c in self.script.meta.consent)

    def acts(self, client: Client, place: Place) -> list[Act]:
        """Every input at ``place``, answers first, then time, then probes."""
        if not place.chosen:
            found = self._before_choosing(client, place)
        elif place.ending:
            found = [self._press(b) for b in place.keyboard] if place.fresh else []
        else:
            found = self._in_session(place)
        return found + self._probes(place)

    def asked(self, messages: list[Message]) -> str:
        """What a reply asks for in words: ``timezone``, ``reminder-time``, ``expected`` or
        ``actual`` (0–10: how hard the client expects the exercise to be, how hard it was), or
        nothing."""
        last = messages[-1].text if messages else ""
        labels = self.labels
        return {labels.ask_timezone: "timezone", labels.ask_reminder_time: "reminder-time",
                labels.expected: "expected", labels.actual: "actual"}.get(last, "")

    # -- before the script ------------------------------------------------------------------
    def _before_choosing(self, client: Client, place: Place) -> list[Act]:
        labels = self.labels
        names = [b.label for b in place.keyboard] if place.fresh else []
        if place.new:
            return [Act("/start", Start(display_name=NAME))]
        if names in ([labels.agree, labels.decline], [labels.yes, labels.no]):
            go, back = place.keyboard
            return [self._press(go), self._press(back, Kind.PROBE)]
        if names == [labels.opt_in, labels.opt_out]:
            return self._opt_in(client, place)
        if place.asked == "timezone":
            return [self._type(TIMEZONE)]
        if place.asked == "reminder-time":
            return [self._type(REMINDER_AT)]
        if place.prelude < len(client.at_menu) and (place.prelude or self._menu(place)):
            act = self._menu_action(client.at_menu[place.prelude], place)
            return [act] if act is not None else []
        title = self._menu(place)
        if title is not None:
            return [self._press(title, chooses=True)]
        return []

    def _menu(self, place: Place) -> ButtonSpec | None:
        """The menu button of this script, if the menu is showing."""
        title = self.script.meta.title[:40]
        if not place.fresh or place.state.session is not None:
            return None
        return next((b for b in place.keyboard if b.label == title), None)

    def _menu_action(self, action: tuple[str, str], place: Place) -> Act | None:
        """One of the client's actions at the menu: type a text, press a button, or /start."""
        what, value = action
        if what == "type":
            text = value.replace("{crisis}", self.crisis_text or "")
            return Act(f'type "{text}"', Text(text=text, display_name=NAME), prelude=True)
        if what == "press":
            label = self.resources.texts.label(f"buttons.{value}")
            button = next((b for b in place.keyboard if b.label == label), None)
            return None if button is None else self._press(button, prelude=True)
        return Act("/start", Start(display_name=NAME), prelude=True)

    def _opt_in(self, client: Client, place: Place) -> list[Act]:
        """Give or decline an opt-in as the client does; the other answer is a probe."""
        give, decline = place.keyboard
        trial = self.handle(place.state, Button(data=give.data, display_name=NAME), place.now)
        gained = set(trial.state.consents) - set(place.state.consents)
        wanted = {o.value for o in client.opt_ins} | self._required
        if gained <= wanted:
            return [self._press(give), self._press(decline, Kind.PROBE)]
        return [self._press(decline), self._press(give, Kind.PROBE)]

    # -- in the script ----------------------------------------------------------------------
    def _in_session(self, place: Place) -> list[Act]:
        state = place.state
        labels = self.labels
        acts: list[Act] = []
        names = {b.label for b in place.keyboard}
        ratings = self._ratings(place)
        for button in place.keyboard:
            if button.label in labels.cues and button.label not in labels.cues_walked:
                acts.append(self._press(button, Kind.PROBE))  # one cue of each kind is walked
            elif ratings is None:
                acts.append(self._press(button))
            elif button.label in ratings:
                acts.append(self._press(button, ratings[button.label]))
        if ratings is not None:
            acts.append(self._type(str(LOW)))  # typed, not pressed
        acts.extend(self._type(text) for text in self._free_texts(state))
        for command, label in (("skip", labels.skip), ("smaller", labels.smaller)):
            if label not in names:
                acts.append(Act(f"/{command}", Command(name=command, display_name=NAME)))
        if labels.pause not in names and running(state):
            acts.append(Act("/pause, then /resume", Command(name="pause", display_name=NAME),
                            then=Command(name="resume", display_name=NAME)))
        for kind, due in place.timers:
            if kind == "silence":
                acts.append(Act(f"{_minutes(due - place.now)} minutes of silence: the silence "
                                "timer fires", TimerFired(kind=kind, due_iso=due.isoformat()),
                                Kind.TIME, wait=due - place.now))
        cap = self._cap(place)
        if cap is not None:
            acts.append(cap)
        return acts

    def _ratings(self, place: Place) -> dict[str, Kind] | None:
        """The rating buttons to press if the keyboard is a 0–10 scale, else None.

        A distress rating is walked on from low and from the threshold; 10 is checked too
        (it must lead where the threshold does). How hard the client expects something to
        be is walked on from low (10 checked); how hard it was, from low and from 10.
        """
        names = [b.label for b in place.keyboard]
        if names != [str(n) for n in range(HIGH + 1)]:
            return None
        if place.asked == "expected":
            return {str(LOW): Kind.ANSWER, str(HIGH): Kind.PROBE}
        if place.asked == "actual":
            return {str(LOW): Kind.ANSWER, str(HIGH): Kind.ANSWER}
        threshold = self._threshold(place.state)
        values = {LOW: Kind.ANSWER, threshold: Kind.ANSWER}
        values.setdefault(HIGH, Kind.PROBE)
        return {str(v): kind for v, kind in values.items()}

    def _threshold(self, state: ClientState) -> int:
        """The rating that counts as high here: the contract's, or the check-in's if lower."""
        limit = state.contract.distress_threshold
        step_id = step_at(state)
        step = self.script.steps.get(step_id) if step_id is not None else None
        own = step.checkin.high if step is not None and step.checkin is not None else None
        return min(limit, own) if own is not None else limit

    def _free_texts(self, state: ClientState) -> list[str]:
        """Free text to type: words, or numbers at the bounds of a number question."""
        step_id = step_at(state)
        step = self.script.steps.get(step_id) if step_id is not None else None
        rules = step.ask.free_text if step is not None and step.ask is not None else None
        if rules is None:
            return [WORDS]
        if rules.number:
            bounds = [v for v in (rules.min, rules.max) if v is not None]
            return [str(v) for v in dict.fromkeys(bounds or [3])]
        text = WORDS
        while len(text) < rules.min_length:
            text = f"{text} {WORDS}"
        return [text[: rules.max_length]]

    def _cap(self, place: Place) -> Act | None:
        """The session's time cap passing, then the client's first button (or some words)."""
        session = place.state.session
        if session is None or not running(place.state):
            return None
        cap = timedelta(minutes=place.state.contract.session_minutes)
        if place.now - session.started_at >= cap:
            return None
        wait = session.started_at + cap - place.now
        then = (Button(data=place.keyboard[0].data, display_name=NAME) if place.keyboard
                else Text(text=WORDS, display_name=NAME))
        what = f'press "{place.keyboard[0].label}"' if place.keyboard else f'type "{WORDS}"'
        return Act(f"{_minutes(wait)} minutes pass (the session cap), then {what}", then,
                   Kind.TIME, wait=wait, once="step")

    # -- probes -----------------------------------------------------------------------------
    def _probes(self, place: Place) -> list[Act]:
        probes = [Act("/stop", Command(name="stop", display_name=NAME), Kind.STOP),
                  Act(f'type "{STOP_WORD}"', Text(text=STOP_WORD, display_name=NAME),
                      Kind.STOP, once="position")]
        if self.crisis_text is not None:
            probes.append(Act(f'type "{self.crisis_text}"',
                              Text(text=self.crisis_text, display_name=NAME), Kind.CRISIS))
            probes.append(Act(f'type "{self.crisis_text}", then "{NOT_SAFE}"',
                              Text(text=self.crisis_text, display_name=NAME), Kind.NOT_SAFE,
                              then=Text(text=NOT_SAFE, display_name=NAME), once="position"))
        intents = self.resources.intents
        for text, kind in ((STOP_REQUEST, Kind.STOP_REQUEST), (UNDER_AROUSAL, Kind.UNDER_AROUSAL)):
            if (intents.stop_request(text) if kind is Kind.STOP_REQUEST
                    else intents.under_arousal(text)):
                probes.append(Act(f'type "{text}"', Text(text=text, display_name=NAME), kind,
                                  once="position"))
        return probes

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _press(button: ButtonSpec, kind: Kind = Kind.ANSWER, *, chooses: bool = False,
               prelude: bool = False) -> Act:
        return Act(f'press "{button.label}"', Button(data=button.data, display_name=NAME),
                   kind, chooses=chooses, prelude=prelude)

    @staticmethod
    def _type(text: str) -> Act:
        return Act(f'type "{text}"', Text(text=text, display_name=NAME))


#: A stop request in words and an under-arousal cue, tried at every place (when the locale's
#: intents read them so).
STOP_REQUEST, UNDER_AROUSAL = "please stop", "I feel numb, kind of far away"
#: Messages with crisis language; the walk uses the first that the configured rules detect.
CRISIS_SENTENCES = ("I don't know. I want to kill myself.", "I want to die.",
                    "I want to end my life.")


def crisis_sentence(resources: Resources) -> str | None:
    """A message the configured crisis rules detect, if any of :data:`CRISIS_SENTENCES` is."""
    return next((t for t in CRISIS_SENTENCES if resources.crisis.scan(t)), None)


#: How long after "not safe" the silence and reminder timers are fired, to see that they
#: bring no exercise.
AFTER_NOT_SAFE = timedelta(hours=1)


def inputs_after_not_safe(keyboard: tuple[ButtonSpec, ...]) -> list[Event]:
    """What a client may send after answering "not safe": words, /resume, /start, and a press
    of every button they had before."""
    return [Text(text="ok", display_name=NAME), Text(text=WORDS, display_name=NAME),
            Command(name="resume", display_name=NAME), Start(display_name=NAME),
            *(press(b) for b in keyboard)]


def press(button: ButtonSpec) -> Button:
    """A press of this button."""
    return Button(data=button.data, display_name=NAME)


def _minutes(delta: timedelta) -> int:
    return round(delta.total_seconds() / 60)
