"""A demo client made by real engine runs: ``rehearse demo-data --db FILE``.

One client redeems their therapist's invite, consents (sharing with the therapist on) and
practises once a day for N simulated days. Every step goes through the real service, engine
and store, event by event, as the bot would handle a client's presses and ratings: only the
client's answers are scripted (ratings that ease over the year, a smaller step now and then,
yes to a level up when asked). After each session the client answers "Did this help?" and
shares the whole summary with the summary's own buttons, and half way through the therapist
proposes a change to the agreement, which the client agrees to. The therapist switches the
weekly outcome check-in on, and the client answers it each week (a question skipped now and
then). So ``rehearse
report DEMO`` shows a full report at once; nothing about a real person is in it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from bot.engine import (
    OUTCOME_ITEMS,
    Button,
    ButtonSpec,
    ClientState,
    Event,
    LevelQuestion,
    OutcomeQuestion,
    Part,
    Redeemed,
    Start,
    SummaryQuestion,
    Text,
    change_from,
)
from bot.service import Rehearsal

#: The demo client and their therapist (ids no Telegram account has: digits only there).
DEMO_CLIENT = "demo:client"
DEMO_THERAPIST = "demo:therapist"
#: The exercise the demo client practises, and the one added when the agreement changes.
DEMO_SCRIPT = "first-steps"
#: Events one session may take before the demo gives up on it (a script that never ends).
MAX_EVENTS = 300


@dataclass
class SimulatedClock:
    """The demo's time: moved by hand, one day after another."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DemoClient:
    """The demo client pressing the buttons the bot sent them.

    Attributes:
        service: The service the client talks to.
        keyboard: The newest buttons sent.
    """

    service: Rehearsal
    keyboard: list[ButtonSpec] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self, event: Event) -> None:
        """One event, handled and committed as the bot would."""
        handled = await self.service.handle(DEMO_CLIENT, f"demo:{next(self._ids)}", event)
        if handled.outcome is None:
            raise RuntimeError("the demo client's event was not applied")
        for message in handled.outcome.messages:
            if message.buttons:
                self.keyboard = [b for row in message.buttons for b in row]

    async def press(self, code: str) -> None:
        """Press the live button whose code is ``code`` (``y``, ``go``, ``ly`` …)."""
        for spec in self.keyboard:
            if spec.data.partition(":")[2] == code:
                await self.send(Button(data=spec.data))
                return
        raise RuntimeError(f"the demo client has no button {code!r} to press")

    async def state(self) -> ClientState:
        return await self.service.state_of(DEMO_CLIENT)


async def make_demo(service: Rehearsal, clock: SimulatedClock, days: int) -> int:
    """Make the demo client: invite, consent, then `days` daily sessions; returns sessions.

    Raises:
        RuntimeError: The database holds clients already (the demo client, or real ones:
            a demo never goes among them), or a session did not go as a client's would.
    """
    others = await service.store.client_ids()
    if DEMO_CLIENT in others:
        raise RuntimeError(f"{DEMO_CLIENT} exists already in this database")
    if others:
        raise RuntimeError(f"this database holds {len(others)} client(s) already; make the "
                           "demo client in a database of its own (--db demo.db)")
    await service.store.assign_therapist(DEMO_CLIENT, DEMO_THERAPIST, clock.now)
    client = DemoClient(service)
    await client.send(Redeemed(script_id=DEMO_SCRIPT, max_level=2, display_name="Demo"))
    # terms, adult, keep typing no, share yes, reminders no, alert to the therapist no
    for code in ("y", "y", "n", "y", "n", "n"):
        await client.press(code)
    await service.switch_outcomes(DEMO_CLIENT, DEMO_THERAPIST, True, "demo:outcomes")
    first = clock.now
    for day in range(days):
        clock.now = first + timedelta(days=day + 1)  # each evening at the same time
        if day == days // 2:
            await _agreement_changes(service, client)
        await _session(client, day, days)
    return days


async def _agreement_changes(service: Rehearsal, client: DemoClient) -> None:
    """The therapist proposes one level more and a second exercise; the client agrees."""
    change = change_from({"max_level": "3", "assign": f"{DEMO_SCRIPT},telling-a-friend"},
                         scripts=service.engine.resources.scripts)
    await service.propose_contract(DEMO_CLIENT, DEMO_THERAPIST, change, "demo:contract")
    state = await client.state()  # the proposal's message went to the client's chat
    if state.proposal is None or f"ca{state.proposal.number}" not in state.offered:
        raise RuntimeError("the demo client was not asked about the proposed change")
    await client.send(Button(data=f"{state.keyboard}:ca{state.proposal.number}"))


async def _session(client: DemoClient, day: int, days: int) -> None:
    """One whole session, from the menu to its end, its summary shared."""
    await client.send(Start())
    progress = day / max(days - 1, 1)  # ratings ease over the demo's time
    for item in range(len(OUTCOME_ITEMS)):  # the weekly check-in, when /start asks it
        if not isinstance((await client.state()).pending, OutcomeQuestion):
            break
        week = day // 7
        skipped = (week + item) % 5 == 0
        await client.press("oi" if skipped else f"r{3 + item % 2 + round(4 * progress)}")
    menu = [b.data.partition(":")[2] for b in client.keyboard]
    await client.press("m1" if day % 2 and "m1" in menu else "m0")
    state = await client.state()
    if state.session is None:
        raise RuntimeError("the demo session did not start")
    before, after = 6 - round(3 * progress) + day % 2, 4 - round(3 * progress) + day % 2
    expected, actual = 6 - round(2 * progress) + day % 3, 5 - round(3 * progress) + day % 2
    rated, smaller = 0, day % 4 == 0
    for _ in range(MAX_EVENTS):
        state = await client.state()
        if state.session is None:
            if isinstance(state.pending, SummaryQuestion):  # the session's own summary
                await client.press(f"uh{day % 2}")  # "It helped" / "A little"
                await client.press("ua")  # share all of it
                await client.press("ud")
                state = await client.state()
            if state.pending == LevelQuestion():
                await client.press("ly")
            return
        part = state.session.frame.part
        codes = [b.data.partition(":")[2] for b in client.keyboard]
        if part in (Part.RATING, Part.RECHECK):
            await client.send(Text(text=str(before if rated == 0 else after)))
            rated += 1
        elif part in (Part.EXPECTED, Part.ACTUAL):
            await client.send(Text(text=str(expected if part is Part.EXPECTED else actual)))
        elif part is Part.PROMPT and smaller and "sm" in codes:
            await client.press("sm")
            smaller = False
        elif (code := _plain(part, codes)) is not None:
            await client.press(code)
        else:  # a question answered in words (nothing typed is kept: no opt-in)
            await client.send(Text(text="Something small I would like to share."))
    raise RuntimeError("a demo session did not end")


#: What the demo client presses at each part that is answered by a button.
_PRESSES = {Part.RELIEF: "l0", Part.CUES: "kd", Part.SKIP_REASON: "s3", Part.ENOUGH: "mo",
            Part.READY: "st", Part.SCREEN: "ps", Part.PROMPT: "sh", Part.TURN: "sd"}


def _plain(part: Part | None, codes: list[str]) -> str | None:
    """The plainest button at a part (the one that goes on, or the first choice); None
    where the client answers in words."""
    if part in _PRESSES:
        return _PRESSES[part]
    choices = [c for c in codes if c.startswith("c") and c[1:].isdigit()]
    if part is Part.ASK and choices:
        return choices[0]
    return "go" if "go" in codes else None


def demo_start(days: int, now: datetime) -> SimulatedClock:
    """A clock `days` days before `now`, at 18:00 UTC (outside quiet hours)."""
    first = (now - timedelta(days=days + 1)).date()
    return SimulatedClock(datetime.combine(first, time(18, 0), tzinfo=UTC))
