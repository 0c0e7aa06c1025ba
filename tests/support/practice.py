"""Clients who practised: real engine runs through the service and the store.

A therapist's report is built from a client's ledger. These helpers make that ledger the
way the bot does — every button press and rating goes through :class:`bot.service.Rehearsal`
into a real SQLite file, leaving each session's summary as it is (private) — and then add
the share rows exactly as the in-chat summary flow commits them (``summary_shared`` /
``summary_withdrawn``, docs/therapists.md; tests/test_engine_summary.py presses the real
buttons)::

    client = ServiceClient(service, "tg:2001")
    await consent_sharing(client)
    day = await practise(client, before=5, after=2)
    await share(service.store, client.client_id, day, SHARE_ITEMS, clock.now)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime

from bot.engine import LevelQuestion, Part, Start, SummaryQuestion, Text
from bot.report import SHARED, WITHDRAWN
from bot.store import Commit, LedgerRecord, Store
from tests.support.engine_driver import ServiceClient

FIRST_STEPS = "First steps in sharing"
_ids = itertools.count(1)


async def consent_sharing(client: ServiceClient) -> None:
    """Agree, confirm being an adult, keep nothing typed, share with the therapist, no
    reminders."""
    await client.send(Start())
    for label in ("I agree", "Yes", "No, thanks", "Yes, please", "No, thanks", "No, thanks"):
        await client.press(label)


async def practise(
    client: ServiceClient,
    *,
    title: str = FIRST_STEPS,
    before: int = 4,
    after: int = 2,
    expected: int = 5,
    actual: int = 3,
    smaller: int = 0,
    level_up: bool = False,
    helped: str | None = None,
) -> datetime:
    """One whole session of an exercise, from the menu to its end.

    The first distress rating is ``before``, every later one ``after`` (a rating at or above
    the threshold first goes through the calming exercise, as a client would).

    Args:
        client: A client who consented.
        title: The exercise's title in the menu.
        before: The distress rating before.
        after: Every rating after that.
        expected: How hard the client expects it to be.
        actual: How hard it was.
        smaller: How many times to choose a smaller step at a prompt.
        level_up: Say yes if a step up a level is offered at the end.
        helped: The button to answer "Did this help?" with (None: leave it unanswered).

    Returns:
        The session's id: its start time.
    """
    await client.send(Start())  # the menu
    await client.press(title)
    state = await client.service.state_of(client.client_id)
    assert state.session is not None, "the session did not start"
    started = state.session.started_at
    rated = 0
    for _ in range(300):
        state = await client.service.state_of(client.client_id)
        if state.session is None:
            if isinstance(state.pending, SummaryQuestion):  # the session's summary: as it is
                if helped is not None:
                    await client.press(helped)
                await client.press("ud")
                state = await client.service.state_of(client.client_id)
            if state.pending == LevelQuestion():
                await client.press("ly" if level_up else "ln")
            return started
        frame = state.session.frame
        codes = [b.data.partition(":")[2] for b in client.keyboard]
        if frame.part in (Part.RATING, Part.RECHECK):
            await client.send(Text(text=str(before if rated == 0 else after)))
            rated += 1
        elif frame.part in (Part.EXPECTED, Part.ACTUAL):
            await client.send(Text(text=str(expected if frame.part is Part.EXPECTED else actual)))
        elif frame.part is Part.PROMPT and smaller and "sm" in codes:
            await client.press("sm")
            smaller -= 1
        else:
            await client.answer_current()
    raise AssertionError("the session did not end")


async def share(store: Store, client_id: str, session: datetime, items: Iterable[str],
                at: datetime, *, withdraw: bool = False) -> None:
    """Commit the row the summary flow writes when the client shares (or withdraws) items
    of a session (any session, any day: faster than pressing through ``/summary``)."""
    kind = WITHDRAWN if withdraw else SHARED
    data = {"session": session.isoformat(), "items": list(items)}
    await store.commit(Commit(event_id=f"test-share:{next(_ids)}", client_id=client_id, at=at,
                              state=None, ledger=[LedgerRecord(kind, data, at)]))
