"""How long a therapist waits for a progress report and for the caseload overview.

Run ``python -m bench.bench_report [--days N] [--clients N] [--repeat N] [--dir DIR]``.
One client practises ``first-steps`` once a day for N days (default 365) through the real
engine, service and SQLite store, sharing every session (the rows the summary flow will
write); the caseload is that client and N - 1 more (default 200 in all) with the same
history, copied through the store's commit. Then, each the median of R runs (default 5):

(a) reading the client's state and the ledger rows the report uses: the floor under (b);
(b) the progress report: the logged read (``Rehearsal.read_record``), the report built,
    its four charts drawn and the HTML rendered — what ``/report`` and ``rehearse report``
    do before sending or writing the file (target: under 1 s);
(c) the caseload overview of all clients: the logged reads (one ledger row per client, in
    one group commit), one line per client, the Telegram messages — what ``/clients`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.app import build
from bot.config import load_config
from bot.report import (
    CASELOAD_KINDS,
    REPORT_KINDS,
    SHARE_ITEMS,
    caseload_line,
    caseload_messages,
    progress_report,
    render_report,
)
from bot.service import Rehearsal
from bot.store import Commit, LedgerRecord, SqliteStore
from tests.conftest import Clock
from tests.support.engine_driver import ServiceClient
from tests.support.practice import consent_sharing, practise, share

THERAPIST = "tg:9000"
CLIENT = "tg:100000"
ZONE = "UTC"


async def practised(service: Rehearsal, clock: Clock, days: int) -> None:
    """The client's year: one shared session a day, ratings and pacing varying."""
    client = ServiceClient(service, CLIENT)
    await consent_sharing(client)
    for day in range(days):
        session = await practise(client, before=2 + day % 6, after=1 + day % 4,
                                 expected=3 + day % 5, actual=2 + day % 4,
                                 smaller=int(day % 3 == 0), level_up=True)
        await share(service.store, CLIENT, session, SHARE_ITEMS, clock.advance(minutes=20))
        clock.advance(days=1)
    await service.store.assign_therapist(CLIENT, THERAPIST, clock.now)


async def copies(service: Rehearsal, clients: int) -> None:
    """More clients with the same state and ledger, committed as the service commits."""
    store = service.store
    state = await store.load_state(CLIENT)
    rows = await store.ledger(CLIENT)
    for number in range(1, clients):
        client_id = f"tg:{100000 + number}"
        await store.commit(Commit(
            event_id=f"bench:copy:{client_id}", client_id=client_id, at=rows[-1].at,
            state={**(state or {}), "client_id": client_id},
            ledger=[LedgerRecord(r.kind, r.data, r.at) for r in rows]))
        await store.assign_therapist(client_id, THERAPIST, rows[-1].at)


async def median(repeat: int, job: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """The median wall-clock and CPU seconds of `repeat` runs (CPU: this process, every
    thread, so the store's reads count; on a busy machine it is the steadier figure)."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        await job()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


async def run(folder: Path, days: int, clients: int, repeat: int) -> None:
    loaded = build(load_config(None, {}))
    clock = Clock()
    async with SqliteStore(folder / "bench-report.db") as store:
        service = Rehearsal(loaded.engine, store, clock)
        made = time.perf_counter()
        await practised(service, clock, days)
        made = time.perf_counter() - made
        await copies(service, clients)
        rows = len(await store.ledger(CLIENT))

        async def read() -> None:
            await store.load_state(CLIENT)
            await store.ledger(CLIENT, REPORT_KINDS)

        async def report() -> int:
            record = await service.read_record(CLIENT, THERAPIST, kinds=REPORT_KINDS)
            built = progress_report(record.state, record.ledger, now=clock.now,
                                    default_zone=ZONE, scripts=loaded.scripts,
                                    therapist=record.therapist)
            return len(render_report(built))

        async def overview() -> int:
            records = await service.read_caseload(THERAPIST, kinds=CASELOAD_KINDS)
            lines = [caseload_line(r.state, r.ledger, now=clock.now, default_zone=ZONE,
                                   therapist=r.therapist) for r in records]
            return len(caseload_messages(lines))

        size = await report()
        timings = [("(a) read state + ledger", 1, await median(repeat, read)),
                   ("(b) progress report", 1, await median(repeat, report)),
                   ("(c) caseload overview", clients, await median(repeat, overview))]
    print(f"{days} days of daily sessions: {rows:,} ledger rows per client "
          f"(made through the engine in {made:.1f} s); report {size / 1024:.0f} KiB")
    print(f"{'case':<26} {'clients':>8} {'seconds':>9} {'cpu s':>9} {'vs (a)':>8}")
    floor = timings[0][2][0]
    for name, count, (seconds, cpu) in timings:
        print(f"{name:<26} {count:>8} {seconds:>9.3f} {cpu:>9.3f} {seconds / floor:>8.1f}")
    print("target: (b) under 1 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the database goes (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        asyncio.run(run(Path(folder), args.days, args.clients, args.repeat))


if __name__ == "__main__":
    main()
