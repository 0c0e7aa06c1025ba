"""The service on a real SQLite store: one atomic commit per event, dedup, export, erasure.

Real engine, real scripts, real :class:`~bot.store.SqliteStore` in a tmp file; only the clock
is moved by hand (:class:`tests.conftest.Clock`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.config import load_config
from bot.engine import Button, Command, Start, Text
from bot.service import Handled, Rehearsal
from bot.store import Commit, SqliteStore, StoreError
from tests.conftest import Clock
from tests.support.engine_driver import CRISIS, ServiceClient

CHAT = 4242


def _service(loaded: Loaded, store: SqliteStore, clock: Clock) -> Rehearsal:
    return Rehearsal(loaded.engine, store, clock, chat_of=lambda _: CHAT)


async def _outbox_texts(store: SqliteStore, clock: Clock, client_id: str = "tg:1") -> list[str]:
    return [str(row.payload["text"]) for row in await store.pending_outbox(clock(), limit=1000)
            if row.client_id == client_id]


async def test_a_repeated_event_id_changes_nothing(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    c = ServiceClient(_service(loaded, store, clock))
    first = await c.send(Start(), event_id="tg:update:1")
    assert first.applied and first.outcome is not None and first.outcome.messages
    state = await store.load_state("tg:1")
    ledger = await store.ledger("tg:1")
    outbox = await _outbox_texts(store, clock)
    again = await c.send(Start(), event_id="tg:update:1")
    assert again == Handled(applied=False)
    other = await c.send(Text(text="STOP"), event_id="tg:update:1")  # same id, other event
    assert not other.applied
    assert await store.load_state("tg:1") == state
    assert await store.ledger("tg:1") == ledger
    assert await _outbox_texts(store, clock) == outbox  # nothing more to send


class _Watching(SqliteStore):
    """The real store, noting what was queued to send at the moment a commit began."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queued_before: list[int] = []
        self.fail_next = False

    async def commit(self, commit: Commit) -> bool:
        self.queued_before.append(len(await self.pending_outbox(commit.at, limit=1000)))
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        return await super().commit(commit)


async def test_messages_are_queued_only_by_the_commit(
        loaded: Loaded, tmp_path: Path, clock: Clock) -> None:
    async with _Watching(tmp_path / "w.db") as store:
        service = _service(loaded, store, clock)
        c = ServiceClient(service)
        await c.send(Start())
        assert store.queued_before == [0]  # the engine had decided; nothing was queued yet
        assert len(await _outbox_texts(store, clock)) == 1
        state = await store.load_state("tg:1")
        store.fail_next = True
        with pytest.raises(StoreError):
            await c.send(Button(data=c.keyboard[0].data))
        # a failed commit leaves no trace: no new message, state and ledger as before
        assert len(await _outbox_texts(store, clock)) == 1
        assert await store.load_state("tg:1") == state
        assert [r.kind for r in await store.ledger("tg:1")] == []


async def test_stop_cancels_queued_messages(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    c = ServiceClient(_service(loaded, store, clock))
    await c.consent()
    await c.to_first_checkin()
    assert len(await _outbox_texts(store, clock)) > 3  # nothing was sent yet
    await c.send(Command(name="stop"))
    texts = await _outbox_texts(store, clock)
    assert len(texts) == 1 and texts[0].startswith("Stopped.")
    assert await store.due_timers(clock.advance(days=30)) == []
    kinds = [r.kind for r in await store.ledger("tg:1")]
    assert kinds[-1] == "stopped"


async def test_mydata_exports_the_ledger(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    c = ServiceClient(_service(loaded, store, clock))
    await c.consent()
    handled = await c.send(Command(name="mydata"))
    export = handled.export
    assert export is not None and export["client_id"] == "tg:1"
    ledger = export["ledger"]
    assert isinstance(ledger, list)
    kinds = [row["kind"] for row in ledger]
    assert kinds.count("consent") == 5 and "age_confirmed" in kinds
    assert kinds[-1] == "export_requested"  # the request itself is in the export
    state = export["state"]
    assert isinstance(state, dict) and state["consents"] == {
        "core": load_config(None, {}).consent.version}
    json.dumps(export)  # JSON-ready


async def test_delete_erases_everything_and_lists_recent_messages(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    c = ServiceClient(service)
    await c.send(Start())
    old = await store.pending_outbox(clock())
    await store.mark_sent(old[0].id, clock(), [100])  # sent three days before the delete
    clock.advance(days=3)
    await c.press("I agree")
    await c.press("Yes")
    for number, row in enumerate(await store.pending_outbox(clock()), start=101):
        await store.mark_sent(row.id, clock(), [number])
    await c.send(Command(name="delete"))
    assert not c.last or not c.last.erased
    handled = await c.press("dy")
    assert handled.erased
    assert handled.deletable == [(CHAT, 101), (CHAT, 102)]
    assert await store.load_state("tg:1") is None
    assert await store.ledger("tg:1") == []
    assert await store.recent_sent_messages("tg:1", clock.advance(days=-10)) == []
    assert await store.client_ids() == []
    export = await store.export("tg:1")
    assert export["ledger"] == [] and export["state"] is None


class _SlowErasure(SqliteStore):
    """The real store, whose erasure takes until the test lets it finish (a long VACUUM)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.erasing = asyncio.Event()
        self.finish = asyncio.Event()

    async def erase(self, client_id: str, keep_event: str | None = None) -> None:
        await super().erase(client_id, keep_event)
        self.erasing.set()
        await self.finish.wait()


async def test_events_that_waited_behind_an_erasure_do_not_bring_the_client_back(
        loaded: Loaded, tmp_path: Path, clock: Clock) -> None:
    async with _SlowErasure(tmp_path / "slow.db") as store:
        service = _service(loaded, store, clock)
        c = ServiceClient(service)
        await c.consent()
        await c.send(Command(name="delete"))
        erasing = asyncio.create_task(c.press("dy"))
        await store.erasing.wait()
        # Let in before the erasure (the edge's cache still said so), now waiting for it:
        waiting = [asyncio.create_task(service.handle("tg:1", f"late:{n}", Text(text="hi")))
                   for n in range(2)]
        await asyncio.sleep(0.05)
        store.finish.set()
        assert (await erasing).erased
        assert [(await task).applied for task in waiting] == [False, False]
        assert await store.load_state("tg:1") is None
        assert await store.client_ids() == []
        later = await c.send(Start())  # afterwards, a message is a new start (if let in)
        assert later.applied and await store.client_ids() == ["tg:1"]


async def test_delete_cancelled_keeps_everything(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    c = ServiceClient(_service(loaded, store, clock))
    await c.consent()
    await c.send(Command(name="delete"))
    handled = await c.press("dn")
    assert not handled.erased
    assert await store.load_state("tg:1") is not None


async def test_reads_by_others_are_logged_for_the_client(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    c = ServiceClient(service)
    await c.consent()
    await store.assign_therapist("tg:1", "therapist:dr-lee", clock.now)
    data = await service.read_for("tg:1", reader="therapist:dr-lee", what="report")
    assert data["ledger"] and isinstance(data["ledger"], list)
    assert data["ledger"][-1]["kind"] == "data_read"
    await service.read_for("tg:1", reader="operator", what="export")  # same instant
    handled = await c.send(Command(name="mydata"))
    assert handled.export is not None
    ledger = handled.export["ledger"]
    assert isinstance(ledger, list)
    reads = [row["data"] for row in ledger if row["kind"] == "data_read"]
    assert reads == [{"reader": "therapist:dr-lee", "what": "report"},
                     {"reader": "operator", "what": "export"}]


async def test_every_read_is_logged_even_in_the_same_instant(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    await ServiceClient(service).consent()
    for _ in range(3):
        await service.read_for("tg:1", reader="operator", what="ledger")
    assert [r.kind for r in await store.ledger("tg:1")].count("data_read") == 3


async def test_timers_fire_once(loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    c = ServiceClient(service)
    await c.consent()
    await c.to_first_checkin()
    await c.send(Text(text="9"))
    assert [t.kind for t in await store.due_timers(clock.now.replace(year=2030))] == ["silence"]
    for row in await store.pending_outbox(clock(), limit=1000):
        await store.mark_sent(row.id, clock())
    assert await service.fire_due_timers() == 0  # not due yet
    clock.advance(minutes=11)
    assert await service.fire_due_timers() == 1
    assert await service.fire_due_timers() == 0
    texts = await _outbox_texts(store, clock)
    assert len(texts) == 1 and texts[0].startswith("One short thing before this session closes")
    clock.advance(hours=5)
    assert await service.fire_due_timers() == 0


async def test_crisis_text_is_never_stored(
        loaded: Loaded, store: SqliteStore, clock: Clock, tmp_path: Path) -> None:
    c = ServiceClient(_service(loaded, store, clock))
    await c.consent()
    await c.to_first_checkin()
    secret = f"marker-{tmp_path.name} {CRISIS}"
    await c.send(Text(text=secret))
    export = json.dumps(await store.export("tg:1"))
    assert "crisis_language" in export
    assert "marker-" not in export and CRISIS not in export


async def test_clients_are_handled_concurrently_and_each_in_order(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    clients = [ServiceClient(service, f"tg:{n}") for n in range(20)]
    await asyncio.gather(*(c.consent() for c in clients))
    for c in clients:
        kinds = [r.kind for r in await store.ledger(c.client_id)]
        assert kinds == ["consent", "age_confirmed", "consent", "consent", "consent", "consent"]
    assert len(await store.client_ids()) == 20


async def test_one_clients_events_queue_behind_each_other(
        loaded: Loaded, store: SqliteStore, clock: Clock) -> None:
    service = _service(loaded, store, clock)
    c = ServiceClient(service)
    await c.consent()
    await asyncio.gather(*(c.send(Command(name="help"), event_id=f"h{n}") for n in range(10)))
    texts = await _outbox_texts(store, clock)
    assert sum(t.startswith("<b>What you can do") for t in texts) == 10
