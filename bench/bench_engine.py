"""Throughput of the dialogue engine, alone and with its durable store.

Run ``python -m bench.bench_engine [--dir DIR] [--seconds S]``. Clients walk the shipped
``first-steps`` script over and over: consent (7 events), then three sessions of 13 events
each (the menu, three "Go on", the check-in before with the expected difficulty, a prompt
answered, "enough for today", "Go on", the check-in after with actual difficulty and relief),
then the next client (the contract allows three sessions a day). Every case is measured for
S seconds and compared with a bare sqlite3 loop in the same process:

(a) plain sqlite3, one fsync'd transaction per event (WAL, synchronous=FULL) — the same
    baseline as ``bench.bench_store``;
(b) ``Engine.handle`` alone: the pure engine, no I/O at all;
(c) ``Rehearsal.handle`` on a ``SqliteStore``: load state, engine, one atomic commit of
    dedup key + state + ledger + outbox (+ timers), for one client after another;
(d) the same with 100 clients at once, whose commits share transactions (group commit).

Databases go to DIR (default: the current directory, i.e. the disk the bot would use; on a
tmpfs fsync is free and the comparison means little).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_store import bare_sqlite
from bot.app import build
from bot.config import load_config
from bot.engine import Button, ClientState, Engine, Event, Start, Text
from bot.service import Rehearsal
from bot.store import SqliteStore

#: A fixed time: the walk never depends on the clock (three sessions a day per client).
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
#: ("start", ""), ("text", what to type) or ("press", button code).
Step = tuple[str, str]
CONSENT: list[Step] = [("start", ""), ("press", "y"), ("press", "y"), ("press", "n"),
                       ("press", "n"), ("press", "n"), ("press", "n")]


def session_steps(menu_code: str) -> list[Step]:
    """One session of first-steps, from the menu to the end."""
    return [("start", ""), ("press", menu_code), ("press", "go"), ("press", "go"),
            ("press", "go"), ("text", "2"), ("text", "3"), ("press", "sh"), ("press", "c1"),
            ("press", "go"), ("text", "2"), ("text", "2"), ("press", "l0")]


def client_steps(engine: Engine) -> list[Step]:
    """Everything one client does: consent, then three sessions."""
    runnable = sorted(sid for sid, s in engine.resources.scripts.items()
                      if s.first_step is not None)
    menu = f"m{runnable.index('first-steps')}"
    return CONSENT + session_steps(menu) * 3


def event_for(step: Step, state: ClientState) -> Event:
    """The event for a step, given the client's live keyboard."""
    kind, value = step
    if kind == "start":
        return Start()
    if kind == "text":
        return Text(text=value)
    return Button(data=f"{state.keyboard}:{value}")


def _check(state: ClientState, sessions: int) -> None:
    if state.session is not None or state.progress.exercises_done != sessions:
        raise RuntimeError("the benchmark walk went off the script; fix bench_engine.py")


def engine_only(engine: Engine, seconds: float) -> tuple[float, int]:
    """Case (b): events per second through ``Engine.handle`` alone."""
    steps = client_steps(engine)
    events = clients = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        state = engine.new_state(f"bench:{clients}")
        for step in steps:
            state = engine.handle(state, event_for(step, state), NOW).state
        _check(state, 3)
        events += len(steps)
        clients += 1
    return events / (time.perf_counter() - start), events


async def durable(engine: Engine, path: Path, seconds: float, concurrent: int) -> float:
    """Cases (c) and (d): events per second through the service and the SQLite store."""
    steps = client_steps(engine)
    async with SqliteStore(path) as store:
        service = Rehearsal(engine, store, lambda: NOW)
        deadline = time.perf_counter() + seconds

        async def worker(number: int) -> int:
            events = 0
            for serial in _counter():
                if time.perf_counter() >= deadline:
                    return events
                client_id = f"bench:{number}:{serial}"
                state = engine.new_state(client_id)
                for index, step in enumerate(steps):
                    handled = await service.handle(client_id, f"{client_id}:{index}",
                                                   event_for(step, state))
                    assert handled.outcome is not None
                    state = handled.outcome.state
                _check(state, 3)
                events += len(steps)
            return events

        start = time.perf_counter()
        counts = await asyncio.gather(*(worker(n) for n in range(concurrent)))
        return sum(counts) / (time.perf_counter() - start)


def _counter() -> Iterator[int]:
    number = 0
    while True:
        yield number
        number += 1


def main() -> None:
    """Run the four cases; print events/s and each as a ratio to case (a)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(), help="where to put the databases")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each case")
    args = parser.parse_args()

    engine = build(load_config(None, {})).engine
    with tempfile.TemporaryDirectory(prefix="bench-engine-", dir=args.dir) as tmp:
        print(f"engine and store throughput in {Path(tmp).resolve().parent} "
              f"(SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL), "
              f"{args.seconds:g} s per case; walk: first-steps, "
              f"{len(client_steps(engine))} events per client")
        baseline = bare_sqlite(Path(tmp, "a.db"), args.seconds)
        pure, _ = engine_only(engine, args.seconds)
        results = [
            ("(a) sqlite3, one transaction per event", baseline),
            ("(b) Engine.handle alone (no I/O)", pure),
        ]
        for label, clients in (("(c) Rehearsal + SqliteStore, sequential", 1),
                               ("(d) Rehearsal + SqliteStore, 100 clients", 100)):
            rate = asyncio.run(durable(engine, Path(tmp, f"{clients}.db"), args.seconds,
                                       clients))
            results.append((label, rate))
    print(f"{'case':<44}{'events/s':>10}{'vs (a)':>9}")
    for label, rate in results:
        print(f"{label:<44}{rate:>10.0f}{rate / baseline:>9.2f}")


if __name__ == "__main__":
    main()
