"""Tests of the store: every test that uses ``store`` or ``database`` runs on SQLite and on
PostgreSQL; those about SQLite's files, PRAGMAs and group commit on SQLite only (PostgreSQL's
own are in ``test_store_postgres.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.store import (
    Commit,
    DueTimer,
    Invite,
    LedgerRecord,
    OutgoingMessage,
    PlanRecord,
    SqliteStore,
    StaleState,
    Store,
    StoredAnswer,
    StoreError,
    Timer,
    _migrations,
    _sqlite,
    store_for,
)

pytestmark = pytest.mark.backends

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def make(event_id: str, client_id: str = "tg:1", **parts: object) -> Commit:
    """A commit at T0 with the given parts; state defaults to ``{"event": event_id}``."""
    parts.setdefault("state", {"event": event_id})
    return Commit(event_id=event_id, client_id=client_id, at=T0, **parts)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "rehearse.db"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path) as opened:
        yield opened


@pytest.fixture
def group_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every group the writer applies."""
    sizes: list[int] = []
    apply_group = _sqlite._apply_group

    def spy(conn: sqlite3.Connection, group: Sequence[object]) -> object:
        sizes.append(len(group))
        return apply_group(conn, group)  # type: ignore[arg-type]

    monkeypatch.setattr(_sqlite, "_apply_group", spy)
    return sizes


# -- commit and read back ------------------------------------------------------------------


async def test_commit_round_trip(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    applied = await store.commit(
        Commit(
            event_id="tg:update:1",
            client_id="tg:1",
            at=T0,
            state={"step": "ask", "level": 2, "vars": {"name": "Ada"}, "seen": [1, 2]},
            ledger=[
                LedgerRecord("consent", {"core": True, "version": 3}, T0),
                LedgerRecord("checkin", {"suds": 4}, (T0 + MINUTE).astimezone(berlin)),
            ],
            outbox=[OutgoingMessage("tg:1", 101, {"text": "Hello 👋", "buttons": [["Go", "g"]]})],
            answers=[StoredAnswer("share-1", "I like quiet mornings.", T0)],
            timers_set=[Timer("reminder", T0 + timedelta(days=1), {"text": "neutral"})],
        )
    )
    assert applied is True
    assert await store.load_state("tg:1") == {
        "step": "ask",
        "level": 2,
        "vars": {"name": "Ada"},
        "seen": [1, 2],
    }
    assert await store.client_ids() == ["tg:1"]
    ledger = await store.ledger("tg:1")
    assert [(r.kind, r.data, r.at, r.client_id) for r in ledger] == [
        ("consent", {"core": True, "version": 3}, T0, "tg:1"),
        ("checkin", {"suds": 4}, T0 + MINUTE, "tg:1"),
    ]
    assert ledger[0].seq < ledger[1].seq
    assert all(r.at.tzinfo is not None for r in ledger)
    assert await store.answers("tg:1") == [StoredAnswer("share-1", "I like quiet mornings.", T0)]
    [row] = await store.pending_outbox(T0)
    assert (row.client_id, row.chat_id, row.attempts, row.not_before) == ("tg:1", 101, 0, None)
    assert row.payload == {"text": "Hello 👋", "buttons": [["Go", "g"]]}
    assert await store.due_timers(T0 + timedelta(days=1)) == [
        DueTimer("tg:1", "reminder", T0 + timedelta(days=1), {"text": "neutral"})
    ]
    assert await store.load_state("tg:unknown") is None


async def test_state_none_leaves_state_unchanged(store: Store) -> None:
    await store.commit(make("e1", state={"n": 1}))
    assert await store.commit(make("e2", state=None, ledger=[LedgerRecord("seen", {}, T0)]))
    assert await store.load_state("tg:1") == {"n": 1}
    assert [r.kind for r in await store.ledger("tg:1")] == ["seen"]


@given(
    states=st.lists(
        st.dictionaries(
            st.text(max_size=5),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(min_value=-(2**63), max_value=2**63)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(alphabet=st.characters(codec="utf-8")),
                lambda children: (
                    st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=5), children, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=4,
        ),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_state_round_trips(database: str, states: list[dict[str, object]]) -> None:
    example = uuid.uuid4().hex  # the examples share the database

    async def run() -> list[dict[str, object] | None]:
        async with store_for(database) as store:
            for number, state in enumerate(states):
                await store.commit(make(f"{example}:{number}", f"{example}:{number}",
                                        state=state))
            return [await store.load_state(f"{example}:{number}")
                    for number in range(len(states))]

    assert asyncio.run(run()) == states


async def test_naive_datetimes_and_non_objects_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.commit(Commit(event_id="e", client_id="c", at=datetime(2025, 1, 1), state={}))
    with pytest.raises(ValueError, match="naive"):
        await store.pending_outbox(datetime(2025, 1, 1))
    with pytest.raises(TypeError, match="mapping"):
        await store.commit(make("e", state=[1, 2]))
    with pytest.raises(ValueError):
        await store.commit(make("e", state={"x": math.nan}))
    assert await store.commit(make("e")) is True  # nothing of the rejected commits stuck


# -- dedup, atomicity, ordering, grouping ----------------------------------------------------


async def test_duplicate_event_changes_nothing(store: Store) -> None:
    first = make(
        "tg:update:7",
        state={"n": 1},
        ledger=[LedgerRecord("a", {}, T0)],
        outbox=[OutgoingMessage("tg:1", 1, {"text": "one"})],
        timers_set=[Timer("reminder", T0, {})],
    )
    again = make(
        "tg:update:7",
        state={"n": 2},
        ledger=[LedgerRecord("b", {}, T0)],
        outbox=[OutgoingMessage("tg:1", 1, {"text": "two"})],
        timers_cancel=["*"],
        cancel_outbox=True,
    )
    assert await store.commit(first) is True
    assert await store.commit(again) is False
    assert await store.load_state("tg:1") == {"n": 1}
    assert [r.kind for r in await store.ledger("tg:1")] == ["a"]
    assert [r.payload["text"] for r in await store.pending_outbox(T0)] == ["one"]
    assert [t.kind for t in await store.due_timers(T0)] == ["reminder"]


async def test_duplicate_submitted_at_once(
    store: Store, backend: str, group_sizes: list[int]
) -> None:
    results = await asyncio.gather(
        store.commit(make("dup", state={"n": 1})), store.commit(make("dup", state={"n": 2}))
    )
    assert list(results) == [True, False]
    if backend == "sqlite":
        assert group_sizes == [2]  # both in one transaction
    assert await store.load_state("tg:1") == {"n": 1}


async def test_unserialisable_payload_fails_before_anything_is_written(store: Store) -> None:
    bad = make(
        "e1",
        state={"n": 1},
        ledger=[LedgerRecord("a", {}, T0)],
        outbox=[OutgoingMessage("tg:1", 1, {"when": T0})],  # a datetime is not JSON
    )
    with pytest.raises(TypeError, match="datetime"):
        await store.commit(bad)
    assert await store.load_state("tg:1") is None
    assert await store.ledger("tg:1") == []
    assert await store.pending_outbox(T0) == []
    assert await store.commit(make("e1")) is True  # the event id was not consumed


async def test_failing_commit_rolls_back_only_itself(
    store: Store, backend: str, group_sizes: list[int]
) -> None:
    # An empty ledger kind passes encoding but violates a CHECK constraint in SQL, after
    # the dedup row, the state and the outbox row of that commit were already written.
    bad = make(
        "bad",
        "tg:2",
        state={"n": 2},
        outbox=[OutgoingMessage("tg:2", 2, {"text": "x"})],
        ledger=[LedgerRecord("fine", {}, T0), LedgerRecord("", {}, T0)],
    )
    results = await asyncio.gather(
        store.commit(make("ok1", "tg:1")),
        store.commit(bad),
        store.commit(make("ok2", "tg:3")),
        return_exceptions=True,
    )
    if backend == "sqlite":
        assert group_sizes == [3]  # in one transaction, each commit in its savepoint
    assert results[0] is True
    assert results[2] is True
    assert isinstance(results[1], StoreError)
    assert "'bad'" in str(results[1])
    assert await store.client_ids() == ["tg:1", "tg:3"]
    assert await store.ledger("tg:2") == []
    assert await store.pending_outbox(T0) == []
    assert await store.commit(make("bad", "tg:2")) is True  # its dedup row was rolled back


async def test_concurrent_commits_share_a_transaction(
    sqlite_store: SqliteStore, group_sizes: list[int]
) -> None:
    store = sqlite_store
    results = await asyncio.gather(*(store.commit(make(f"e{n}", f"c{n}")) for n in range(300)))
    assert results == [True] * 300
    assert sum(group_sizes) == 300
    assert max(group_sizes) == _sqlite.MAX_GROUP
    assert len(group_sizes) == 2


async def test_sent_messages_are_recorded_in_the_group_commit(
    sqlite_store: SqliteStore, group_sizes: list[int]
) -> None:
    store = sqlite_store
    await store.commit(make("e0", outbox=[OutgoingMessage("tg:1", 11, {"n": n}) for n in range(3)]))
    rows = await store.pending_outbox(T0)
    group_sizes.clear()
    await asyncio.gather(
        *(store.mark_sent(row.id, T0, [100 + n]) for n, row in enumerate(rows)),
        store.commit(make("e1", "tg:2")),
    )
    assert group_sizes == [4]  # three sends and a commit: one transaction, one fsync
    assert await store.pending_outbox(T0) == []
    assert await store.recent_sent_messages("tg:1", T0) == [(11, 100), (11, 101), (11, 102)]


async def test_each_clients_commits_keep_submission_order(store: Store) -> None:
    rng = random.Random(7)
    submissions = [(f"tg:{rng.randint(1, 3)}", number) for number in range(150)]

    async def submit(client_id: str, number: int) -> None:
        await asyncio.sleep(0)  # tasks interleave, but submit in creation order
        await store.commit(
            make(
                f"e{number}",
                client_id,
                state={"last": number},
                ledger=[LedgerRecord("step", {"n": number}, T0)],
                outbox=[OutgoingMessage(client_id, 1, {"n": number})],
            )
        )

    await asyncio.gather(*(submit(c, n) for c, n in submissions))
    outbox = await store.pending_outbox(T0, limit=1000)
    for client_id in ("tg:1", "tg:2", "tg:3"):
        expected = [n for c, n in submissions if c == client_id]
        assert [r.data["n"] for r in await store.ledger(client_id)] == expected
        assert [r.payload["n"] for r in outbox if r.client_id == client_id] == expected
        assert await store.load_state(client_id) == {"last": expected[-1]}


async def test_close_flushes_pending_commits(database: str) -> None:
    store = store_for(database)
    await store.open()
    tasks = [asyncio.create_task(store.commit(make(f"e{n}", f"c{n}"))) for n in range(50)]
    await asyncio.sleep(0)  # let the tasks queue their commits
    await store.close()
    assert [task.result() for task in tasks] == [True] * 50
    with pytest.raises(StoreError, match="not open"):
        await store.commit(make("late"))
    async with store_for(database) as reopened:
        assert len(await reopened.client_ids()) == 50


# -- outbox ----------------------------------------------------------------------------------


async def test_outbox_lifecycle(store: Store) -> None:
    await store.commit(
        make(
            "e1",
            outbox=[OutgoingMessage("tg:1", 11, {"n": n}) for n in (1, 2, 3)]
            + [OutgoingMessage("term:ada", None, {"n": 4})],
        )
    )
    await store.commit(make("e2", "tg:2", outbox=[OutgoingMessage("tg:2", 22, {"n": 5})]))
    rows = await store.pending_outbox(T0)
    assert [r.payload["n"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r.payload["n"] for r in await store.pending_outbox(T0, limit=2)] == [1, 2]

    # Deferring a client's first message holds back its later ones too.
    await store.defer_outbox(rows[0].id, T0 + MINUTE, attempts=1)
    assert [r.payload["n"] for r in await store.pending_outbox(T0)] == [4, 5]
    later = await store.pending_outbox(T0 + MINUTE)
    assert [r.payload["n"] for r in later] == [1, 2, 3, 4, 5]
    assert (later[0].attempts, later[0].not_before) == (1, T0 + MINUTE)

    await store.mark_sent(rows[0].id, T0, [9001])
    await store.mark_sent(rows[1].id, T0 + MINUTE, [9002, 9003])
    await store.mark_sent(rows[3].id, T0, [1])  # no chat: nothing to remember
    await store.mark_sent(123456, T0, [5])  # unknown id: ignored
    assert [r.payload["n"] for r in await store.pending_outbox(T0 + MINUTE)] == [3, 5]
    assert await store.recent_sent_messages("tg:1", T0) == [(11, 9001), (11, 9002), (11, 9003)]
    assert await store.recent_sent_messages("tg:1", T0 + MINUTE) == [(11, 9002), (11, 9003)]
    assert await store.recent_sent_messages("term:ada", T0) == []
    await store.record_sent("tg:1", 11, [9004], T0 + MINUTE)  # a file sent outside the outbox
    assert await store.recent_sent_messages("tg:1", T0 + MINUTE) == [
        (11, 9002), (11, 9003), (11, 9004)]


async def test_cancel_outbox_drops_unsent_before_queuing_new(store: Store) -> None:
    await store.commit(make("e1", outbox=[OutgoingMessage("tg:1", 1, {"n": 1})]))
    await store.commit(make("e2", "tg:2", outbox=[OutgoingMessage("tg:2", 2, {"n": 2})]))
    await store.commit(
        make("e3", cancel_outbox=True, outbox=[OutgoingMessage("tg:1", 1, {"n": 3})])
    )
    assert [r.payload["n"] for r in await store.pending_outbox(T0)] == [2, 3]


async def test_a_halt_keeps_therapist_alerts_and_a_retried_alert_holds_back_no_chat(
        store: Store) -> None:
    """An alert to the therapist (payload ``alert``) is the client's row in another chat: a
    halt's cancel leaves it, and while it waits for a retry the client's own chat goes on."""
    await store.commit(make("e1", outbox=[OutgoingMessage("tg:1", 1, {"n": 1}),
                                          OutgoingMessage("tg:1", 9000, {"n": 2, "alert": True})]))
    await store.commit(make("e2", cancel_outbox=True,
                            outbox=[OutgoingMessage("tg:1", 1, {"n": 3})]))
    assert [r.payload["n"] for r in await store.pending_outbox(T0)] == [2, 3]
    [alert, _] = await store.pending_outbox(T0)
    await store.defer_outbox(alert.id, T0 + MINUTE, 1)
    await store.commit(make("e3", outbox=[OutgoingMessage("tg:1", 1, {"n": 4})]))
    assert [r.payload["n"] for r in await store.pending_outbox(T0)] == [3, 4]
    assert [r.payload["n"] for r in await store.pending_outbox(T0 + MINUTE)] == [2, 3, 4]
    await store.erase("tg:1")
    assert await store.pending_outbox(T0 + MINUTE) == []


# -- timers ----------------------------------------------------------------------------------


async def test_timers_set_replace_and_cancel(store: Store) -> None:
    await store.commit(
        make(
            "e1",
            timers_set=[
                Timer("reminder", T0 + 60 * MINUTE, {"v": 1}),
                Timer("silence", T0 + 10 * MINUTE, {}),
            ],
        )
    )
    await store.commit(make("e2", "tg:2", timers_set=[Timer("reminder", T0 + 5 * MINUTE, {})]))
    due = await store.due_timers(T0 + 10 * MINUTE)
    assert [(t.client_id, t.kind) for t in due] == [("tg:2", "reminder"), ("tg:1", "silence")]
    assert await store.due_timers(T0) == []

    await store.commit(make("e3", timers_set=[Timer("reminder", T0 + MINUTE, {"v": 2})]))
    due = await store.due_timers(T0 + MINUTE)
    assert due == [DueTimer("tg:1", "reminder", T0 + MINUTE, {"v": 2})]

    await store.commit(make("e4", timers_cancel=["silence"]))
    assert [t.kind for t in await store.due_timers(T0 + 99 * MINUTE) if t.client_id == "tg:1"] == [
        "reminder"
    ]
    # Cancel-all and set in one commit: the new timer is the only one left.
    await store.commit(make("e5", timers_cancel=["*"], timers_set=[Timer("later", T0, {})]))
    assert [(t.client_id, t.kind) for t in await store.due_timers(T0 + 99 * MINUTE)] == [
        ("tg:1", "later"),
        ("tg:2", "reminder"),
    ]


# -- invites and failed codes ------------------------------------------------------------------


def invite(code_hash: str, expires: datetime = T0 + timedelta(days=7)) -> Invite:
    return Invite(code_hash, "first-steps", 3, expires_at=expires, created_at=T0)


async def test_invite_is_single_use_and_expires(store: Store) -> None:
    await store.add_invite(invite("h1"))
    await store.add_invite(invite("h2", expires=T0 + MINUTE))
    with pytest.raises(StoreError):
        await store.add_invite(invite("h1"))

    redeemed = await store.redeem_invite("h1", "tg:1", T0)
    assert redeemed == Invite(
        "h1", "first-steps", 3, T0 + timedelta(days=7), T0, redeemed_by="tg:1", redeemed_at=T0
    )
    assert await store.redeem_invite("h1", "tg:1", T0 + MINUTE) == redeemed  # idempotent
    assert await store.redeem_invite("h1", "tg:2", T0) is None
    assert await store.redeem_invite("nope", "tg:2", T0) is None
    assert await store.redeem_invite("h2", "tg:2", T0 + MINUTE) is None  # expired
    assert [(i.code_hash, i.redeemed_by) for i in await store.list_invites()] == [
        ("h1", "tg:1"),
        ("h2", None),
    ]


async def test_concurrent_redemption_has_one_winner(store: Store, database: str) -> None:
    async with store_for(database) as second:  # e.g. the CLI next to the running bot
        for round_ in range(20):
            await store.add_invite(invite(f"race{round_}"))
            results = await asyncio.gather(
                store.redeem_invite(f"race{round_}", "tg:1", T0),
                second.redeem_invite(f"race{round_}", "tg:2", T0),
            )
            winners = [r.redeemed_by for r in results if r is not None]
            assert len(winners) == 1


async def test_failed_codes_are_counted_within_the_window(store: Store) -> None:
    window = 10 * MINUTE
    counts = [await store.record_failed_code("tg:1", T0 + n * MINUTE, window) for n in range(3)]
    assert counts == [1, 2, 3]
    assert await store.record_failed_code("tg:2", T0, window) == 1
    assert await store.record_failed_code("tg:1", T0 + 11 * MINUTE, window) == 2  # +2, +11
    assert await store.record_failed_code("tg:1", T0 + 30 * MINUTE, window) == 1


# -- export, erase, purge --------------------------------------------------------------------


async def test_export_contains_everything_as_json(store: Store) -> None:
    await store.add_invite(dataclasses.replace(invite("h1"), therapist="tg:9000"))
    await store.redeem_invite("h1", "tg:1", T0)
    await store.record_failed_code("tg:1", T0, MINUTE)
    await store.commit(
        make(
            "e1",
            state={"level": 2},
            ledger=[LedgerRecord("consent", {"core": True}, T0)],
            outbox=[OutgoingMessage("tg:1", 1, {"text": "a"}), OutgoingMessage("tg:1", 1, {})],
            answers=[StoredAnswer("s1", "my answer", T0)],
            plans=[PlanRecord({"warning_signs": "not sleeping"}, "client", "accepted", T0,
                              ("warning_signs",))],
            timers_set=[Timer("reminder", T0 + MINUTE, {"k": 1})],
        )
    )
    await store.commit(make("other", "tg:2", ledger=[LedgerRecord("x", {}, T0)]))
    [first, _] = await store.pending_outbox(T0)
    await store.mark_sent(first.id, T0, [77])

    exported = await store.export("tg:1")
    assert json.loads(json.dumps(exported)) == exported
    stamp = "2025-03-01T09:00:00.000000Z"
    assert exported == {
        "client_id": "tg:1",
        "state": {"level": 2},
        "updated_at": stamp,
        "ledger": [{"seq": 1, "at": stamp, "kind": "consent", "data": {"core": True}}],
        "answers": [{"step": "s1", "text": "my answer", "at": stamp, "kind": "answer"}],
        "safety_plans": [{"version": 1, "at": stamp, "author": "client", "status": "accepted",
                          "changed": ["warning_signs"], "suggestion": None,
                          "parts": {"warning_signs": "not sleeping"}}],
        "timers": [{"kind": "reminder", "due": "2025-03-01T09:01:00.000000Z", "payload": {"k": 1}}],
        "outbox": [
            {
                "id": first.id + 1,
                "chat_id": 1,
                "payload": {},
                "attempts": 0,
                "not_before": None,
                "created_at": stamp,
            }
        ],
        "sent_messages": [{"chat_id": 1, "message_id": 77, "sent_at": stamp}],
        "events": [{"event_id": "e1", "at": stamp}],
        "failed_codes": [stamp],
        "invites": [
            {
                "script_id": "first-steps",
                "max_level": 3,
                "created_at": stamp,
                "expires_at": "2025-03-08T09:00:00.000000Z",
                "redeemed_at": stamp,
                "therapist": "tg:9000",
            }
        ],
        "therapist": {"therapist": "tg:9000", "since": stamp, "looked_at": None},
    }
    assert datetime.fromisoformat(stamp) == T0
    empty = await store.export("tg:nobody")
    assert empty["state"] is None
    assert empty["ledger"] == []


def raw_files(db_path: Path) -> bytes:
    """The bytes of the database and its -wal and -shm files, as they are on disk."""
    return b"".join(
        path.read_bytes()
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
        if path.exists()
    )


async def test_erase_leaves_no_trace_in_the_files(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    store = sqlite_store
    secret = "Z7Q-secret-fear-of-being-left"
    victim = "tg:4711815"
    rng = random.Random(0)  # enough churn to rebalance b-tree pages many times

    async def client(client_id: str, mark: str) -> None:
        for n in range(150):
            text = f"{mark} " * rng.choice([1, 3, 10, 50, 400])
            at = T0 + n * MINUTE
            await store.commit(
                Commit(
                    event_id=f"{client_id}:{n}",
                    client_id=client_id,
                    at=at,
                    state={"n": n, "note": text[: rng.randint(10, len(text))]},
                    ledger=[LedgerRecord("share", {"t": text[: rng.randint(10, 3000)]}, at)]
                    * rng.randint(0, 3),
                    outbox=[OutgoingMessage(client_id, int(client_id[3:]), {"text": text[:500]})],
                    answers=[StoredAnswer("s", text[: rng.randint(5, 200)], at)]
                    if rng.random() < 0.5
                    else [],
                    plans=[PlanRecord({"warning_signs": text[: rng.randint(5, 400)]},
                                      "client", "accepted", at, ("warning_signs",))]
                    if rng.random() < 0.3
                    else [],
                    timers_set=[Timer(rng.choice("abc"), at, {"m": mark})],
                    timers_cancel=["*"] if rng.random() < 0.2 else [],
                    cancel_outbox=rng.random() < 0.3,
                )
            )
            if rng.random() < 0.1:
                for row in await store.pending_outbox(at, limit=rng.randint(1, 20)):
                    await store.mark_sent(row.id, at, [rng.randint(1, 10**9)])

    others = [f"tg:{n}" for n in range(15)]
    await asyncio.gather(client(victim, secret), *(client(c, "ordinary-text") for c in others))
    await store.add_invite(invite("h1"))
    await store.redeem_invite("h1", victim, T0)
    await store.record_failed_code(victim, T0, MINUTE)
    before = raw_files(db_path)
    assert secret.encode() in before
    assert victim.encode() in before

    await store.erase(victim)

    after = raw_files(db_path)
    assert secret.encode() not in after
    assert victim.encode() not in after
    nothing = await store.export("tg:never-seen")
    assert await store.export(victim) == nothing | {"client_id": victim}
    assert [i.redeemed_by for i in await store.list_invites()] == [None]
    assert await store.redeem_invite("h1", "tg:someone", T0) is None  # still used
    assert await store.client_ids() == sorted(others)
    assert await store.commit(make("after-erase", "tg:0")) is True
    assert len(await store.ledger("tg:0")) > 0
    assert victim.encode() not in raw_files(db_path)


def reading(db_path: Path) -> sqlite3.Connection:
    """Another connection in the middle of a read transaction, as a backup or export is."""
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM answers").fetchone()
    return reader


async def test_an_erasure_held_off_by_a_reader_is_done_and_cleaned_up_when_it_lets_go(
    db_path: Path,
) -> None:
    secret, victim = "Z7Q-what-I-typed-while-a-backup-ran", "tg:4711816"
    async with SqliteStore(db_path, cleanup_retry=0.05) as store:
        await store.commit(make("tg:7", victim, answers=[StoredAnswer("s", secret, T0)],
                                outbox=[OutgoingMessage(victim, 4711816, {"text": secret})]))
        await store.commit(make("tg:8", victim))  # the event that asks for the erasure
        await store.commit(make("other", "tg:2"))
        reader = reading(db_path)
        try:
            started = asyncio.get_running_loop().time()
            await store.erase(victim, keep_event="tg:8")  # neither fails nor waits for it
            assert asyncio.get_running_loop().time() - started < 1
            assert await store.client_ids() == ["tg:2"]
            assert await store.answers(victim) == []
            assert await store.export(victim) == await store.export("tg:nobody") | {
                "client_id": victim}
            assert await store.commit(make("tg:8", victim)) is False  # delivered again
            assert await store.commit(make("tg:7", victim)) is True  # others are gone
            await store.erase(victim)
            assert not await store.cleaned(timeout=0.3)  # the reader holds old copies
            assert secret.encode() in raw_files(db_path)
        finally:
            reader.execute("ROLLBACK")
            reader.close()
        assert await store.cleaned(timeout=5)
        assert secret.encode() not in raw_files(db_path)
        assert victim.encode() not in raw_files(db_path)
        with sqlite3.connect(db_path) as conn:  # the kept dedup row belongs to nobody
            assert conn.execute("SELECT client_id FROM inbox WHERE event_id = 'tg:8'"
                                ).fetchall() == [("",)]
            assert conn.execute("SELECT * FROM cleanup_due").fetchall() == []
        conn.close()
        assert await store.purge(T0 + timedelta(days=3), ledger_days=9, answers_days=9) == 2
        assert await store.commit(make("tg:8", victim)) is True  # after the technical days


async def test_a_vacuum_owed_at_a_crash_is_done_at_the_next_open(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.commit(make("e1", answers=[StoredAnswer("s", f"{n} to be deleted " * 30, T0)
                                               for n in range(200)]))
    # What a crash right after an erasure's deletion committed leaves: rows gone, VACUUM owed.
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM answers")
    conn.execute("INSERT INTO cleanup_due (id, task) VALUES (1, 'vacuum')")
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 10  # pages freed, not vacuumed
    conn.close()
    async with SqliteStore(db_path) as store:
        assert await store.cleaned(timeout=5)
        with sqlite3.connect(db_path) as check:
            assert check.execute("SELECT * FROM cleanup_due").fetchall() == []
            assert check.execute("PRAGMA freelist_count").fetchone() == (0,)  # vacuumed
        check.close()


async def test_purge_deletes_rows_past_retention(store: Store) -> None:
    old, recent = T0, T0 + timedelta(days=20)
    for number, at in enumerate((old, recent)):
        await store.commit(
            Commit(
                event_id=f"e{number}",
                client_id="tg:1",
                at=at,
                state={"n": number},
                ledger=[LedgerRecord("k", {"n": number}, at)],
                answers=[StoredAnswer("s", f"answer {number}", at)],
                outbox=[OutgoingMessage("tg:1", 1, {"n": number})],
            )
        )
        [row] = await store.pending_outbox(at)
        await store.mark_sent(row.id, at, [number])
    await store.record_failed_code("tg:1", old, MINUTE)

    now = recent + timedelta(days=1)
    deleted = await store.purge(now, ledger_days=10, answers_days=10)
    assert deleted == 5  # old ledger row, answer, dedup row, sent message, failed code
    assert [r.data["n"] for r in await store.ledger("tg:1")] == [1]
    assert [a.text for a in await store.answers("tg:1")] == ["answer 1"]
    assert await store.recent_sent_messages("tg:1", old) == [(1, 1)]
    assert await store.load_state("tg:1") == {"n": 1}
    assert await store.purge(now, ledger_days=10, answers_days=10) == 0
    assert await store.commit(make("e0")) is True  # its dedup row has expired
    assert await store.commit(make("e1")) is False
    with pytest.raises(ValueError):
        await store.purge(now, ledger_days=-1, answers_days=10)


# -- schema, files, PRAGMAs -------------------------------------------------------------------


async def test_opening_an_old_database_migrates_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStore(db_path) as store:
        await store.commit(make("e1", state={"n": 1}))
    v2 = ("ALTER TABLE clients ADD COLUMN pseudonym TEXT", "CREATE TABLE notes (x TEXT)")
    monkeypatch.setattr(_migrations, "MIGRATIONS", (*_migrations.MIGRATIONS, v2))

    async with SqliteStore(db_path) as store:
        assert await store.load_state("tg:1") == {"n": 1}
        assert await store.commit(make("e2", state={"n": 2})) is True
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
        assert conn.execute("SELECT pseudonym FROM clients").fetchall() == [(None,)]
        conn.execute("SELECT x FROM notes")
    conn.close()


async def test_a_database_of_schema_4_gets_the_update_queue_and_state_versions(
    db_path: Path,
) -> None:
    """Schema 4 (therapists) was the last before the update queue: its data is kept, every
    client gets a state version of their own, and new versions come after all of them."""
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert _migrations.migrate(conn, _migrations.MIGRATIONS[:4]) == 0
    at = "2025-03-01T09:00:00.000000Z"
    conn.executemany("INSERT INTO clients (client_id, state, updated_at) VALUES (?, ?, ?)",
                     [(client, json.dumps({"n": n}), at) for n, client in enumerate("ab")])
    conn.execute("INSERT INTO invites VALUES ('h1', 'first-steps', 2, ?, ?, 'a', ?, 'tg:9000')",
                 ("2025-03-08T09:00:00.000000Z", at, at))
    conn.execute("INSERT INTO caseload VALUES ('a', 'tg:9000', ?, NULL)", (at,))
    conn.close()

    async with SqliteStore(db_path) as store:
        assert [i.therapist for i in await store.list_invites()] == ["tg:9000"]
        assert [e.client_id for e in await store.caseload("tg:9000")] == ["a"]
        (state_a, version_a), (_, version_b) = [await store.load_versioned(c) for c in "ab"]
        assert state_a == {"n": 0} and 0 < version_a != version_b > 0
        await store.commit(make("e1", "c", based_on=0))
        _, version_c = await store.load_versioned("c")
        assert version_c > max(version_a, version_b)
        with pytest.raises(StaleState):
            await store.commit(make("e2", "a", based_on=version_a + 100))
        assert await store.enqueue_update(1, "a", update(1), T0)
        assert [u.update_id for u in await store.claim_updates("w", 5, LEASE)] == [1]
    with sqlite3.connect(db_path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


async def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStore(db_path):
        pass
    broken = ("CREATE TABLE half (x TEXT)", "THIS IS NOT SQL")
    monkeypatch.setattr(_migrations, "MIGRATIONS", (*_migrations.MIGRATIONS, broken))
    with pytest.raises(StoreError):
        await SqliteStore(db_path).open()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS) - 1,)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []
    conn.close()


async def test_a_newer_database_is_refused(db_path: Path) -> None:
    async with SqliteStore(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {len(_migrations.MIGRATIONS) + 1}")
    conn.close()
    store = SqliteStore(db_path)
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    await store.close()  # closing a store that failed to open is harmless


def permissions(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_owner_only(db_path: Path, tmp_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.commit(make("e1"))
        for suffix in ("", "-wal", "-shm"):
            assert permissions(Path(f"{db_path}{suffix}")) == 0o600, suffix
    assert permissions(db_path.parent) == 0o700

    loose = tmp_path / "loose.db"
    loose.touch()
    loose.chmod(0o644)
    async with SqliteStore(loose):
        assert permissions(loose) == 0o600


async def test_ledger_rows_cannot_be_updated(sqlite_store: SqliteStore, db_path: Path) -> None:
    store = sqlite_store
    await store.commit(make("e1", ledger=[LedgerRecord("consent", {"core": True}, T0)]))
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE ledger SET data = '{}'")
    conn.close()
    assert [r.data for r in await store.ledger("tg:1")] == [{"core": True}]


async def test_pragmas_are_in_effect(sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    def read(conn: sqlite3.Connection) -> dict[str, object]:
        names = "journal_mode synchronous secure_delete busy_timeout foreign_keys temp_store"
        return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names.split()}

    assert await store._run(read) == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "secure_delete": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "temp_store": 2,  # MEMORY
    }


async def test_erasures_by_another_process_are_noticed_and_own_writes_are_not(
    store: Store, database: str
) -> None:
    assert await store.changed_elsewhere() is False  # the first call only takes a reading
    await store.commit(make("e1"))
    await store.record_failed_code("tg:1", T0, MINUTE)
    assert await store.changed_elsewhere() is False  # this connection's own writes
    await store.erase("tg:2")
    assert await store.changed_elsewhere() is False  # nor its own erasures
    async with store_for(database) as operator:  # e.g. `rehearse erase`, or another worker
        await operator.erase("tg:1")
    assert await store.changed_elsewhere() is True
    assert await store.changed_elsewhere() is False  # reported once


# -- state versions: commits computed from an older state are refused ------------------------


async def test_a_commit_based_on_an_older_state_is_refused(store: Store) -> None:
    assert await store.load_versioned("tg:1") == (None, 0)
    assert await store.commit(make("e1", state={"n": 1}, based_on=0))
    state, first = await store.load_versioned("tg:1")
    assert state == {"n": 1} and first > 0
    with pytest.raises(StaleState):  # computed from "no state yet", but there is one now
        await store.commit(make("e2", state={"n": 2}, based_on=0,
                                ledger=[LedgerRecord("x", {}, T0)]))
    assert await store.ledger("tg:1") == []  # nothing of it applied ...
    assert await store.commit(make("e2", state={"n": 2}, based_on=first))  # ... nor its id used
    _, second = await store.load_versioned("tg:1")
    assert second != first
    assert await store.commit(make("e2", state={"n": 3}, based_on=first)) is False  # a dup
    assert await store.commit(make("e3", state=None, ledger=[LedgerRecord("x", {}, T0)]))
    assert (await store.load_versioned("tg:1"))[1] == second  # no state written, same version

    await store.erase("tg:1")
    assert await store.load_versioned("tg:1") == (None, 0)
    assert await store.commit(make("e4", state={"n": 4}, based_on=0))
    _, again = await store.load_versioned("tg:1")
    assert again not in (first, second)  # a client erased and back never repeats a version


# -- the update queue and leases -------------------------------------------------------------

LEASE = timedelta(seconds=30)


def update(update_id: int, text: str = "hi") -> dict[str, object]:
    return {"update_id": update_id, "message": {"text": text}}


async def test_updates_are_stored_once_and_claimed_one_per_client_in_order(store: Store) -> None:
    for update_id, client in ((10, "tg:1"), (11, "tg:2"), (12, "tg:1"), (13, "tg:3"),
                              (14, "tg:1"), (15, "")):
        assert await store.enqueue_update(update_id, client, update(update_id), T0)
    assert await store.enqueue_update(10, "tg:1", update(10, "again"), T0) is False
    assert await store.queued_updates() == 6

    first = await store.claim_updates("w1", 10, LEASE)
    assert [u.update_id for u in first] == [10, 11, 13, 15]  # the head of each lane
    assert first[0].body == update(10) and first[0].readable
    assert await store.claim_updates("w2", 10, LEASE) == []  # every lane is taken
    await store.finish_updates([10, 11])
    assert [u.update_id for u in await store.claim_updates("w2", 10, LEASE)] == [12]
    await store.release_updates("w1", [13])  # given back unhandled: claimed again
    await store.release_updates("w1", [12])  # not w1's claim: it stays w2's
    assert [u.update_id for u in await store.claim_updates("w1", 10, LEASE)] == [13]
    await store.finish_updates([12, 13, 15])
    assert [u.update_id for u in await store.claim_updates("w1", 10, LEASE)] == [14]
    await store.finish_updates([14])
    assert await store.queued_updates() == 0
    assert await store.claim_updates("w1", 10, LEASE) == []
    assert await store.enqueue_update(12, "tg:1", update(12), T0) is False  # handled: known


async def test_a_claim_whose_owner_died_runs_out(store: Store) -> None:
    await store.enqueue_update(1, "tg:1", update(1), T0)
    await store.enqueue_update(2, "tg:2", update(2), T0)
    short = timedelta(seconds=1)  # the database's clock: a real wait, with margins for load
    assert [u.update_id for u in await store.claim_updates("dead", 10, short)] == [1, 2]
    await asyncio.sleep(0.6)
    await store.renew_claims("dead", short)
    await asyncio.sleep(0.6)  # past the first claim's end: only the renewal holds them
    assert await store.claim_updates("alive", 10, LEASE) == []
    taken: list[int] = []
    for _ in range(50):  # no more renewals: the claims run out
        taken += [u.update_id for u in await store.claim_updates("alive", 10, LEASE)]
        if len(taken) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(taken) == [1, 2]


async def test_handled_updates_keep_only_their_id_for_the_technical_retention(
    store: Store, database: str
) -> None:
    secret = "Z7Q-typed-without-the-opt-in"
    await store.enqueue_update(1, "tg:1", update(1, secret), T0)
    await store.enqueue_update(2, "tg:1", update(2, secret), T0)
    await store.claim_updates("w", 10, LEASE)
    await store.finish_updates([1])
    await store.erase("tg:1")  # the handled one is nobody's now; the other is still to do
    assert [u.body for u in await store.claim_updates("w", 10, LEASE)] == [update(2, secret)]
    await store.finish_updates([2])
    assert await store.enqueue_update(1, "tg:1", update(1), T0) is False
    assert await store.purge(T0 + timedelta(days=3), ledger_days=9, answers_days=9) == 2
    assert await store.enqueue_update(1, "tg:1", update(1), T0 + timedelta(days=3))


async def test_a_lease_is_held_by_one_owner_until_dropped_or_run_out(store: Store) -> None:
    short = timedelta(seconds=0.3)
    assert await store.hold_lease("leader", "a", short)
    assert not await store.hold_lease("leader", "b", short)
    assert await store.hold_lease("leader", "a", short)  # renewed
    assert await store.hold_lease("other", "b", short)  # another role
    await store.drop_lease("leader", "b")  # not b's: nothing
    assert not await store.hold_lease("leader", "b", short)
    await store.drop_lease("leader", "a")
    assert await store.hold_lease("leader", "b", short)
    await asyncio.sleep(0.4)  # b stops renewing: the lease runs out
    assert await store.hold_lease("leader", "a", LEASE)


async def test_two_first_commits_of_a_new_client_at_once_one_is_refused(
    store: Store, database: str
) -> None:
    """Both were computed from "no state yet" in two processes: only one may apply."""
    async with store_for(database) as other:
        for round_ in range(10):
            client = f"tg:new-{round_}"
            results = await asyncio.gather(
                store.commit(make(f"a{round_}", client, state={"by": "a"}, based_on=0)),
                other.commit(make(f"b{round_}", client, state={"by": "b"}, based_on=0)),
                return_exceptions=True)
            assert sorted(type(r).__name__ for r in results) == ["StaleState", "bool"], results
            winner = "a" if results[0] is True else "b"
            assert await store.load_state(client) == {"by": winner}
