"""Kill -9 test: every commit the store acknowledged survives a crash at any moment.

A child process (`tests.support.store_crash_child`) commits events from several clients
and prints each event id only after `commit` returned. The parent kills it with SIGKILL
at a random moment, reopens the database and checks that every reported event is there
with its ledger rows and state, that the file passes ``PRAGMA integrity_check`` and that
the store keeps working. ``REHEARSE_CRASH_ROUNDS`` sets the number of rounds (default 8).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import Commit, SqliteStore

#: Rounds of kill -9 take a while; CI runs them (``-m 'not slow'`` leaves them out).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("REHEARSE_CRASH_ROUNDS", "8"))


def run_child_until_killed(
    db: Path, out: Path, rng: random.Random, *, after_first_commit: bool = True
) -> list[str]:
    """Start the child, kill it at a random moment; return the event ids it reported.

    With `after_first_commit` False the kill may come while it opens or migrates the db.
    """
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.store_crash_child", str(db)],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 20
        while after_first_commit and out.stat().st_size == 0:
            assert child.poll() is None, out.with_suffix(".err").read_text()
            assert time.monotonic() < deadline, "the child committed nothing"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL, out.with_suffix(".err").read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = out.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never reported
    return complete.splitlines()


async def check(db: Path, reported: list[str], latest: list[str]) -> None:
    """Every reported event is durable and complete, and the store still works.

    Re-committing the `latest` round's events must find their dedup rows.
    """
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    by_client: dict[str, list[str]] = defaultdict(list)
    for event_id in reported:
        by_client[f"crash:{event_id.split(':')[1]}"].append(event_id)
    async with SqliteStore(db) as store:
        for client_id, event_ids in by_client.items():
            parts: dict[object, set[object]] = defaultdict(set)
            for row in await store.ledger(client_id):
                parts[row.data["event"]].add(row.data["part"])
            missing = [e for e in event_ids if parts.get(e) != {1, 2}]
            assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
            state = await store.load_state(client_id)
            assert state is not None
            run_id, _, sequence = event_ids[-1].split(":")
            if state["run"] == run_id:  # else a later run of the child got no further
                assert isinstance(state["sequence"], int)
                assert state["sequence"] >= int(sequence)
        now = datetime.now(UTC)
        redone = await asyncio.gather(
            *(
                store.commit(Commit(event_id=e, client_id="crash:again", at=now, state={}))
                for e in latest
            )
        )
        assert not any(redone), "an acknowledged event's dedup row was lost"
        fresh = Commit(event_id=f"fresh:{now.isoformat()}", client_id="crash:0", at=now, state={})
        assert await store.commit(fresh) is True


def test_acknowledged_commits_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random()
    db = tmp_path / "crash.db"
    reported = run_child_until_killed(db, tmp_path / "start.out", rng, after_first_commit=False)
    asyncio.run(check(db, reported, reported))
    for round_ in range(ROUNDS):
        latest = run_child_until_killed(db, tmp_path / f"round{round_}.out", rng)
        reported += latest
        asyncio.run(check(db, reported, latest))
    assert len(reported) >= ROUNDS
