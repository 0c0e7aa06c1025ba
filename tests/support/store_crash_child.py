"""Child process of the kill -9 test: commit forever, report each commit once durable.

Run as ``python -m tests.support.store_crash_child DB``. Several clients commit events
concurrently (state, two ledger rows, an outbox message, a timer) while a sender drains
the outbox. Each event id is written to stdout, flushed, only after ``store.commit``
returned for it; the parent kills this process with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

from bot.store import Commit, LedgerRecord, OutgoingMessage, SqliteStore, Timer

CLIENTS = 8


async def run(path: str) -> None:
    """Commit events from `CLIENTS` clients until killed."""
    run_id = uuid.uuid4().hex[:8]
    async with SqliteStore(path) as store:

        async def client(number: int) -> None:
            client_id = f"crash:{number}"
            for sequence in range(10**9):
                event_id = f"{run_id}:{number}:{sequence}"
                at = datetime.now(UTC)
                await store.commit(
                    Commit(
                        event_id=event_id,
                        client_id=client_id,
                        at=at,
                        state={"event": event_id, "run": run_id, "sequence": sequence},
                        ledger=[
                            LedgerRecord("step", {"event": event_id, "part": 1}, at),
                            LedgerRecord("step", {"event": event_id, "part": 2}, at),
                        ],
                        outbox=[OutgoingMessage(client_id, number, {"event": event_id})],
                        timers_set=[Timer("reminder", at, {"event": event_id})],
                    )
                )
                sys.stdout.write(f"{event_id}\n")
                sys.stdout.flush()

        async def sender() -> None:
            while True:
                for row in await store.pending_outbox(datetime.now(UTC), limit=20):
                    await store.mark_sent(row.id, datetime.now(UTC), [row.id])
                await asyncio.sleep(0.01)

        await asyncio.gather(sender(), *(client(number) for number in range(CLIENTS)))


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
