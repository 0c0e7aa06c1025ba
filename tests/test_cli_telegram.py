"""The ``rehearse`` commands an operator uses around the Telegram bot: run, invite, clients,
and the data reads that leave a trace the client can see."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot import cli
from bot.app import Loaded
from bot.engine import Button, Command, Event, Message, Start
from bot.service import Rehearsal
from bot.store import SqliteStore
from bot.telegram import chat_of, code_hash
from tests.conftest import ROOT, Clock
from tests.support.fake_bot_api import FakeBotApi


@pytest.fixture(autouse=True)
def _no_bot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "REHEARSE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


# -- rehearse run ----------------------------------------------------------------------------
def test_run_without_a_token_points_to_play(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--db", str(tmp_path / "rehearse.db")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "TELEGRAM_BOT_TOKEN" in lines[0] and "rehearse play" in lines[0]
    assert "Traceback" not in captured.err


# -- rehearse invite -------------------------------------------------------------------------
async def test_invite_prints_a_code_and_a_link_with_the_bots_username(
    fake_api: FakeBotApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "rehearse.db"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake_api.token)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_api.base_url)
    argv = ["invite", "--script", "first-steps", "--max-level", "2", "--expires", "12h",
            "--db", str(db)]
    assert await asyncio.to_thread(cli.main, argv) == 0
    out = capsys.readouterr().out
    code = re.search(r"^code: (\S+)$", out, re.MULTILINE)
    assert code is not None
    assert f"link: https://t.me/rehearse_test_bot?start={code.group(1)}" in out
    assert fake_api.calls("getMe")  # the username came from Telegram (here: the fake)
    async with SqliteStore(db) as store:
        [stored] = await store.list_invites()
    assert stored.code_hash == code_hash(code.group(1))  # only the hash is kept
    assert code.group(1) not in db.read_bytes().decode("latin-1")
    assert (stored.script_id, stored.max_level) == ("first-steps", 2)
    assert abs((stored.expires_at - stored.created_at).total_seconds() - 12 * 3600) < 1


def test_invite_without_a_token_still_prints_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["invite", "--script", "first-steps", "--db", str(tmp_path / "r.db")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^code: \S{16}$", out, re.MULTILINE)
    assert "https://t.me/<your_bot>?start=" in out


def test_invite_for_an_unknown_script_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["invite", "--script", "no-such-script", "--db", str(tmp_path / "r.db")]) == 1
    err = capsys.readouterr().err
    assert "no-such-script" in err and "first-steps" in err


# -- rehearse clients ------------------------------------------------------------------------
async def drive(service: Rehearsal, client: str, events: Sequence[Event | str]) -> None:
    """Hand events to the service; a string presses the button with that label."""
    shown: list[Message] = []
    for number, step in enumerate(events):
        if isinstance(step, str):
            [data] = [b.data for m in shown for row in m.buttons for b in row
                      if b.label == step]
        event = Button(data=data) if isinstance(step, str) else step
        handled = await service.handle(client, f"test:{client}:{number}", event)
        assert handled.outcome is not None
        shown = handled.outcome.messages


CONSENT: list[Event | str] = [
    Start(), "I agree", "Yes", "No, thanks", "No, thanks", "No, thanks", "No, thanks"]


def test_clients_lists_each_client_with_their_status(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "rehearse.db"

    async def setup() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, Clock(), chat_of)
            await drive(service, "tg:1", [*CONSENT, "First steps in sharing"])
            await drive(service, "tg:2", [*CONSENT, "First steps in sharing",
                                          Command(name="pause")])
            await drive(service, "tg:3", [*CONSENT, Command(name="stop")])
            await drive(service, "tg:4", [Start()])

    asyncio.run(setup())
    assert cli.main(["clients", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("\t") == ["client", "status", "level", "scripts", "therapist"]
    status = {line.split("\t")[0]: line.split("\t")[1] for line in lines[1:]}
    assert status == {"tg:1": "active", "tg:2": "paused", "tg:3": "halted",
                      "tg:4": "not consented"}


# -- operator reads leave a trace ------------------------------------------------------------
@pytest.mark.parametrize("command", ["ledger", "export"])
def test_an_operator_read_is_written_to_the_clients_ledger(
    tmp_path: Path, loaded: Loaded, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    db = tmp_path / "rehearse.db"

    async def setup() -> None:
        async with SqliteStore(db) as store:
            await drive(Rehearsal(loaded.engine, store, Clock(), chat_of), "tg:1", CONSENT)

    async def ledger() -> list[tuple[str, dict[str, object]]]:
        async with SqliteStore(db) as store:
            return [(row.kind, row.data) for row in await store.ledger("tg:1")]

    asyncio.run(setup())
    assert cli.main([command, "tg:1", "--db", str(db)]) == 0
    assert '"ledger"' in capsys.readouterr().out
    assert asyncio.run(ledger())[-1] == ("data_read", {"reader": "operator", "what": command})
    assert cli.main([command, "tg:404", "--db", str(db)]) == 1


# -- rehearse run, as a process ---------------------------------------------------------------
async def run_bot_process(
    api: FakeBotApi, token: str, db: Path
) -> asyncio.subprocess.Process:
    env = {key: value for key, value in os.environ.items() if key != "REHEARSE_CONFIG"}
    env.update(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_BASE_URL=api.base_url)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--db", str(db), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_run_with_a_rejected_token_exits_without_printing_it(
    fake_api: FakeBotApi, tmp_path: Path
) -> None:
    wrong = "999999:rejected-SECRET-token"
    process = await run_bot_process(fake_api, wrong, tmp_path / "rehearse.db")
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 1
    assert "rejected the bot token" in text
    assert "rejected-SECRET-token" not in text and "Traceback" not in text


async def test_run_answers_then_stops_cleanly_on_sigterm(
    fake_api: FakeBotApi, tmp_path: Path
) -> None:
    db = tmp_path / "rehearse.db"
    process = await run_bot_process(fake_api, fake_api.token, db)
    try:
        await fake_api.send_text(4242, "hello")  # a stranger: asked for an invite
        await fake_api.wait_for_messages(4242, 1, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    text = output.decode()
    assert process.returncode == 0, text
    assert "stopped cleanly" in text
    assert fake_api.token not in text and "Traceback" not in text
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
