"""The walk: breadth first through every place a client can reach, through the real engine.

Places are told apart by the client's state (:func:`~bot.explore._observe.canonical`), the
timers the engine asked for, the buttons the client sees and what the invariants remember, so
a place reached twice is walked on from once. Inputs are tried in a fixed order, so a walk is
the same on every run; its fingerprint is a digest of every transition in that order.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.engine import (
    Button,
    ClientState,
    Command,
    Engine,
    Event,
    Outcome,
    Resources,
    Start,
    Text,
    TimerFired,
)
from bot.explore._clients import (
    AFTER_NOT_SAFE,
    CLIENTS,
    NAME,
    Act,
    Client,
    Kind,
    Place,
    Planner,
    crisis_sentence,
    inputs_after_not_safe,
    press,
)
from bot.explore._observe import (
    Canonical,
    Labels,
    Remembered,
    RememberedDetector,
    keyboard_of,
    projection,
    relative,
    running,
    step_at,
)
from bot.explore._rules import Problem, Rules, Watch, timers_after_stop
from bot.script import LoadedScript, Mark

#: When every walk starts: a quiet Wednesday morning (UTC).
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
#: The client id of the simulated clients.
CLIENT_ID = "explore:client"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a walk; places beyond them are left unwalked and the walk says so.

    Attributes:
        max_states: Distinct places per script.
        max_depth: Inputs on the shortest path to a place.
    """

    max_states: int = 20_000
    max_depth: int = 400


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken invariant and the shortest path that leads to it.

    Attributes:
        file: The script file.
        line: The line of the step the client was at (or of the ``script:`` block).
        col: Its column.
        code: Which invariant, e.g. ``explore-stop``.
        message: What happened.
        client: Which simulated client, and who they are.
        path: The inputs from the client's first message, one per entry.
        more: How many other paths broke the invariant in the same way.
    """

    file: str
    line: int
    col: int
    code: str
    message: str
    client: str
    path: tuple[str, ...]
    more: int = 0

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}:{self.col}: violation: {self.message} [{self.code}]"
        also = f" (and {self.more:,} more path(s) like it)" if self.more else ""
        lines = [head, f"  client: {self.client}{also}"]
        lines += [f"  {n:>3}. {step}" for n, step in enumerate(self.path, 1)]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """The violation as a JSON-ready mapping."""
        return {"file": self.file, "line": self.line, "col": self.col, "code": self.code,
                "message": self.message, "client": self.client, "path": list(self.path),
                "more": self.more}


@dataclass
class Exploration:
    """What a walk of one script found.

    Attributes:
        script: The script's id.
        file: Its file.
        states: Distinct places walked.
        transitions: Events the engine handled (answers, timers and probes).
        paths: Distinct shortest routes from a client's first message to an end.
        seconds: How long the walk took.
        truncated: Whether :class:`Limits` left places unwalked.
        crisis_tried: Whether crisis language was tried (the configured rules detect one of
            the walk's sentences; they are English).
        violations: Broken invariants, the first of each kind (same code and message), in the
            order found.
        fingerprint: SHA-256 of the transcript.
        transcript: Every transition, one JSON line each (kept only when asked for).
    """

    script: str
    file: str
    states: int = 0
    transitions: int = 0
    paths: int = 0
    seconds: float = 0.0
    truncated: bool = False
    crisis_tried: bool = True
    violations: list[Violation] = field(default_factory=list)
    fingerprint: str = ""
    transcript: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was covered and how long it took."""
        cut = ", stopped at the limits" if self.truncated else ""
        cut += "" if self.crisis_tried else ", crisis language not tried (no sentence detected)"
        return (f"{self.file}: explored {self.states:,} states, {self.transitions:,} "
                f"transitions, {self.paths:,} paths in {self.seconds:.2f} s{cut}; "
                f"{len(self.violations)} violation(s)")

    def to_json(self) -> dict[str, object]:
        """The exploration as a JSON-ready mapping (the transcript left out)."""
        return {"script": self.script, "file": self.file, "states": self.states,
                "transitions": self.transitions, "paths": self.paths,
                "seconds": round(self.seconds, 3), "truncated": self.truncated,
                "crisis_tried": self.crisis_tried,
                "fingerprint": self.fingerprint,
                "violations": [v.to_json() for v in self.violations]}


@dataclass(slots=True)
class _Node:
    index: int
    place: Place
    watch: Watch
    client: Client
    parent: int | None
    via: str
    depth: int


def explore(script: LoadedScript, resources: Resources, *,
            engine: Callable[[Resources], Engine] = Engine, limits: Limits = Limits(),
            clients: tuple[Client, ...] = CLIENTS, keep_transcript: bool = False
            ) -> Exploration:
    """Walk every path of one script through the engine and check the invariants.

    Args:
        script: A script that passed ``rehearse check``.
        resources: Texts, crisis phrases and policy, as the bot builds them; the engine runs
            this script alone.
        engine: Builds the engine (a test may pass a faulty subclass).
        limits: Bounds of the walk.
        clients: The simulated clients.
        keep_transcript: Keep every transition's record in :attr:`Exploration.transcript`.
    """
    own = Resources(scripts={script.id: script}, texts=Remembered(resources.texts),
                    crisis=RememberedDetector(resources.crisis), intents=resources.intents,
                    policy=resources.policy)
    return _Walk(script, engine(own), limits, keep_transcript).run(clients)


class _Walk:
    def __init__(self, script: LoadedScript, engine: Engine, limits: Limits,
                 keep_transcript: bool) -> None:
        self.script = script
        self.engine = engine
        self.limits = limits
        self.keep = keep_transcript
        res = engine.resources
        self.labels = Labels.of(res.texts)
        self.rules = Rules(script, res.policy, res.crisis, self.labels)
        self.planner = Planner(script, res, self.labels, crisis_sentence(res), engine.handle)
        self.nodes: list[_Node] = []
        self.seen: dict[tuple[object, ...], int] = {}
        self.queue: deque[int] = deque()
        self.edges: list[tuple[int, int, Kind]] = []
        self.unwalked: set[int] = set()
        self.found: dict[tuple[str, str], Violation] = {}
        # (position, input) pairs tried, and those that led back to the same place: an input
        # that changes nothing at a place is not tried again at the same position.
        self.tried: set[tuple[object, ...]] = set()
        self.idle: set[tuple[object, ...]] = set()
        self.result = Exploration(script.id, str(script.file),
                                  crisis_tried=self.planner.crisis_text is not None)
        self.hasher = hashlib.sha256()
        self.canonical = Canonical(script)

    def run(self, clients: tuple[Client, ...]) -> Exploration:
        started = time.perf_counter()
        for client in clients:
            state = client.first_state(self.engine.new_state(CLIENT_ID))
            self._add(Place(state, START, new=True), Watch(), client, None, "", 0)
        while self.queue:
            node = self.nodes[self.queue.popleft()]
            if node.depth >= self.limits.max_depth:
                self.unwalked.add(node.index)
                self.result.truncated = True
                continue
            position = _position(node.place)
            for act in self.planner.acts(node.client, node.place):
                tried = (position[0] if act.once == "step" else position, act.label)
                if tried in self.idle or (act.once and tried in self.tried):
                    continue
                self.tried.add(tried)
                if self._try(node, act, position) == node.index:
                    self.idle.add(tried)
        self._check_endings()
        result = self.result
        result.states = len(self.nodes)
        result.paths = self._count_paths()
        result.violations = list(self.found.values())
        result.fingerprint = self.hasher.hexdigest()
        result.seconds = time.perf_counter() - started
        return result

    # -- one transition ---------------------------------------------------------------------
    def _try(self, node: _Node, act: Act, position: tuple[object, ...]) -> int | None:
        """Send one input; returns the place it leads to, if it is walked on from."""
        place = node.place
        now = place.now + act.wait
        outs: list[Outcome] = []
        state = place.state
        for event in (act.event, act.then):
            if event is None:
                continue
            out = self._handle(node, act, state, event, now)
            if out is None:
                return None
            outs.append(out)
            state = out.state
        watch, problems, before = node.watch, [], place.state
        for out in outs:
            watch, found = self.rules.transition(before, out, watch)
            problems += found
            before = out.state
        out = outs[-1]
        after: list[Outcome] = []
        if act.kind is Kind.STOP:
            # Timers firing after a halt: once per position and set of timers the client had.
            fired = (position, "timers after /stop", tuple(k for k, _ in place.timers))
            if fired not in self.tried:
                self.tried.add(fired)
                after = self._after_stop(node, act, out.state, now)
            problems += self.rules.stop(out, after)
        elif act.kind is Kind.CRISIS:
            assert isinstance(act.event, Text)
            problems += self.rules.crisis(out, act.event.text)
        elif act.kind is Kind.NOT_SAFE:
            after = self._after_not_safe(node, act, out.state, now)
            problems += self.rules.not_safe(out, after)
        elif act.kind is Kind.STOP_REQUEST:
            kept = self._keep_going(node, act, out, now)
            after = [kept] if kept is not None else []
            problems += self.rules.stop_request(place.state, out, kept)
        elif act.kind is Kind.UNDER_AROUSAL:
            problems += self.rules.under_arousal(place.state, out)
        # A second tick of a button that ticks in place (a body cue) is checked, not walked on
        # from: one tick per keyboard is walked, not every set of them.
        toggled = any(m.replace_keyboard for o in outs for m in o.messages)
        walked = act.kind.walked and not (toggled and place.toggled)
        target = self._arrive(node, act, outs, now, watch, toggled) if walked else None
        self._record(node, act, target, [*outs, *after], now)
        for problem in problems:
            self._report(node, problem, out.state, act.label)
        return target

    def _handle(self, node: _Node, act: Act, state: ClientState, event: Event,
                now: datetime) -> Outcome | None:
        self.result.transitions += 1
        try:
            return self.engine.handle(state, event, now)
        except Exception as exc:  # any engine fault is a finding, with its path
            problem = Problem("explore-engine-error",
                              f"the engine failed: {type(exc).__name__}: {exc}")
            self._report(node, problem, state, act.label)
            return None

    def _after_stop(self, node: _Node, act: Act, state: ClientState, now: datetime
                    ) -> list[Outcome]:
        """Fire the timers after a /stop, as if cancelling them came too late."""
        outcomes = []
        for event, when in timers_after_stop(node.place.timers, now):
            out = self._handle(node, act, state, event, when)
            if out is None:
                break
            outcomes.append(out)
            state = out.state
        return outcomes

    def _after_not_safe(self, node: _Node, act: Act, state: ClientState, now: datetime
                        ) -> list[Outcome]:
        """What a client may do after "not safe": write, /resume, /start (and press the first
        button they are then offered), press the buttons they had, let an hour pass for the
        timers."""
        events = [*inputs_after_not_safe(node.place.keyboard),
                  *(TimerFired(kind=kind, due_iso=(now + AFTER_NOT_SAFE).isoformat())
                    for kind in ("silence", "reminder"))]
        outcomes: list[Outcome] = []
        while events:
            event = events.pop(0)
            when = now + AFTER_NOT_SAFE if isinstance(event, TimerFired) else now
            out = self._handle(node, act, state, event, when)
            if out is None:
                break
            outcomes.append(out)
            state = out.state
            offered = keyboard_of(out.messages)
            if isinstance(event, Start | Command) and offered:
                events.insert(0, press(offered[0]))
        return outcomes

    def _keep_going(self, node: _Node, act: Act, asked: Outcome, now: datetime
                    ) -> Outcome | None:
        """Press "Keep going" after a stop request, if it was offered."""
        keep = self.labels.keep_going
        offered = [b for m in asked.messages for row in m.buttons for b in row
                   if b.label == keep]
        if not offered:
            return None
        return self._handle(node, act, asked.state,
                            Button(data=offered[-1].data, display_name=NAME), now)

    def _arrive(self, node: _Node, act: Act, outs: list[Outcome], now: datetime,
                watch: Watch, toggled: bool) -> int | None:
        """The place an input leads to: an existing one, a new one, or none (at the limit)."""
        place = node.place
        timers = dict(place.timers)
        if isinstance(act.event, TimerFired):
            timers.pop(act.event.kind, None)
        keyboard = None
        for out in outs:
            if "*" in out.timers_cancel:
                timers.clear()
            for kind in out.timers_cancel:
                timers.pop(kind, None)
            for request in out.timers_set:
                timers[request.kind] = request.due
            keyboard = keyboard_of(out.messages) or keyboard
        chosen = place.chosen or act.chooses
        state = outs[-1].state
        labels = [b.label for b in keyboard] if keyboard is not None else None
        # A keyboard ticked in place stays "ticked" while it is shown again unchanged.
        toggled = toggled or (place.toggled and labels == [b.label for b in place.keyboard])
        new = Place(state, now, keyboard=keyboard if keyboard is not None else place.keyboard,
                    fresh=keyboard is not None, asked=self.planner.asked(outs[-1].messages),
                    timers=tuple(sorted(timers.items())), toggled=toggled, chosen=chosen,
                    prelude=place.prelude + act.prelude,
                    ending=chosen and state.session is None)
        return self._add(new, watch, node.client, node.index, act.label, node.depth + 1,
                         act.kind)

    def _add(self, place: Place, watch: Watch, client: Client, parent: int | None, via: str,
             depth: int, kind: Kind = Kind.ANSWER) -> int | None:
        key = (self.canonical(place.state, place.now),
               tuple((k, (due - place.now).total_seconds()) for k, due in place.timers),
               tuple(b.label for b in place.keyboard), place.fresh, place.asked, place.new,
               place.toggled, place.chosen, place.prelude, place.ending, watch,
               None if place.chosen else client.name)  # clients differ in what they do first
        index = self.seen.get(key)
        if index is None:
            if len(self.nodes) >= self.limits.max_states:
                self.result.truncated = True
                if parent is not None:
                    self.unwalked.add(parent)
                return None
            index = len(self.nodes)
            self.seen[key] = index
            self.nodes.append(_Node(index, place, watch, client, parent, via, depth))
            self.queue.append(index)
        if parent is not None:
            self.edges.append((parent, index, kind))
        return index

    # -- the whole graph --------------------------------------------------------------------
    def _check_endings(self) -> None:
        """Every place from which no answer leads to an end is a violation (once per step)."""
        back: dict[int, list[int]] = defaultdict(list)
        for source, target, kind in self.edges:
            if kind is Kind.ANSWER:
                back[target].append(source)
        can_end = {n.index for n in self.nodes if n.place.ending} | self.unwalked
        todo = deque(can_end)
        while todo:
            for source in back[todo.popleft()]:
                if source not in can_end:
                    can_end.add(source)
                    todo.append(source)
        stuck = [n for n in self.nodes if n.index not in can_end]
        # Places in a session say best where the way out is missing; before it, every place
        # is stuck too when the session cannot end.
        for node in [n for n in stuck if step_at(n.place.state) is not None] or stuck[:1]:
            problem = Problem("explore-no-end", "from here no answer leads to the end of the "
                              "session: the client can go round, but never finish")
            self._report(node, problem, node.place.state)

    def _count_paths(self) -> int:
        """Distinct shortest routes from each client's first message to an end."""
        ways = [0] * len(self.nodes)
        for node in self.nodes:
            if node.parent is None:
                ways[node.index] = 1
        by_source: dict[int, list[int]] = defaultdict(list)
        for source, target, _ in self.edges:
            if self.nodes[target].depth == self.nodes[source].depth + 1:
                by_source[source].append(target)
        for node in self.nodes:  # in order of depth: breadth first
            for target in by_source[node.index]:
                ways[target] += ways[node.index]
        return sum(ways[n.index] for n in self.nodes if n.place.ending)

    # -- records ----------------------------------------------------------------------------
    def _record(self, node: _Node, act: Act, target: int | None, outs: list[Outcome],
                now: datetime) -> None:
        record = [node.index, act.label, target, [_summary(o, now) for o in outs]]
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
        self.hasher.update(line.encode("utf-8") + b"\n")
        if self.keep:
            self.result.transcript.append(line)

    def _report(self, node: _Node, problem: Problem, after: ClientState,
                last: str | None = None) -> None:
        """Keep a violation with its path (the first one per invariant and step)."""
        step = problem.step or step_at(node.place.state) or step_at(after)
        key = (problem.code, problem.message)
        if key in self.found:
            found = self.found[key]
            self.found[key] = replace(found, more=found.more + 1)
            return
        mark = self._mark(step)
        self.found[key] = Violation(mark.file, mark.line, mark.col, problem.code,
                                    problem.message, f"{node.client.name} ({node.client.about})",
                                    (*self._path(node), *([last] if last else [])))

    def _mark(self, step: str | None) -> Mark:
        if step is not None and step in self.script.steps:
            return self.script.step_mark(step)
        return self.script.source.mark_for(("script",), key=True)

    def _path(self, node: _Node) -> list[str]:
        path: list[str] = []
        current: _Node | None = node
        while current is not None and current.parent is not None:
            path.append(current.via)
            current = self.nodes[current.parent]
        return path[::-1]


def _position(place: Place) -> tuple[object, ...]:
    """Where a client is, as they see it: the step, the buttons, whether the session runs."""
    return (step_at(place.state), running(place.state), place.fresh,
            tuple(b.label for b in place.keyboard), place.chosen, place.ending)


def _summary(out: Outcome, now: datetime) -> dict[str, object]:
    """What a fingerprint records of an outcome: everything the client and the store see."""
    return {
        "messages": [[str(m.text), [[b.label for b in row] for row in m.buttons],
                      m.replace_keyboard] for m in out.messages],
        "ledger": [[e.kind, relative(e.data, now)] for e in out.ledger],
        "answers": [[a.step, a.text] for a in out.answers],
        "timers_set": [[t.kind, relative(t.due, now)] for t in out.timers_set],
        "timers_cancel": list(out.timers_cancel),
        "effects": [e.value for e in out.effects],
        "state": projection(out.state, now),
    }
