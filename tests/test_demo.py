"""``rehearse demo-data``: a demo client made by real engine runs, whose report is full.

The real CLI on a real SQLite file: every session goes through the service and engine (the
ledger holds the engine's own rows: check-ins, prompts, level offers), and the report made
from it draws every chart and lists the agreement's history.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main as rehearse
from bot.demo import DEMO_CLIENT
from bot.store import Commit, SqliteStore


def test_demo_data_runs_the_engine_and_its_report_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.db"
    assert rehearse(["demo-data", "--db", str(db), "--days", "6"]) == 0
    assert f"made {DEMO_CLIENT}: 6 daily sessions" in capsys.readouterr().out

    async def ledger() -> collections.Counter[str]:
        async with SqliteStore(db) as store:
            return collections.Counter(r.kind for r in await store.ledger(DEMO_CLIENT))

    kinds = asyncio.run(ledger())
    assert kinds["session_started"] == kinds["session_ended"] == kinds["summary_shared"] == 6
    assert kinds["checkin"] >= 12 and kinds["prompt"] > 0  # the engine's own rows
    assert kinds["level_offered"] >= 1 and kinds["level_changed"] >= 1  # asked, then agreed
    assert kinds["contract_proposed"] == kinds["contract_answered"] == 1
    assert kinds["outcomes_switched"] == 1 and kinds["outcome_rated"] == 2  # one skipped

    page = tmp_path / "demo.html"
    assert rehearse(["report", DEMO_CLIENT, "--db", str(db), "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count('data-chart="') == 6 and html.count("<svg") >= 6
    assert 'data-chart="outcomes"' in html
    assert "Max level: 3; Exercises assigned: First steps in sharing" in html
    assert "agreed (" in html

    # A second run leaves the demo client as it is.
    kinds = asyncio.run(ledger())
    assert rehearse(["demo-data", "--db", str(db), "--days", "2"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert asyncio.run(ledger()) == kinds


def test_demo_data_never_goes_into_a_database_with_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "practice.db"

    async def a_client() -> None:
        async with SqliteStore(db) as store:
            await store.commit(Commit(event_id="e1", client_id="tg:1", at=datetime.now(UTC),
                                      state={"client_id": "tg:1"}))

    asyncio.run(a_client())
    assert rehearse(["demo-data", "--db", str(db), "--days", "2"]) == 1
    assert "holds 1 client(s) already" in capsys.readouterr().err

    async def ids() -> list[str]:
        async with SqliteStore(db) as store:
            return list(await store.client_ids())

    assert asyncio.run(ids()) == ["tg:1"]
