"""A small driver for the pure engine: keeps a client's state, presses buttons, types text.

Tests use it instead of building events by hand::

    d = Driver.new(engine)
    d.consent()                      # core consent, adult, every opt-in declined
    d.pick("first-steps")            # choose the script from the menu
    d.press("Go on")                 # a live button by its label (or by its code)
    d.text("2")                      # free text (a rating here)
    assert d.said("checkin.thanks")

Everything is deterministic: time only moves when a test calls :meth:`Driver.advance`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import build
from bot.config import load_config
from bot.engine import (
    RISK_KINDS,
    SESSION_KINDS,
    Button,
    ButtonSpec,
    ClientState,
    Clinician,
    Command,
    ConsentQuestion,
    CrisisQuestion,
    Effect,
    Engine,
    Event,
    Kept,
    LedgerEntry,
    LevelQuestion,
    MenuQuestion,
    Message,
    NonText,
    Opt,
    Outcome,
    Part,
    Policy,
    Question,
    Resources,
    Row,
    Start,
    StopQuestion,
    Text,
    TimerFired,
)
from bot.engine._context import Context
from bot.render import plain_text
from bot.script import LoadedScript, Severity
from bot.service import Handled, Rehearsal

#: A quiet Wednesday morning (UTC), the same start as ``tests.conftest.Clock``.
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
#: A phrase from the shipped English crisis list.
CRISIS = "honestly I just want to die"


def engine_with(
    base: Engine,
    *,
    scripts: dict[str, LoadedScript] | None = None,
    **policy: object,
) -> Engine:
    """A new engine sharing ``base``'s texts and crisis detector, with changes.

    Args:
        base: The engine to copy.
        scripts: Scripts to run instead of ``base``'s.
        **policy: :class:`~bot.engine.Policy` fields to replace.
    """
    res = base.resources
    new_policy: Policy = dataclasses.replace(res.policy, **policy)  # type: ignore[arg-type]
    return Engine(Resources(scripts=res.scripts if scripts is None else scripts,
                            texts=res.texts, crisis=res.crisis, intents=res.intents,
                            policy=new_policy))


def script_beside_library(folder: Path, name: str, text: str) -> Path:
    """Write a test's script into ``folder`` with a copy of the shipped ``library.yaml``.

    Includes are read only from the script folders, so a script written by a test includes
    ``library.yaml`` from beside it.
    """
    shipped = Path(__file__).resolve().parents[2] / "scripts" / "library.yaml"
    (folder / "library.yaml").write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def engine_for_files(files: Iterable[Path], **policy: object) -> Engine:
    """An engine running only the given script files (e.g. small YAML written by a test)."""
    loaded = build(load_config(None, {}), list(files))
    bad = [f for f in loaded.findings if f.severity is Severity.ERROR]
    assert loaded.scripts and not bad, [str(f) for f in loaded.findings]
    res = loaded.engine.resources
    new_policy: Policy = dataclasses.replace(res.policy, **policy)  # type: ignore[arg-type]
    return Engine(Resources(scripts=res.scripts, texts=res.texts, crisis=res.crisis,
                            intents=res.intents, policy=new_policy))


def plain_answer(pending: Question | None, part: Part | None, codes: list[str], *,
                 choice: int = 0, rating: int = 2, free_text: str = "a few words",
                 step: str | None = None) -> tuple[str, str]:
    """What a plain client answers to whatever they are asked now.

    Ratings get ``rating`` (low by default), choices the ``choice``-th button, free-text
    questions ``free_text``, everything else the button that goes on.

    Returns:
        ``("press", code)`` or ``("text", text)``.
    """
    if pending == LevelQuestion():
        return "press", "ln"
    if pending == MenuQuestion():
        return "press", "m0"
    assert pending is None, f"a pending question: {pending}"
    if part in (Part.RATING, Part.RECHECK, Part.EXPECTED, Part.ACTUAL):
        return "text", str(rating)
    presses = {Part.RELIEF: "l0", Part.CUES: "kd", Part.SKIP_REASON: "s3",
               # "enough for today?": one more, so that every step is seen
               Part.ENOUGH: "mo",
               Part.READY: "st",  # a scene's frame, at a gentle pace
               Part.SCREEN: "ps",  # a partner scene: safe with them
               Part.PROMPT: "sh", Part.TURN: "sd"}
    if part in presses:
        return "press", presses[part]
    if part is Part.CONNECTION:
        return "text", free_text
    if part is Part.ASK:
        choices = [c for c in codes if c.startswith("c")]
        if choices:
            return "press", choices[min(choice, len(choices) - 1)]
        return "text", free_text
    if part in (Part.PAGE, Part.CALM, Part.SAY):
        return ("press", "go") if "go" in codes else ("text", free_text)
    raise AssertionError(f"do not know how to answer {part!r} at {step!r}")


class Driver:
    """One client talking to the engine.

    Attributes:
        engine: The engine under test.
        state: The client's state after the last event.
        now: The time passed with the next event.
        last: The outcome of the last event.
        history: Every outcome so far, oldest first.
        keyboard: The buttons of the newest message that had any.
        session_rows: The ledger's session rows, handed in with every event as the service does
            (None: none are, as in the explorer; session summaries are then never shown).
        kept: The answers the client's events stored (with their time), handed in with the
            session rows while the client keeps what they type, as the service does.
    """

    def __init__(self, engine: Engine, state: ClientState, now: datetime = T0,
                 name: str | None = "Ada", session_rows: list[Row] | None = None) -> None:
        self.engine = engine
        self.state = state
        self.now = now
        self.name = name
        self.last = Outcome(state=state)
        self.history: list[Outcome] = []
        self.keyboard: list[ButtonSpec] = []
        self.session_rows = session_rows
        self.kept: list[Kept] = []

    @classmethod
    def new(cls, engine: Engine, client_id: str = "test:ada", now: datetime = T0, *,
            ledger: bool = False) -> Driver:
        """A client the engine has never seen (``ledger``: hand in their session rows)."""
        return cls(engine, engine.new_state(client_id), now, session_rows=[] if ledger else None)

    def fork(self) -> Driver:
        """An independent copy at the same place (for trying several answers)."""
        copy = Driver(self.engine, self.state.model_copy(deep=True), self.now, self.name,
                      None if self.session_rows is None else list(self.session_rows))
        copy.kept = list(self.kept)
        copy.keyboard = list(self.keyboard)
        copy.history = list(self.history)
        copy.last = self.last
        return copy

    # -- events ---------------------------------------------------------------------------
    def send(self, event: Event) -> Outcome:
        """Handle one event and remember its outcome."""
        if self.session_rows is not None:
            keeps = Opt.STORE_FREE_TEXT.value in self.state.consents
            self.state = self.state.model_copy(update={
                "history": list(self.session_rows), "kept": list(self.kept) if keeps else []})
        out = self.engine.handle(self.state, event, self.now)
        if self.session_rows is not None:
            self.session_rows += [Row(kind=e.kind, data=e.data, at=self.now) for e in out.ledger
                          if e.kind in SESSION_KINDS]
            if Effect.DROP_ANSWERS in out.effects:
                self.kept = []
            self.kept += [Kept(step=a.step, text=a.text, at=self.now, kind=a.kind)
                          for a in out.answers]
        self.state = out.state
        self.last = out
        self.history.append(out)
        for message in out.messages:
            if message.buttons:
                self.keyboard = [b for row in message.buttons for b in row]
        return out

    def text(self, text: str) -> Outcome:
        """Type a message."""
        return self.send(Text(text=text, display_name=self.name))

    def command(self, name: str, args: str = "") -> Outcome:
        """Send a slash command other than ``/start`` (name without the slash)."""
        return self.send(Command(name=name, args=args, display_name=self.name))

    def start(self, payload: str | None = None) -> Outcome:
        """Send ``/start``."""
        return self.send(Start(payload=payload, display_name=self.name))

    def non_text(self, kind: str = "photo") -> Outcome:
        """Send something that is not text (a photo, a sticker…)."""
        return self.send(NonText(kind=kind, display_name=self.name))

    def press_data(self, data: str) -> Outcome:
        """Press a button with exactly this callback data (live, stale or forged)."""
        return self.send(Button(data=data, display_name=self.name))

    def press(self, label_or_code: str) -> Outcome:
        """Press a live button, found by its label or by its code."""
        return self.press_data(self.button(label_or_code).data)

    def fire(self, kind: str, due: datetime | None = None) -> Outcome:
        """Fire a timer of this kind (due now unless given)."""
        return self.send(TimerFired(kind=kind, due_iso=(due or self.now).isoformat()))

    def advance(self, **delta: float) -> datetime:
        """Move time forward, e.g. ``advance(minutes=11)``."""
        self.now += timedelta(**delta)
        return self.now

    # -- reading ----------------------------------------------------------------------------
    def button(self, label_or_code: str) -> ButtonSpec:
        """A live button by label or code; fails the test if there is none."""
        for spec in self.keyboard:
            if spec.label == label_or_code or spec.data.partition(":")[2] == label_or_code:
                return spec
        raise AssertionError(f"no button {label_or_code!r} in {self.labels()}")

    def has_button(self, label_or_code: str) -> bool:
        """Whether a live button has this label or code."""
        return any(s.label == label_or_code or s.data.partition(":")[2] == label_or_code
                   for s in self.keyboard)

    def labels(self) -> list[str]:
        """The live buttons' labels."""
        return [b.label for b in self.keyboard]

    def codes(self) -> list[str]:
        """The live buttons' codes (callback data without the keyboard number)."""
        return [b.data.partition(":")[2] for b in self.keyboard]

    @property
    def messages(self) -> list[Message]:
        """The messages of the last event."""
        return self.last.messages

    def texts(self) -> list[str]:
        """The texts of the last event's messages (Telegram HTML)."""
        return [m.text for m in self.last.messages]

    def plain(self) -> str:
        """The last event's messages as the client reads them, joined by blank lines."""
        return "\n\n".join(plain_text(m.text) for m in self.last.messages)

    def render(self, key: str, **context: object) -> str:
        """A system text as the engine sends it."""
        return str(self.engine.resources.texts.system(key, **context)).strip()

    def local_time(self, when: datetime) -> str:
        """A moment as the engine shows it to this client (their time zone)."""
        return Context(self.engine.resources, self.state, self.now, None).local_time(when)
    def paused_text(self) -> str:
        """The "paused" reply here: in a scene's role, it steps out of the role."""
        session = self.state.session
        script = self.engine.resources.scripts.get(session.script) if session else None
        step = script.steps.get(session.frame.step) if script and session else None
        play = step.roleplay if step is not None else None
        frame = session.frame if session else None
        in_role = (play is not None and frame is not None and frame.turn < len(play.turns)
                   and frame.part in (Part.TURN, Part.RATING) and not frame.closing)
        return self.render("pause.done", character=play.character if in_role and play else None)

    def label(self, key: str) -> str:
        """A button label from the system texts (``buttons.KEY``)."""
        return self.engine.resources.texts.label(f"buttons.{key}")

    def said(self, key: str, **context: object) -> bool:
        """Whether the last event sent this system text."""
        return self.render(key, **context) in self.texts()

    def ledger(self) -> list[LedgerEntry]:
        """The last event's ledger rows."""
        return self.last.ledger

    def kinds(self) -> list[str]:
        """The kinds of the last event's ledger rows."""
        return [e.kind for e in self.last.ledger]

    def all_ledger(self) -> list[LedgerEntry]:
        """Every ledger row so far."""
        return [e for out in self.history for e in out.ledger]

    def rows(self, kind: str) -> list[dict[str, object]]:
        """The data of every ledger row of this kind so far."""
        return [e.data for e in self.all_ledger() if e.kind == kind]

    def resources_text(self, text: str | None = None, *, running: bool = False,
                       scene: bool = False) -> str:
        """The first crisis message: for ``text`` (what the client wrote), else for /sos."""
        lines = self.engine.resources.policy.lines(self.state.settings.region)
        detection = self.engine.resources.crisis.scan(text) if text is not None else None
        return self.render("crisis.resources", **{
            **lines.crisis_context(detection, running=running, scene=scene),
            "plan": self.plan_text()})

    def plan_text(self) -> str:
        """The client's safety plan as the engine shows it ("" without one)."""
        return Context(self.engine.resources, self.state, self.now, None).plan_text()

    # -- places -----------------------------------------------------------------------------
    @property
    def step(self) -> str | None:
        """The step the client is at, if a session runs."""
        return self.state.session.frame.step if self.state.session else None

    @property
    def part(self) -> Part | None:
        """The part of the step awaiting input, if a session runs."""
        return self.state.session.frame.part if self.state.session else None

    # -- common flows -----------------------------------------------------------------------
    def consent(self, *, free_text: bool = False, share: bool = False,
                reminders: bool = False, alert: bool = False, timezone: str = "Europe/London",
                at: str = "19:00") -> Outcome:
        """Start, agree to the terms, confirm being an adult and answer each opt-in."""
        self.start()
        self.press(self.label("agree"))
        if self.state.pending == ConsentQuestion(step="adult"):
            self.press(self.label("yes"))
        for wanted in (free_text, share, reminders, alert):
            self.press(self.label("opt_in" if wanted else "opt_out"))
        if reminders:
            self.text(timezone)
            self.text(at)
        assert self.state.pending == MenuQuestion(), self.plain()
        return self.last

    def pick(self, script_id: str) -> Outcome:
        """Choose a script from the menu (asks for the menu first if it is not showing)."""
        if self.state.pending != MenuQuestion():
            self.start()
        title = self.engine.resources.scripts[script_id].meta.title[:40]
        return self.press(title)

    def answer_current(self, choice: int = 0, *, rating: int = 2,
                       free_text: str = "a few words") -> Outcome:
        """Answer whatever the client is asked now in the plainest way (see `plain_answer`)."""
        how, value = plain_answer(self.state.pending, self.part, self.codes(), choice=choice,
                                  rating=rating, free_text=free_text, step=self.step)
        return self.press(value) if how == "press" else self.text(value)

    def walk_until(self, done: Callable[[Driver], bool], *, limit: int = 200,
                   **answers: object) -> Driver:
        """Answer plainly until ``done`` holds (fails if the session ends first)."""
        for _ in range(limit):
            if done(self):
                return self
            assert self.state.session is not None, f"the session ended first: {self.plain()}"
            self.answer_current(**answers)  # type: ignore[arg-type]
        raise AssertionError("did not get there")

    def walk_to_end(self, *, limit: int = 200, **answers: object) -> Driver:
        """Answer plainly until the session is over."""
        for _ in range(limit):
            if self.state.session is None:
                return self
            self.answer_current(**answers)  # type: ignore[arg-type]
        raise AssertionError("the session did not end")

    def at(self, step: str, part: str | None = None) -> Driver:
        """Walk on until the client is at ``step`` (and ``part``, e.g. ``"rating"``)."""
        return self.walk_until(lambda d: d.step == step and (part is None or d.part == part))


# -- through the service ---------------------------------------------------------------------


class ServiceClient:
    """One client talking to :class:`~bot.service.Rehearsal`, pressing buttons by label or code."""

    _ids = itertools.count(1)

    def __init__(self, service: Rehearsal, client_id: str = "tg:1") -> None:
        self.service = service
        self.client_id = client_id
        self.keyboard: list[ButtonSpec] = []
        self.last: Handled | None = None

    async def send(self, event: Event, event_id: str | None = None) -> Handled:
        """Handle one event through the service (a fresh event id unless given)."""
        handled = await self.service.handle(
            self.client_id, event_id or f"ev:{next(self._ids)}", event)
        if handled.outcome is not None:
            for message in handled.outcome.messages:
                if message.buttons:
                    self.keyboard = [b for row in message.buttons for b in row]
        self.last = handled
        return handled

    async def press(self, label_or_code: str) -> Handled:
        """Press a live button by label or code."""
        for spec in self.keyboard:
            if label_or_code in (spec.label, spec.data.partition(":")[2]):
                return await self.send(Button(data=spec.data))
        raise AssertionError(f"no button {label_or_code!r}")

    async def consent(self) -> None:
        """Agree, confirm being an adult, decline every opt-in."""
        await self.send(Start())
        for label in ("I agree", "Yes", "No, thanks", "No, thanks", "No, thanks", "No, thanks"):
            await self.press(label)

    async def answer_current(self, choice: int = 0, *, rating: int = 2,
                             free_text: str = "a few words") -> Handled:
        """Answer what the client is asked now in the plainest way (see `plain_answer`)."""
        state = await self.service.state_of(self.client_id)
        codes = [b.data.partition(":")[2] for b in self.keyboard]
        frame = state.session.frame if state.session else None
        how, value = plain_answer(state.pending, frame.part if frame else None, codes,
                                  choice=choice, rating=rating, free_text=free_text,
                                  step=frame.step if frame else None)
        return await (self.press(value) if how == "press" else self.send(Text(text=value)))

    async def to_first_checkin(self) -> None:
        """From the menu to the first check-in of first-steps."""
        await self.press("First steps in sharing")
        for _ in range(3):
            await self.press("go")


# -- shared assertions ----------------------------------------------------------------------


def assert_halted(d: Driver, had_session: bool, via: str) -> None:
    """One stop confirmation, a `stopped` row, every timer and queued message cancelled."""
    assert d.state.halted
    assert d.state.session is None
    assert len(d.messages) == 1, d.plain()
    message = d.messages[0]
    assert message.text == d.render("stop.confirm")
    assert [[b.label for b in row] for row in message.buttons] == [
        [d.label("only_this")], [d.label("withdraw")]]
    assert d.state.pending == StopQuestion()
    assert "*" in d.last.timers_cancel
    assert not d.last.timers_set
    assert Effect.CANCEL_OUTBOX in d.last.effects
    stopped = [e for e in d.ledger() if e.kind == "stopped"]
    assert len(stopped) == 1 and stopped[0].data == {"via": via}
    ended = [e for e in d.ledger() if e.kind == "session_ended"]
    if had_session:
        assert len(ended) == 1
        assert ended[0].data["completed"] is False and ended[0].data["reason"] == "stop"
    else:
        assert not ended
    assert not d.state.silence_armed


def running(d: Driver) -> bool:
    """Whether a session runs (not paused)."""
    return d.state.session is not None and not d.state.session.paused


def in_scene(d: Driver) -> bool:
    """Whether the bot plays a role-play character now (the scene's frame shown, lines left;
    not while a partner scene first asks whether the client feels safe with their partner)."""
    session = d.state.session
    if session is None:
        return False
    play = d.engine.resources.scripts[session.script].steps[session.frame.step].roleplay
    return (play is not None and session.frame.part not in (Part.SCREEN, Part.READY)
            and session.frame.turn < min(len(play.turns), d.state.contract.roleplay_turns))


def assert_crisis(d: Driver, text: str, *, had_session: bool, running: bool,
                  plan: bool = False, scene: bool = False) -> None:
    """The crisis sequence in order, the session paused, a hold set, the text kept nowhere.

    ``scene``: the client was inside a role-play scene, which the first message steps out of.
    """
    texts = d.texts()
    # the client's plan, if any, is in the first message, right after the emergency number
    assert bool(d.plan_text()) is plan
    expected = [d.resources_text(text, running=running, scene=scene and running),
                d.render("crisis.are_you_safe")]
    assert texts == expected
    assert [[b.label for b in row] for row in d.messages[-1].buttons] == [
        [d.label("safe")], [d.label("not_safe")], [d.label("not_sure")]]
    assert d.state.pending == CrisisQuestion()
    assert d.state.crisis_hold_since == d.now
    if had_session:
        assert d.state.session is not None and d.state.session.paused
    rows = [e for e in d.ledger() if e.kind == "crisis_language"]
    assert len(rows) == 1
    # the fact, the step and the kinds only: never the words, nor rule names paraphrasing them
    assert set(rows[0].data) == {"step", "kinds", "imminent"}
    assert rows[0].data["kinds"] and set(rows[0].data["kinds"]) <= set(RISK_KINDS)
    recorded = json.dumps([e.data for e in d.ledger()])
    assert text.lower() not in recorded.lower()
    assert text not in d.state.model_dump_json()
    assert d.last.answers == []
    assert "stopped" not in d.kinds()


# -- situations --------------------------------------------------------------------------------


def _consented(engine: Engine, **opts: bool) -> Driver:
    d = Driver.new(engine)
    d.consent(**opts)  # type: ignore[arg-type]
    return d


def _then(d: Driver, act: Callable[[Driver], object]) -> Driver:
    copy = d.fork()
    act(copy)
    return copy


def build_situations(engine: Engine) -> dict[str, Driver]:
    """One client per situation, each reached by driving the engine from the start."""
    s: dict[str, Driver] = {}
    s["consent pending"] = _then(Driver.new(engine), lambda d: d.start())
    menu = _consented(engine)
    s["menu pending"] = menu

    fs = _then(menu, lambda d: d.pick("first-steps"))
    s["say"] = fs
    s["checkin rating"] = _then(fs, lambda d: d.at("checkin-before", "rating"))
    s["checkin expected"] = _then(s["checkin rating"], lambda d: d.text("2"))
    s["calm exercise page"] = _then(s["checkin rating"], lambda d: d.text("9"))
    s["recheck"] = _then(s["calm exercise page"],
                         lambda d: d.walk_until(lambda x: x.part == "recheck"))
    s["prompt"] = _then(fs, lambda d: d.at("prompt-1", "prompt"))
    s["skip reason"] = _then(s["prompt"], lambda d: d.press("sk"))
    s["ask with buttons"] = _then(fs, lambda d: d.at("after-prompt-1", "ask"))
    after = _then(s["ask with buttons"], lambda d: d.press("c1"))
    s["checkin actual"] = _then(after, lambda d: (d.at("checkin-after", "rating"),
                                                  d.text("2")))
    s["checkin relief"] = _then(s["checkin actual"], lambda d: d.text("2"))

    nb = _then(menu, lambda d: d.pick("noticing-the-body"))
    s["checkin cues"] = _then(nb, lambda d: d.at("checkin-before", "cues"))
    s["exercise page"] = _then(nb, lambda d: d.at("breathe", "page"))
    s["ask with free text"] = _then(nb, lambda d: d.at("what-did-you-learn", "ask"))

    tf = _then(menu, lambda d: d.pick("telling-a-friend"))
    s["roleplay turn"] = _then(tf, lambda d: d.at("scene", "turn"))
    s["roleplay check-in"] = _then(s["roleplay turn"], lambda d: d.at("scene", "rating"))

    sc = _then(menu, lambda d: d.pick("story-of-connection"))
    s["connection"] = _then(sc, lambda d: d.at("note-it", "connection"))
    s["journaling write page"] = _then(
        sc, lambda d: d.walk_until(lambda x: x.step == "story" and x.part == "page"
                                   and x.codes() == ["sk"]))

    s["paused"] = _then(s["prompt"], lambda d: d.command("pause"))
    s["halted"] = _then(s["prompt"], lambda d: d.command("stop"))
    s["crisis question"] = _then(s["prompt"], lambda d: d.text(CRISIS))
    s["settings pending"] = _then(s["prompt"], lambda d: d.command("settings"))
    s["weekly check-in pending"] = _then(menu, lambda d: (
        d.send(Clinician(action="outcomes-on", by="tg:9000")), d.start()))

    leveller = Driver.new(engine)
    leveller.state.contract.advance.completed_at_level = 1
    leveller.consent()
    leveller.pick("first-steps")
    leveller.walk_to_end()
    s["level offer pending"] = leveller
    return s


SITUATIONS = (
    "consent pending", "menu pending", "say", "checkin rating", "checkin expected",
    "calm exercise page", "recheck", "prompt", "skip reason", "ask with buttons",
    "checkin actual", "checkin relief", "checkin cues", "exercise page", "ask with free text",
    "roleplay turn", "roleplay check-in", "connection", "journaling write page", "paused",
    "halted", "crisis question", "settings pending", "level offer pending",
    "weekly check-in pending",
)
#: Situations with a session running and waiting for an answer to a script step.
AT_STEP = {
    "say": ("welcome", "say"), "checkin rating": ("checkin-before", "rating"),
    "checkin expected": ("checkin-before", "expected"),
    "calm exercise page": ("checkin-before", "calm"), "recheck": ("checkin-before", "recheck"),
    "prompt": ("prompt-1", "prompt"), "skip reason": ("prompt-1", "skip_reason"),
    "ask with buttons": ("after-prompt-1", "ask"), "checkin actual": ("checkin-after", "actual"),
    "checkin relief": ("checkin-after", "relief"), "checkin cues": ("checkin-before", "cues"),
    "exercise page": ("breathe", "page"), "ask with free text": ("what-did-you-learn", "ask"),
    "roleplay turn": ("scene", "turn"), "roleplay check-in": ("scene", "rating"),
    "connection": ("note-it", "connection"), "journaling write page": ("story", "page"),
}
