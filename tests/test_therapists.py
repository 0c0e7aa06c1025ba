"""Therapists as a role: invites record their therapist, clients belong to one, reads are checked
and logged.

Real databases (the store and service tests on SQLite and on PostgreSQL), the real engine and
service; the CLI is called as ``rehearse`` would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.service import OPERATOR, NotTheirClient, Rehearsal
from bot.store import (
    CaseloadEntry,
    Commit,
    Invite,
    LedgerRecord,
    SqliteStore,
    Store,
    _migrations,
)
from tests.conftest import Clock
from tests.support.engine_driver import ServiceClient
from tests.support.practice import consent_sharing

LEE, RIVERA = "tg:9000", "tg:9001"


def invite(code_hash: str, clock: Clock, therapist: str | None = LEE) -> Invite:
    return Invite(code_hash, "first-steps", 2, expires_at=clock.now + timedelta(days=7),
                  created_at=clock.now, therapist=therapist)


# -- the store: invites, caseload, migration -------------------------------------------------
@pytest.mark.backends
async def test_redeeming_a_therapists_invite_puts_the_client_in_their_caseload(
    store: Store, clock: Clock
) -> None:
    await store.add_invite(invite("h1", clock))
    await store.add_invite(invite("h2", clock, therapist=None))
    redeemed = await store.redeem_invite("h1", "tg:1", clock.now)
    assert redeemed is not None and redeemed.therapist == LEE
    assert await store.therapist_of("tg:1") == CaseloadEntry("tg:1", LEE, clock.now)
    await store.redeem_invite("h2", "tg:2", clock.now)  # the operator's invite: nobody's
    assert await store.therapist_of("tg:2") is None
    assert await store.caseload(LEE) == [CaseloadEntry("tg:1", LEE, clock.now)]
    assert await store.caseload(RIVERA) == []

    await store.mark_looked("tg:1", RIVERA, clock.now)  # not theirs: changes nothing
    assert (await store.therapist_of("tg:1")).looked_at is None  # type: ignore[union-attr]
    looked = clock.advance(hours=1)
    await store.mark_looked("tg:1", LEE, looked)
    assert (await store.therapist_of("tg:1")).looked_at == looked  # type: ignore[union-attr]

    # The same client redeeming the same code again changes nothing; another therapist's
    # invite moves them, and that therapist has not looked yet.
    await store.redeem_invite("h1", "tg:1", clock.advance(hours=1))
    assert (await store.therapist_of("tg:1")).looked_at == looked  # type: ignore[union-attr]
    await store.add_invite(invite("h3", clock, therapist=RIVERA))
    moved = clock.advance(hours=1)
    await store.redeem_invite("h3", "tg:1", moved)
    assert await store.therapist_of("tg:1") == CaseloadEntry("tg:1", RIVERA, moved)
    assert [e.client_id for e in await store.caseload()] == ["tg:1"]


@pytest.mark.backends
async def test_erasing_a_client_takes_them_out_of_the_caseload(
    store: Store, clock: Clock
) -> None:
    await store.add_invite(invite("h1", clock))
    await store.redeem_invite("h1", "tg:1", clock.now)
    exported = await store.export("tg:1")
    assert exported["therapist"] == {"therapist": LEE, "since": "2026-11-25T09:00:00.000000Z",
                                     "looked_at": None}
    await store.erase("tg:1")
    assert await store.therapist_of("tg:1") is None
    assert (await store.export("tg:1"))["therapist"] is None
    [used] = await store.list_invites()
    assert used.redeemed_by is None and used.therapist == LEE  # the code stays used


@pytest.mark.backends
async def test_assigning_a_therapist_keeps_or_resets_the_last_look(
    store: Store, clock: Clock
) -> None:
    await store.assign_therapist("tg:1", LEE, clock.now)
    await store.mark_looked("tg:1", LEE, clock.advance(hours=1))
    await store.assign_therapist("tg:1", LEE, clock.advance(hours=1))  # the same: unchanged
    entry = await store.therapist_of("tg:1")
    assert entry is not None and entry.looked_at is not None
    await store.assign_therapist("tg:1", RIVERA, clock.now)
    assert await store.therapist_of("tg:1") == CaseloadEntry("tg:1", RIVERA, clock.now)
    await store.assign_therapist("tg:1", None, clock.now)
    assert await store.therapist_of("tg:1") is None
    with pytest.raises(ValueError, match="empty"):
        await store.assign_therapist("tg:1", "", clock.now)


@pytest.mark.backends
async def test_the_ledger_can_be_read_for_some_kinds_only(store: Store, clock: Clock) -> None:
    rows = [LedgerRecord(kind, {"n": n}, clock.now)
            for n, kind in enumerate(["a", "b", "a", "c", "b'); --"])]
    await store.commit(Commit(event_id="e1", client_id="tg:1", at=clock.now, state=None,
                              ledger=rows))
    assert [r.data["n"] for r in await store.ledger("tg:1", ["a", "c"])] == [0, 2, 3]
    assert [r.data["n"] for r in await store.ledger("tg:1", frozenset({"b'); --"}))] == [4]
    assert await store.ledger("tg:1", []) == []
    assert len(await store.ledger("tg:1")) == len(await store.ledger("tg:1", None)) == 5


async def test_a_database_of_the_previous_schema_is_migrated(tmp_path: Path, clock: Clock) -> None:
    db = tmp_path / "v3.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    previous = _migrations.MIGRATIONS[:3]
    assert _migrations.migrate(conn, previous) == 0
    at = "2026-11-25T09:00:00.000000Z"
    later = "2026-12-02T09:00:00.000000Z"
    conn.executemany(
        """INSERT INTO invites (code_hash, script_id, max_level, expires_at, created_at,
                                redeemed_by, redeemed_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [("old-used", "first-steps", 2, later, at, "tg:1", at),
         ("old-open", "first-steps", None, later, at, None, None)])
    conn.execute("INSERT INTO clients (client_id, state, updated_at) VALUES (?, ?, ?)",
                 ("tg:1", json.dumps({"client_id": "tg:1"}), at))
    conn.close()

    async with SqliteStore(db) as store:
        invites = {i.code_hash: i for i in await store.list_invites()}
        assert invites["old-used"].redeemed_by == "tg:1"
        assert all(i.therapist is None for i in invites.values())
        assert await store.caseload() == []
        assert await store.load_state("tg:1") == {"client_id": "tg:1"}
        # An old code still works and gives nobody a therapist; a new one records its own.
        assert await store.redeem_invite("old-open", "tg:2", clock.now) is not None
        assert await store.therapist_of("tg:2") is None
        await store.add_invite(invite("new", clock))
        await store.redeem_invite("new", "tg:3", clock.now)
        assert (await store.therapist_of("tg:3")) == CaseloadEntry("tg:3", LEE, clock.now)
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone() == (len(_migrations.MIGRATIONS),)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


# -- the service: who may read, and every read in the ledger -------------------------------
async def client_of(service: Rehearsal, client_id: str, therapist: str | None) -> None:
    """A client who consented (sharing), in `therapist`'s caseload."""
    await consent_sharing(ServiceClient(service, client_id))
    if therapist is not None:
        await service.store.assign_therapist(client_id, therapist, service.clock())


@pytest.mark.backends
async def test_a_therapist_reads_only_their_own_clients_and_each_read_is_logged(
    store: Store, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    await client_of(service, "tg:1", LEE)
    await client_of(service, "tg:2", RIVERA)
    await client_of(service, "tg:3", None)

    record = await service.read_record("tg:1", LEE)
    assert record.client_id == "tg:1" and record.therapist is not None
    assert record.ledger[-1].kind == "data_read"
    assert record.ledger[-1].data == {"reader": LEE, "what": "report"}
    assert (await store.therapist_of("tg:1")).looked_at == clock.now  # type: ignore[union-attr]

    for client in ("tg:2", "tg:3"):
        before = len(await store.ledger(client))
        with pytest.raises(NotTheirClient):
            await service.read_record(client, LEE)
        with pytest.raises(NotTheirClient):
            await service.read_for(client, LEE, "export")
        rows = (await store.ledger(client))[before:]
        assert [(r.kind, r.data) for r in rows] == [
            ("access_refused", {"reader": LEE, "what": "report"}),
            ("access_refused", {"reader": LEE, "what": "export"})]
    with pytest.raises(NotTheirClient):  # nobody at all: refused alike, and nothing written
        await service.read_record("tg:404", LEE)
    assert await store.ledger("tg:404") == []
    assert await store.load_state("tg:404") is None
    assert (await store.therapist_of("tg:2")).looked_at is None  # type: ignore[union-attr]

    # The operator reads everyone, logged as the operator, and is nobody's last look.
    data = await service.read_for("tg:2", OPERATOR, "export")
    assert data["ledger"][-1]["data"] == {"reader": OPERATOR, "what": "export"}  # type: ignore[index]
    await service.read_record("tg:3", OPERATOR)
    assert (await store.ledger("tg:3"))[-1].data == {"reader": OPERATOR, "what": "report"}


@pytest.mark.backends
async def test_a_caseload_read_is_logged_in_every_clients_ledger(
    store: Store, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    for number in range(1, 6):
        await client_of(service, f"tg:{number}", LEE if number <= 3 else RIVERA)
    await client_of(service, "tg:6", None)

    mine = await service.read_caseload(LEE)
    assert [r.client_id for r in mine] == ["tg:1", "tg:2", "tg:3"]
    everyone = await service.read_caseload(OPERATOR)
    assert [r.client_id for r in everyone] == [f"tg:{n}" for n in range(1, 7)]
    theirs = await service.read_caseload(OPERATOR, therapist=RIVERA)
    assert [r.client_id for r in theirs] == ["tg:4", "tg:5"]
    for number in range(1, 7):
        reads = [(r.data["reader"]) for r in await store.ledger(f"tg:{number}")
                 if r.kind == "data_read"]
        expected = [LEE] if number <= 3 else []
        expected += [OPERATOR] + ([OPERATOR] if 4 <= number <= 5 else [])
        assert reads == expected, number


@pytest.mark.backends
async def test_assigning_a_therapist_is_in_the_clients_ledger(
    store: Store, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    await client_of(service, "tg:1", None)
    await service.assign("tg:1", LEE, by=OPERATOR)
    await service.assign("tg:1", None, by=OPERATOR)
    rows = [r.data for r in await store.ledger("tg:1") if r.kind == "therapist_assigned"]
    assert rows == [{"therapist": LEE, "by": OPERATOR}, {"therapist": None, "by": OPERATOR}]
    assert await store.therapist_of("tg:1") is None


# -- the command line ------------------------------------------------------------------------
def config_with_admins(tmp_path: Path, admins: list[int]) -> Path:
    path = tmp_path / "rehearse.yaml"
    path.write_text(f"telegram:\n  admins: {admins}\n", encoding="utf-8")
    return path


def test_rehearse_invite_records_the_therapist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    db, config = tmp_path / "rehearse.db", config_with_admins(tmp_path, [9000])
    common = ["--db", str(db), "--config", str(config)]
    assert rehearse(["invite", "--script", "first-steps", "--therapist", "9000", *common]) == 0
    assert "becomes a client of tg:9000" in capsys.readouterr().out
    assert rehearse(["invite", "--script", "first-steps", "--therapist", "tg:9000", *common]) == 0
    assert rehearse(["invite", "--script", "first-steps", *common]) == 0
    for wrong in ("9001", "tg:abc", "²"):
        assert rehearse(["invite", "--script", "first-steps", "--therapist", wrong,
                         *common]) == 2
        assert "is not a therapist" in capsys.readouterr().err

    async def therapists() -> list[str | None]:
        async with SqliteStore(db) as store:
            return [i.therapist for i in await store.list_invites()]

    assert sorted(asyncio.run(therapists()), key=str) == [None, "tg:9000", "tg:9000"]


def test_rehearse_assign_and_clients_show_the_therapist(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "rehearse.db", config_with_admins(tmp_path, [9000])
    common = ["--db", str(db), "--config", str(config)]

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            await client_of(Rehearsal(loaded.engine, store, Clock()), "tg:5", None)

    asyncio.run(prepare())
    assert rehearse(["assign", "tg:5", "--therapist", "9000", *common]) == 0
    assert rehearse(["assign", "tg:6", "--therapist", "9000", *common]) == 1  # no such client
    assert rehearse(["assign", "tg:5", "--therapist", "9001", *common]) == 2
    capsys.readouterr()
    assert rehearse(["clients", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["client", "status", "level", "scripts", "therapist"]
    assert lines[1].split("\t") == ["tg:5", "active", "level 1/3", "", "tg:9000"]
    assert rehearse(["assign", "tg:5", "--none", *common]) == 0
    capsys.readouterr()
    assert rehearse(["clients", *common]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("\t-")


def test_rehearse_report_writes_an_owner_only_file_and_logs_the_read(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "rehearse.db", config_with_admins(tmp_path, [9000])
    common = ["--db", str(db), "--config", str(config)]

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, Clock())
            await client_of(service, "tg:5", LEE)
            await client_of(service, "tg:6", None)

    asyncio.run(prepare())
    out = tmp_path / "tg5.html"
    out.write_text("an older report, readable by all")
    out.chmod(0o644)
    assert rehearse(["report", "tg:5", "--out", str(out), *common]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "tg:5" in page and "<script" not in page
    assert rehearse(["report", "tg:404", "--out", str(tmp_path / "x.html"), *common]) == 1
    assert not (tmp_path / "x.html").exists()
    assert rehearse(["report", "tg:5", "--out", str(tmp_path / "no" / "x.html"), *common]) == 2
    assert rehearse(["report", "--all", "--out", str(out), *common]) == 2
    assert rehearse(["report", "tg:5", "--therapist", "9000", *common]) == 2
    capsys.readouterr()

    assert rehearse(["report", "--all", *common]) == 0
    table = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert table[0][:3] == ["client", "therapist", "status"]
    assert [row[:3] for row in table[1:]] == [["tg:5", LEE, "active"], ["tg:6", "-", "active"]]
    assert rehearse(["report", "--all", "--therapist", "9000", *common]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["tg:5"]

    async def reads() -> list[dict[str, object]]:
        async with SqliteStore(db) as store:
            return [r.data for r in await store.ledger("tg:5") if r.kind == "data_read"]

    assert asyncio.run(reads()) == [{"reader": OPERATOR, "what": what}
                                    for what in ("report", "caseload", "caseload")]


def test_rehearse_report_is_not_written_to_a_file_others_can_read(
    tmp_path: Path, loaded: Loaded
) -> None:
    db = tmp_path / "rehearse.db"

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            await client_of(Rehearsal(loaded.engine, store, Clock()), "tg:5", None)

    asyncio.run(prepare())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "REHEARSE_"))}
    redirected = tmp_path / "redirected.html"
    fd = os.open(redirected, os.O_WRONLY | os.O_CREAT, 0o644)  # what `> file` does (umask 022)
    os.fchmod(fd, 0o644)
    try:
        done = subprocess.run([sys.executable, "-m", "bot", "report", "tg:5", "--db", str(db)],
                              env=env, stdin=subprocess.DEVNULL, stdout=fd,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(fd)
    assert done.returncode == 2, done.stderr
    assert "a file others can read (mode 0644)" in done.stderr and "--out FILE" in done.stderr
    assert redirected.read_bytes() == b""

    async def reads() -> list[str]:
        async with SqliteStore(db) as store:
            return [r.kind for r in await store.ledger("tg:5") if r.kind == "data_read"]

    assert asyncio.run(reads()) == []  # refused before anything was read
