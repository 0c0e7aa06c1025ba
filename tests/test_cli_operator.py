"""Operator commands: ``rehearse export``, ``ledger``, ``erase`` and ``check``.

The database is prepared through the real service (engine + SqliteStore), then the real
``bot.cli.main`` runs against it, as an operator would run ``rehearse``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import build
from bot.cli import main
from bot.config import load_config
from bot.engine import Start, Text
from bot.service import Rehearsal
from bot.store import SqliteStore
from tests.support.engine_driver import ServiceClient

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "scripts"
PLANTED = "okapi-7f3e-planted-note"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REHEARSE_CONFIG", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _prepare(db: Path, clients: tuple[str, ...] = ("tg:77", "tg:88")) -> None:
    """Clients who opted in to keeping text, each answering a prompt in their own words."""
    loaded = build(load_config(None, {}))

    async def run() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, lambda: datetime(2026, 11, 25, 9,
                                                                       tzinfo=UTC))
            for client in clients:
                c = ServiceClient(service, client)
                await c.send(Start())
                for label in ("I agree", "Yes", "Yes, please", "No, thanks", "No, thanks",
                              "No, thanks",
                              "First steps in sharing", "go", "go", "go"):
                    await c.press(label)
                await c.send(Text(text="2"))
                await c.send(Text(text="3"))
                assert any(b.data.endswith(":sh") for b in c.keyboard)  # at the first prompt
                await c.send(Text(text=f"{PLANTED} {client}"))

    asyncio.run(run())


def _raw(db: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            data += path.read_bytes()
    return data


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


def test_export_prints_everything_and_logs_the_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _prepare(db)
    capsys.readouterr()
    assert main(["export", "tg:77", "--db", str(db)]) == 0
    data = _json(capsys)
    assert data["client_id"] == "tg:77"
    answers = data["answers"]
    assert isinstance(answers, list) and PLANTED in json.dumps(answers)
    ledger = data["ledger"]
    assert isinstance(ledger, list)
    assert ledger[-1]["kind"] == "data_read"
    assert ledger[-1]["data"] == {"reader": "operator", "what": "export"}
    assert "tg:88" not in json.dumps(data)  # only this client's data


def test_ledger_prints_the_ledger_and_logs_the_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _prepare(db, ("tg:77",))
    capsys.readouterr()
    assert main(["ledger", "tg:77", "--db", str(db)]) == 0
    data = _json(capsys)
    assert list(data) == ["ledger"]
    ledger = data["ledger"]
    assert isinstance(ledger, list)
    kinds = [row["kind"] for row in ledger]
    assert kinds.count("consent") == 5 and "prompt" in kinds
    assert kinds[-1] == "data_read"
    assert main(["ledger", "tg:77", "--db", str(db)]) == 0
    again = _json(capsys)["ledger"]
    assert isinstance(again, list)
    reads = [row["data"] for row in again if row["kind"] == "data_read"]
    assert reads == [{"reader": "operator", "what": "ledger"}] * 2


@pytest.mark.parametrize("command", ["export", "ledger"])
def test_output_is_an_owner_only_file_and_the_command_says_where(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    db = tmp_path / "r.db"
    _prepare(db, ("tg:77",))
    target = tmp_path / "export.json"
    target.write_text("an older export")
    target.chmod(0o644)  # an existing file's wider mode is not kept
    previous = os.umask(0o022)
    try:
        assert main([command, "tg:77", "--db", str(db), "--output", str(target)]) == 0
    finally:
        os.umask(previous)
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote the {command} of tg:77 to {target} (owner-only)"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = json.loads(target.read_text())
    assert data["ledger"][-1]["data"] == {"reader": "operator", "what": command}
    assert (PLANTED in target.read_text()) is (command == "export")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers

    linked = tmp_path / "linked.json"
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("not to be overwritten")
    linked.symlink_to(victim)
    assert main([command, "tg:77", "--db", str(db), "--output", str(linked)]) == 0
    assert victim.read_text() == "not to be overwritten"  # the link is replaced, not followed
    assert not linked.is_symlink() and stat.S_IMODE(linked.stat().st_mode) == 0o600

    capsys.readouterr()
    assert main([command, "tg:77", "--db", str(db), "--output", "-"]) == 0
    assert _json(capsys)["ledger"]


def _rehearse(args: list[str], stdout: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "REHEARSE_"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", ["export", "ledger"])
def test_a_clients_data_is_not_printed_to_a_terminal_or_a_file_others_can_read(
        tmp_path: Path, command: str) -> None:
    db = tmp_path / "r.db"
    _prepare(db, ("tg:77",))
    reads_before = _raw(db).count(b"data_read")
    controller, terminal = pty.openpty()
    try:
        shown = _rehearse([command, "tg:77", "--db", str(db)], stdout=terminal)
        os.set_blocking(controller, False)
        try:
            on_screen = os.read(controller, 65536)
        except BlockingIOError:  # nothing was written to the terminal
            on_screen = b""
    finally:
        os.close(terminal)
        os.close(controller)
    assert shown.returncode == 2
    assert PLANTED.encode() not in on_screen and b"ledger" not in on_screen
    [line] = shown.stderr.strip().splitlines()
    assert "standard output is a terminal" in line and "--output FILE" in line

    redirected = tmp_path / "redirected.json"
    fd = os.open(redirected, os.O_WRONLY | os.O_CREAT, 0o644)  # what `> file` does (umask 022)
    os.fchmod(fd, 0o644)
    try:
        written = _rehearse([command, "tg:77", "--db", str(db)], stdout=fd)
    finally:
        os.close(fd)
    assert written.returncode == 2
    assert redirected.read_bytes() == b""
    assert "a file others can read (mode 0644)" in written.stderr
    assert _raw(db).count(b"data_read") == reads_before  # refused before anything was read

    explicit = _rehearse([command, "tg:77", "--db", str(db), "--output", "-"],
                         stdout=subprocess.PIPE)
    assert explicit.returncode == 0 and json.loads(explicit.stdout)["ledger"]
    piped = _rehearse([command, "tg:77", "--db", str(db)], stdout=subprocess.PIPE)
    assert piped.returncode == 0 and json.loads(piped.stdout)["ledger"]  # e.g. into gpg


def test_erase_leaves_no_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _prepare(db)
    assert f"{PLANTED} tg:77".encode() in _raw(db)  # the test can see it before
    assert main(["erase", "tg:77", "--yes", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == "erased tg:77"
    raw = _raw(db)
    assert f"{PLANTED} tg:77".encode() not in raw
    assert b"tg:77" not in raw
    assert f"{PLANTED} tg:88".encode() in raw or b"tg:88" in raw  # others are untouched
    assert main(["export", "tg:77", "--db", str(db)]) == 1
    assert "no client tg:77" in capsys.readouterr().err


def test_erase_asks_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _prepare(db, ("tg:77",))
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["erase", "tg:77", "--db", str(db)]) == 1
    assert main(["ledger", "tg:77", "--db", str(db)]) == 0
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["erase", "tg:77", "--db", str(db)]) == 0
    assert main(["ledger", "tg:77", "--db", str(db)]) == 1


@pytest.mark.parametrize("command", ["export", "ledger", "erase"])
def test_unknown_client(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        command: str) -> None:
    db = tmp_path / "r.db"
    _prepare(db, ("tg:77",))
    capsys.readouterr()
    argv = [command, "tg:404", "--db", str(db), *(["--yes"] if command == "erase" else [])]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "no client tg:404" in captured.err and captured.out == ""
    assert main(["ledger", "tg:77", "--db", str(db)]) == 0  # nobody else was touched


@pytest.mark.parametrize("argv", [["export"], ["ledger"], ["erase"], ["frobnicate"],
                                  ["export", "tg:1", "--nope"], ["check"],
                                  ["check", "x.yaml", "--format", "xml"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage: rehearse" in capsys.readouterr().err


def test_check_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(FIXTURES / "proof1_pass.yaml")]) == 0
    assert main(["check", str(FIXTURES / "proof1_fail_dead_end.yaml")]) == 1
    err = capsys.readouterr().err
    assert "1 error(s)" in err
    assert main(["check", str(FIXTURES / "does-not-exist.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["check", str(ROOT / "scripts")]) == 0


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["check", "--format", "json", str(FIXTURES / "proof1_fail_dead_end.yaml")]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert isinstance(findings, list) and findings
    errors = [f for f in findings if f["severity"] == "error"]
    assert [f["code"] for f in errors] == ["dead-end"]
    assert {"file", "line", "col", "message"} <= set(errors[0])
    assert main(["check", "--format", "json", str(FIXTURES / "proof1_pass.yaml")]) == 0
    passing = json.loads(capsys.readouterr().out)
    assert isinstance(passing, list)
    assert all(f["severity"] == "warning" for f in passing)  # warnings do not fail a check
