"""A database the bot cannot use, found at start: one clear line, a non-zero exit, no traceback.

Each command runs as ``python -m bot`` in a subprocess, as an operator (or systemd) runs it,
against a file that is not SQLite, a SQLite file with damaged pages, or a database written by
a newer release (a higher schema version).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import Commit, LedgerRecord, SqliteStore, _migrations
from tests.conftest import ROOT

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PAGE = 4096


def _real_database(db: Path) -> None:
    """A database with a few clients, fully checkpointed (no -wal left)."""

    async def fill() -> None:
        async with SqliteStore(db) as store:
            for n in range(300):
                await store.commit(Commit(
                    event_id=f"e{n}", client_id=f"tg:{n}", at=T0, state={"n": n, "pad": "x" * 300},
                    ledger=[LedgerRecord("consent", {"opt": "core", "pad": "y" * 200}, T0)]))

    asyncio.run(fill())
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


def not_sqlite(db: Path) -> None:
    db.write_text("Dear diary, this is a text file where a database was expected.\n" * 40)


def damaged(db: Path) -> None:
    """A real database whose pages after the first (the schema) are overwritten with noise."""
    _real_database(db)
    size = db.stat().st_size
    assert size > 8 * PAGE
    rng = random.Random(7)
    with db.open("r+b") as file:
        file.seek(2 * PAGE)
        file.write(rng.randbytes(size - 3 * PAGE))


def newer(db: Path) -> None:
    _real_database(db)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(_migrations.MIGRATIONS) + 5}")
    conn.close()


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-sqlite": (not_sqlite, "not a SQLite database"),
    "damaged": (damaged, "damaged"),
    "newer": (newer, "newer"),
}
COMMANDS = {
    "run": ["run"],
    "play": ["play"],
    "export": ["export", "tg:1", "--output", "-"],
    "ledger": ["ledger", "tg:1", "--output", "-"],
    "erase": ["erase", "tg:1", "--yes"],
    "clients": ["clients"],
    "purge": ["purge"],
    "invite": ["invite", "--script", "first-steps"],
    "clear-hold": ["clear-hold", "tg:1"],
    "contract": ["contract", "tg:1", "--max-level", "4"],
    "outcomes": ["outcomes", "tg:1", "--on"],
}


def rehearse(args: list[str], db: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "REHEARSE_"))}
    # A token and an address where nothing listens: the database must fail first.
    env |= {"TELEGRAM_BOT_TOKEN": "123456:TEST-token-never-used",
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--db", str(db)], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unusable_database_is_one_clear_line(
    tmp_path: Path, fault: str, command: str
) -> None:
    db = tmp_path / "rehearse.db"
    prepare, words = FAULTS[fault]
    prepare(db)
    before = db.read_bytes()
    done = rehearse(COMMANDS[command], db)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    [line] = lines
    assert str(db) in line and words in line
    assert "backup" in line or "upgrade" in line  # what to do about it
    assert done.stdout == ""
    assert db.read_bytes() == before  # the file is left exactly as it was
