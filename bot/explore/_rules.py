"""The safety invariants, checked on every transition the explorer makes.

They are written from the product's rules (DESIGN.md, docs/authoring.md), not from the engine's
code, so that they can catch the engine out:

- ``explore-level``: no prompt or role-play line above the client's level, the contract's max
  level or the script's level; level 1 only while a crisis hold is on; the client's level never
  above the contract's max.
- ``explore-before-checkin``: no prompt above level 1 and no role-play before a check-in in
  the session.
- ``explore-high-distress``: after a rating at or above the threshold, no prompt or role-play
  line before de-escalation starts (or the session closes).
- ``explore-step-up-after-distress``: no step up offered or made after a session with a
  rating at or above the threshold, or with a crisis hold at any point of it.
- ``explore-stop``: ``/stop`` and stop words end everything, everywhere: halted, no session,
  exactly one confirmation, every timer and queued message cancelled, and nothing sent
  unprompted afterwards.
- ``explore-crisis``: crisis language, everywhere, is answered first with the emergency number
  or a crisis line, shows every crisis line, and shows no exercise content.
- ``explore-not-safe``: crisis language then a typed "not safe", everywhere, ends the exercise,
  and nothing the client does next (words, ``/resume``, ``/start``, the buttons they had,
  timers an hour later) reaches exercise content.
- ``explore-alert-consent``: no alert to the therapist is ever queued for a client who has
  not opted in to it, and no alert carries what the client wrote.
- ``explore-no-end`` (checked on the whole graph, in :mod:`bot.explore._walk`): from every place
  some answer leads to the end of the session.
- ``explore-engine-error``: the engine raised an exception.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.crisis import Detector
from bot.engine import (
    ClientState,
    Effect,
    Event,
    LedgerEntry,
    Opt,
    Outcome,
    Policy,
    TimerFired,
)
from bot.explore._observe import Labels, Shown, crisis_hold, keyboard_of, shown
from bot.script import LoadedScript
from bot.script._model import ExerciseKind

#: How long after a /stop the explorer fires every timer again to see that nothing is sent.
AFTER_STOP = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Watch:
    """What the invariants remember along one path (part of what makes a place distinct).

    Attributes:
        checked_in: A check-in was answered in this session.
        high: A rating at or above the threshold not yet followed by de-escalation.
        distressed: The session had a rating at or above the threshold.
        held: A crisis hold was on at some point of the session.
    """

    checked_in: bool = False
    high: int | None = None
    distressed: bool = False
    held: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """A broken invariant: its code, what happened, and the step to point at (if not the
    step the client was at)."""

    code: str
    message: str
    step: str | None = None


@dataclass
class Rules:
    """The invariants for one script and policy."""

    script: LoadedScript
    policy: Policy
    detector: Detector
    labels: Labels

    def transition(self, before: ClientState, out: Outcome, watch: Watch
                   ) -> tuple[Watch, list[Problem]]:
        """Check one transition; returns what the path remembers after it."""
        problems: list[Problem] = []
        after = out.state
        for entry in out.ledger:
            watch, found = self._ledger(before, entry, watch)
            problems.extend(found)
        if out.alerts and not after.has(Opt.ALERT_THERAPIST, self.policy.consent_version):
            problems.append(Problem("explore-alert-consent", "an alert to the therapist was "
                                    "queued for a client who has not opted in to it"))
        if after.level > after.contract.max_level:
            problems.append(Problem("explore-level", f"the client's level became {after.level}, "
                                    f"above the contract's max level {after.contract.max_level}"))
        seen = shown(self.script, after, out, self.labels)
        if seen is not None:
            step = after.session.frame.step if after.session is not None else None
            problems.extend(Problem(code, message, step)
                            for code, message in self._content(after, seen, watch))
        elif any(e.kind == "roleplay_started" for e in out.ledger) and not watch.checked_in:
            step = after.session.frame.step if after.session is not None else None
            problems.append(Problem("explore-before-checkin",
                                    "a role-play started before any check-in", step))
        return watch, problems

    def _ledger(self, state: ClientState, entry: LedgerEntry, watch: Watch
                ) -> tuple[Watch, list[Problem]]:
        kind, data = entry.kind, entry.data
        if kind == "session_started":
            return Watch(held=crisis_hold(state)), []
        if kind in ("crisis_language", "crisis_hold"):
            return replace(watch, held=True), []
        if kind == "checkin":
            distress = data.get("distress")
            step = data.get("step")
            threshold = self._threshold(state, step if isinstance(step, str) else None)
            if isinstance(distress, int) and distress >= threshold:
                return replace(watch, checked_in=True, high=distress, distressed=True), []
            return replace(watch, checked_in=True), []
        if kind in ("deescalation", "deescalation_closed", "session_ended"):
            return replace(watch, high=None), []
        # A step up is offered first (and then made with the client's yes): the offer is the
        # violation; a step up made without one is a violation of its own.
        up = kind == "level_offered" or (
            kind == "level_changed" and not data.get("asked")
            and _int(data.get("to_level")) > _int(data.get("from_level")))
        if up and (watch.distressed or watch.held):
            what = "offered" if kind == "level_offered" else "made"
            why = ("a rating at or above the distress threshold" if watch.distressed
                   else "a crisis hold")
            return watch, [Problem("explore-step-up-after-distress",
                                   f"a step up was {what} after a session with {why}")]
        return watch, []

    def _threshold(self, state: ClientState, step_id: str | None) -> int:
        limit = state.contract.distress_threshold
        step = self.script.steps.get(step_id) if step_id is not None else None
        own = step.checkin.high if step is not None and step.checkin is not None else None
        return min(limit, own) if own is not None else limit

    def _content(self, state: ClientState, seen: Shown, watch: Watch
                 ) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        limits = {"the contract's max level": state.contract.max_level,
                  "the script's level": self.script.meta.level,
                  "the client's level": state.level}
        if crisis_hold(state):
            limits["the crisis hold's level"] = 1
        name, bound = min(limits.items(), key=lambda item: item[1])
        if seen.level > bound and not seen.gentler:
            found.append(("explore-level", f"{seen.what} (level {seen.level}) was shown, above "
                          f"{name} ({bound})"))
        if not watch.checked_in and (seen.kind == "turn" or seen.level >= 2):
            found.append(("explore-before-checkin",
                          f"{seen.what} (level {seen.level}) was shown before any check-in"))
        if watch.high is not None:
            found.append(("explore-high-distress",
                          f"{seen.what} was shown after a rating of {watch.high}, before any "
                          "de-escalation"))
        return found

    # -- probes -----------------------------------------------------------------------------
    def stop(self, out: Outcome, after: list[Outcome]) -> list[Problem]:
        """``/stop`` or a stop word: everything ended, one confirmation, then silence."""
        state = out.state
        wrong: list[str] = []
        if not state.halted:
            wrong.append("the client is not halted")
        if state.session is not None:
            wrong.append("the session goes on")
        texts = [m.text for m in out.messages]
        if texts != [self.labels.stop_confirm]:
            wrong.append(f"{len(texts)} message(s) were sent, not exactly the one confirmation")
        if "*" not in out.timers_cancel or out.timers_set:
            wrong.append("not every timer was cancelled")
        if Effect.CANCEL_OUTBOX not in out.effects:
            wrong.append("queued messages were not cancelled")
        if sum(e.kind == "stopped" for e in out.ledger) != 1:
            wrong.append("not exactly one `stopped` ledger row")
        if any(o.messages for o in after):
            wrong.append("a timer firing afterwards sent a message")
        return [Problem("explore-stop", f"/stop did not end everything: {w}") for w in wrong]

    def crisis(self, out: Outcome, text: str) -> list[Problem]:
        """Crisis language: the lines first, all of them, and no exercise content."""
        region = self.policy.lines(out.state.settings.region)
        kinds = tuple(k.value for k in self.detector.scan(text).kinds)
        contacts = [str(line["contact"]) for group in region.groups(kinds)
                    for line in group["resources"]]  # type: ignore[attr-defined]
        wrong: list[str] = []
        texts = [m.text for m in out.messages]
        if not texts or not any(_carries(texts[0], n) for n in [region.emergency, *contacts]):
            wrong.append("the first message does not carry the emergency number or a crisis "
                         "line")
        missing = [c for c in contacts if not any(_carries(t, c) for t in texts)]
        if missing:
            wrong.append("crisis lines are missing: " + ", ".join(missing))
        if any(text in alert.text for alert in out.alerts):
            wrong.append("the alert to the therapist carries the client's words")
        if shown(self.script, out.state, out, self.labels) is not None:
            wrong.append("exercise content was shown")
        elif keyboard_of(out.messages) is None:
            wrong.append("no question follows (\"Are you safe right now?\")")
        return [Problem("explore-crisis", f"crisis language: {w}") for w in wrong]

    def not_safe(self, out: Outcome, after: list[Outcome]) -> list[Problem]:
        """Crisis language, then "not safe": the exercise ends, and nothing the client does
        next (words, /resume, /start, old buttons, timers) reaches exercise content."""
        wrong = _no_exercise([out, *after], self.script, self.labels)
        if not any(e.kind == "crisis_not_safe" for e in out.ledger):
            wrong.append("the typed answer was not taken as \"not safe\"")
        return [Problem("explore-not-safe", f"after \"not safe\": {w}") for w in wrong]

    def stop_request(self, before: ClientState, asked: Outcome, kept: Outcome | None
                     ) -> list[Problem]:
        """A stop request in words: asked once, no step taken; "Keep going" changes nothing."""
        if before.halted:
            return []
        wrong: list[str] = []
        if asked.state.session != before.session or asked.state.halted:
            wrong.append("the session moved on or ended before the client chose")
        if kept is None:
            wrong.append("no \"Keep going\" was offered")
        elif _place_of(kept.state, before) != _place_of(before, before):
            wrong.append("\"Keep going\" did not return to the same place")
        return [Problem("explore-stop-request", f"a stop request in words: {w}") for w in wrong]

    def under_arousal(self, before: ClientState, out: Outcome) -> list[Problem]:
        """Under-arousal in words at a step of a running session: grounding, then a re-rating."""
        session = before.session
        grounding = any(e.kind is ExerciseKind.GROUNDING for e in self.script.exercises.values())
        if (not grounding or before.halted or before.pending is not None or session is None
                or session.paused or session.frame.calming or session.frame.closing):
            return []
        after = out.state.session
        exercise = after.frame.calm_exercise if after is not None else None
        calm = self.script.exercises.get(exercise) if exercise is not None else None
        if (out.state.crisis_hold_since != before.crisis_hold_since
                or (after is not None and after.frame.closing)
                or not any(m.text == self.labels.under for m in out.messages)):
            return []  # crisis language, the session cap, or not a place that takes words
        if calm is None or calm.kind is not ExerciseKind.GROUNDING:
            return [Problem("explore-under-arousal",
                            "under-arousal in words did not lead to grounding")]
        return []


def _no_exercise(outs: list[Outcome], script: LoadedScript, labels: Labels) -> list[str]:
    wrong: list[str] = []
    for out in outs:
        kinds = {e.kind for e in out.ledger}
        if out.state.session is not None:
            wrong.append("an exercise is still under way")
        if kinds & {"session_started", "prompt", "roleplay_started", "roleplay_turn"}:
            wrong.append("an exercise went on: " + ", ".join(sorted(
                kinds & {"session_started", "prompt", "roleplay_started", "roleplay_turn"})))
        if shown(script, out.state, out, labels) is not None:
            wrong.append("exercise content was shown")
    return list(dict.fromkeys(wrong))


def _place_of(state: ClientState, before: ClientState) -> object:
    """Where a client is: what they are asked and the session's place (not the clock, nor
    the silence follow-up, which any message from the client disarms). When nothing was
    asked before, the question any text gets there (consent, the menu) may be."""
    asked_nothing = before.pending is None and before.session is None
    return state.model_dump(exclude={"last_active", "keyboard", "offered", "silence_armed",
                                     *(["pending"] if asked_nothing else [])})


def timers_after_stop(timers: tuple[tuple[str, datetime], ...], now: datetime
                      ) -> list[tuple[Event, datetime]]:
    """The timer events to fire after a /stop, as if cancelling had come too late: every kind
    the client had at its due time, and the silence and reminder timers (a day later if the
    client had none)."""
    due = dict(timers)
    kinds = dict.fromkeys([*due, "silence", "reminder"])
    return [(TimerFired(kind=kind, due_iso=due.get(kind, now + AFTER_STOP).isoformat()),
             max(due.get(kind, now + AFTER_STOP), now)) for kind in kinds]


def _carries(text: str, number: str) -> bool:
    return bool(number) and (number in text or html.escape(number) in text)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
