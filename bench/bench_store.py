"""Throughput of the store's durable commits: does group commit pay for itself?

Run ``python -m bench.bench_store [--dir DIR] [--seconds S]``. Every case writes the same
rows per event (a dedup key, the client's state, one ledger row, one outbox message) to a
fresh database in DIR (default: the current directory, so the disk the bot would use;
a tmpfs would make fsync free and the comparison meaningless):

(a) plain sqlite3, one fsync'd transaction per event (WAL, synchronous=FULL);
(b) `SqliteStore.commit` awaited one after another, as under sequential processing;
(c) `SqliteStore.commit` from 10 and from 100 clients at once (group commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.store import Commit, LedgerRecord, OutgoingMessage, SqliteStore, _migrations

_STATE = {"script": "first-steps", "step": "ask-3", "level": 2, "notes": "x" * 200}
_PAYLOAD = {"kind": "send", "text": "How did that feel, from 0 to 10?", "buttons": ["0", "5"]}


def bare_sqlite(path: Path, seconds: float) -> float:
    """Case (a): events per second with one transaction per event in plain sqlite3."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    _migrations.migrate(conn, _migrations.MIGRATIONS)  # the same tables and indexes
    events = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        client_id, at = f"bench:{events % 100}", datetime.now(UTC).isoformat()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO inbox (event_id, client_id, at) VALUES (?, ?, ?)",
            (f"a:{events}", client_id, at),
        )
        conn.execute(
            """INSERT INTO clients (client_id, state, updated_at) VALUES (?, ?, ?)
               ON CONFLICT (client_id) DO UPDATE
               SET state = excluded.state, updated_at = excluded.updated_at""",
            (client_id, json.dumps({**_STATE, "n": events}), at),
        )
        conn.execute(
            "INSERT INTO ledger (client_id, at, kind, data) VALUES (?, ?, ?, ?)",
            (client_id, at, "pacing", json.dumps({"choice": "continue"})),
        )
        conn.execute(
            "INSERT INTO outbox (client_id, chat_id, payload, created_at) VALUES (?, ?, ?, ?)",
            (client_id, 42, json.dumps(_PAYLOAD), at),
        )
        conn.execute("COMMIT")
        events += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return events / elapsed


async def store_commits(path: Path, seconds: float, clients: int) -> float:
    """Cases (b) and (c): events per second with `clients` tasks committing in a loop."""
    async with SqliteStore(path) as store:
        deadline = time.perf_counter() + seconds

        async def client(number: int) -> int:
            client_id, events = f"bench:{number}", 0
            while time.perf_counter() < deadline:
                at = datetime.now(UTC)
                await store.commit(
                    Commit(
                        event_id=f"{client_id}:{events}",
                        client_id=client_id,
                        at=at,
                        state={**_STATE, "n": events},
                        ledger=[LedgerRecord("pacing", {"choice": "continue"}, at)],
                        outbox=[OutgoingMessage(client_id, 42, _PAYLOAD)],
                    )
                )
                events += 1
            return events

        start = time.perf_counter()
        counts = await asyncio.gather(*(client(n) for n in range(clients)))
        return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    """Run the four cases and print events/s and their ratio to case (a)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(), help="where to put the databases")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each case")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.dir) as tmp:
        print(
            f"store commit throughput in {Path(tmp).resolve().parent} "
            f"(SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL), {args.seconds:g} s per case"
        )
        baseline = bare_sqlite(Path(tmp, "a.db"), args.seconds)
        results = [("(a) sqlite3, one transaction per event", baseline)]
        for label, clients in (
            ("(b) SqliteStore, sequential", 1),
            ("(c) SqliteStore, 10 concurrent clients", 10),
            ("(c) SqliteStore, 100 concurrent clients", 100),
        ):
            rate = asyncio.run(store_commits(Path(tmp, f"{clients}.db"), args.seconds, clients))
            results.append((label, rate))
    print(f"{'case':<42}{'events/s':>10}{'vs (a)':>9}")
    for label, rate in results:
        print(f"{label:<42}{rate:>10.0f}{rate / baseline:>9.2f}")


if __name__ == "__main__":
    main()
