"""Several processes on one database: no commit overwrites a change it did not see, and the
workers of ``QueuedEdge`` share the updates, the outbox, the timers and the lead.

Runs on SQLite and PostgreSQL. Each "process" is a service or an edge with a store of its
own (its own connections), all on one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import Loaded
from bot.engine import Clinician, Start
from bot.service import Rehearsal
from bot.store import Store, store_for
from bot.telegram import chat_of
from tests.conftest import Clock

pytestmark = pytest.mark.backends


@pytest.fixture
async def second_store(database: str, store: Store) -> AsyncIterator[Store]:
    """Another connection to the test's database, as another worker has."""
    async with store_for(database) as opened:
        yield opened


async def test_two_processes_changing_one_client_at_once_lose_neither_change(
    store: Store, second_store: Store, loaded: Loaded, clock: Clock
) -> None:
    """Each reads the client, each computes, each commits: the second commit is refused
    and computed again from the first one's state, so both changes stay."""
    one = Rehearsal(loaded.engine, store, clock, chat_of)
    other = Rehearsal(loaded.engine, second_store, clock, chat_of)
    for round_ in range(15):
        client = f"tg:{7000 + round_}"
        await one.handle(client, f"start:{round_}", Start(display_name="Ada"))
        await asyncio.gather(
            one.handle(client, f"a:{round_}", Clinician(action="guardian-consent", by="one")),
            other.handle(client, f"b:{round_}", Clinician(action="clear-hold", by="other")))
        state = await store.load_state(client)
        assert state is not None
        assert state["guardian_consent"] is True, round_
        assert state["crisis_hold_cleared_by_therapist"] is True, round_
        kinds = [row.kind for row in await store.ledger(client)]
        assert kinds.count("guardian_consent") == 1 and kinds.count("crisis_hold_cleared") == 1


async def test_an_event_of_another_source_never_brings_an_erased_client_back(
    store: Store, second_store: Store, loaded: Loaded, clock: Clock
) -> None:
    """A therapist's action computed while another process erased the client is dropped
    (it would store a fresh state for someone erased)."""
    one = Rehearsal(loaded.engine, store, clock, chat_of)
    await one.handle("tg:7100", "start", Start(display_name="Ada"))
    other = Rehearsal(loaded.engine, second_store, clock, chat_of)
    acting = asyncio.create_task(
        other.handle("tg:7100", "act", Clinician(action="guardian-consent", by="x")))
    await store.erase("tg:7100")
    await acting
    assert await store.load_state("tg:7100") is None
    assert await store.client_ids() == []
