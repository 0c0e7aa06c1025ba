"""The working context of one event: state being changed, outcome being built, helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.crisis import Detector
from bot.engine._buttons import ButtonKey, Press, unpack
from bot.engine._outcome import ButtonSpec, LedgerEntry, Message, Outcome, TimerRequest
from bot.engine._plan import PART_LABELS, SafetyPlan
from bot.engine._policy import Policy, RegionLines
from bot.engine._reminders import zone
from bot.engine._state import ClientState, Session
from bot.engine._terms import Opt
from bot.intents import Intents
from bot.script import LoadedScript

#: Characters of the newest connection-log note a script text can show (``last_connection``).
LAST_CONNECTION_CHARS = 500
#: Telegram's longest message; a crisis message and the plan share one only within it.
MESSAGE_CHARS = 4096
#: A button before it is bound to the current keyboard: its label and what it means.
Choice = tuple[str, Press]


class Texts(Protocol):
    """What the engine needs from the renderer (see :class:`bot.render.Renderer`)."""

    def system(self, key: str, **context: object) -> str:
        """Render a system text by key."""
        ...

    def text(self, source: str, context: Mapping[str, object]) -> str:
        """Render a script's template text."""
        ...

    def label(self, key: str, **context: object) -> str:
        """Render a button label as plain text."""
        ...


@dataclass(frozen=True)
class Resources:
    """What the engine is given once: scripts, texts, the crisis detector, intents and policy."""

    scripts: Mapping[str, LoadedScript]
    texts: Texts
    crisis: Detector
    #: Reads stop requests, typed safety answers and under-arousal cues in free text.
    intents: Intents
    policy: Policy


class Context:
    """One event's work: the state copy being changed and the outcome being collected."""

    def __init__(
        self, resources: Resources, state: ClientState, now: datetime, name: str | None
    ) -> None:
        self.res = resources
        self.state = state
        self.now = now
        self.name = name or ""
        self.out = Outcome(state=state)
        #: Messages sent now are part of a crisis response (see :attr:`Message.urgent`).
        self.urgent = False

    # -- text -----------------------------------------------------------------------------
    def system(self, key: str, **context: object) -> str:
        """Render a system text."""
        return self.res.texts.system(key, **context)

    def label(self, key: ButtonKey, **context: object) -> str:
        """A button label from the system texts (``buttons.KEY``)."""
        return self.res.texts.label(f"buttons.{key}", **context)

    def script_text(self, source: str, **extra: object) -> str:
        """Render script text with the client's variables.

        The checker renders every text with sample values before a script loads, so a
        failure here is rare (e.g. a rating compared before any check-in); it must still
        never break the client's flow: the fault is logged and a plain apology shown.
        """
        try:
            return self.res.texts.text(source, self.variables(**extra))
        except Exception as exc:  # any template fault: never the client's problem
            self.log("script_fault", reason="render", error=type(exc).__name__)
            return self.system("error.generic")

    def variables(self, **extra: object) -> dict[str, object]:
        """The template and condition variables for the current client and session."""
        session = self.state.session
        progress = self.state.progress
        values: dict[str, object] = {
            "name": self.name,
            "level": self.effective_level(),
            "max_level": self.state.contract.max_level,
            "distress": session.distress if session else None,
            "expected": session.expected if session else None,
            "actual": session.actual if session else None,
            "relief": session.relief if session else None,
            "connection_count": progress.connections,
            "last_connection": (progress.last_connection or "")[:LAST_CONNECTION_CHARS],
            "exercises_done": progress.exercises_done,
            "character": "",
        }
        if session:
            values.update(session.vars)
        values.update(extra)
        return values

    # -- sending --------------------------------------------------------------------------
    def send(
        self, text: str, rows: Sequence[Sequence[Choice]] = (), *, replace: bool = False
    ) -> None:
        """Queue a message; buttons become the one live keyboard (older ones go stale)."""
        buttons: tuple[tuple[ButtonSpec, ...], ...] = ()
        if not text.strip() and not rows:
            return  # a script text that rendered empty: Telegram refuses empty messages
        if rows:
            self.state.keyboard += 1
            codes = [[press.pack() for _, press in row] for row in rows]
            self.state.offered = [code for row in codes for code in row]
            buttons = tuple(
                tuple(ButtonSpec(label, f"{self.state.keyboard}:{code}")
                      for (label, _), code in zip(row, row_codes, strict=True))
                for row, row_codes in zip(rows, codes, strict=True)
            )
        self.out.messages.append(Message(text=text.strip(), buttons=buttons,
                                         replace_keyboard=replace, urgent=self.urgent))

    def say(self, key: str, rows: Sequence[Sequence[Choice]] = (), **context: object) -> None:
        """Send a system text."""
        self.send(self.system(key, **context), rows)

    def button(self, key: ButtonKey, press: Press, **context: object) -> Choice:
        """A button whose label is the system text ``buttons.KEY``."""
        return (self.label(key, **context), press)

    def pressed(self, data: str) -> Press | None:
        """The button a press of the live keyboard means, or None for a stale or forged press.

        Raises:
            UnknownButton: When the live keyboard offered a code no button packs to (a
                stored state no release could have written).
        """
        seq, _, code = data.partition(":")
        if seq != str(self.state.keyboard) or code not in self.state.offered:
            return None
        self.state.offered = []
        return unpack(code)

    # -- records --------------------------------------------------------------------------
    def log(self, kind: str, **data: object) -> None:
        """Append a ledger row."""
        self.out.ledger.append(LedgerEntry(kind, dict(data)))

    def timer(self, kind: str, due: datetime) -> None:
        """Schedule (or move) the one timer of this kind."""
        self.out.timers_set.append(TimerRequest(kind, due))

    def cancel_timer(self, kind: str) -> None:
        """Cancel a timer kind (``"*"`` for all)."""
        self.out.timers_cancel.append(kind)

    def lines(self) -> RegionLines:
        """The crisis lines of the client's region (the practice's until they choose)."""
        return self.res.policy.lines(self.state.settings.region)

    def plan_sections(self, plan: SafetyPlan | None = None) -> list[dict[str, str]]:
        """The written parts of a plan (the client's own by default), each under its heading
        (the label of its button, ``buttons.plan_PART``), in the plan's order."""
        plan = self.state.safety_plan if plan is None else plan
        return [{"part": part, "heading": self.label(PART_LABELS[part]), "text": plan.part(part)}
                for part in plan.filled()] if plan is not None else []

    def plan_text(self) -> str:
        """The client's safety plan as a message (``crisis.safety_plan``); "" without one."""
        sections = self.plan_sections()
        return self.system("crisis.safety_plan", sections=sections) if sections else ""

    def say_first(self, key: str, **context: object) -> None:
        """Send the first message of a crisis response, with the client's safety plan.

        The text ``key`` carries the emergency number in its first lines; the plan goes right
        after them (its ``plan`` variable) when the message still fits Telegram's limit, and
        otherwise comes as the very next message, before anything else.
        """
        plan = self.plan_text()
        without = self.system(key, **{**context, "plan": ""})
        if not plan:
            self.send(without)
        elif len(without) + len(plan) + 2 <= MESSAGE_CHARS:
            self.send(self.system(key, **{**context, "plan": plan}))
        else:
            self.send(without)
            self.send(plan)

    def opted(self, opt: Opt) -> bool:
        """Whether the client holds this opt-in for the current consent version."""
        return self.state.has(opt, self.res.policy.consent_version)

    # -- levels ---------------------------------------------------------------------------
    def crisis_hold(self) -> bool:
        """Whether a crisis hold keeps content at level 1 (and role-play out)."""
        return self.state.crisis_hold_since is not None

    def hold_until(self) -> datetime | None:
        """When the crisis hold's time is up: a session starting then can lift it."""
        since = self.state.crisis_hold_since
        return None if since is None else since + self.res.policy.crisis_hold

    def support_only(self) -> bool:
        """After "not safe" or "not sure": no exercise content until the hold's time is up."""
        until = self.hold_until()
        state = self.state
        return (state.not_safe and until is not None and self.now < until
                and not state.crisis_hold_cleared_by_therapist)

    def local_time(self, when: datetime) -> str:
        """A moment in the client's time zone, for a message (``Thu 3 Dec, 14:05``)."""
        local = when.astimezone(zone(self.state.settings.timezone,
                                     self.res.policy.default_timezone))
        return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"

    def effective_level(self) -> int:
        """The deepest level content may have now: never above the contract or script."""
        session = self.state.session
        level = session.level if session else self.state.level
        level = min(level, self.state.contract.max_level)
        if session is not None:
            script = self.res.scripts.get(session.script)
            if script is not None:
                level = min(level, script.meta.level)
        if self.crisis_hold():
            level = 1
        return max(1, level)

    @property
    def session(self) -> Session:
        """The running session (callers check that one exists)."""
        assert self.state.session is not None
        return self.state.session

    @property
    def script(self) -> LoadedScript:
        """The running session's script."""
        return self.res.scripts[self.session.script]

    def threshold(self, own: int | None = None) -> int:
        """The distress that counts as high: the lower of the step's and the contract's."""
        limit = self.state.contract.distress_threshold
        return min(limit, own) if own is not None else limit
