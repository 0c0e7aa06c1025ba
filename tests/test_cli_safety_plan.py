"""``rehearse safety-plan``: show a client's plan, suggest wording (``--edit`` with a real
editor process, ``--from`` a file or standard input), and move the config file's old
``safety.safety_plans`` into the database once, after which the key is refused.

The real ``bot.cli.main`` against a real SQLite file prepared through the real service.
"""

from __future__ import annotations

import asyncio
import io
import stat
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import build
from bot.cli import main
from bot.config import ConfigError, load_config
from bot.engine import SafetyPlan
from bot.service import Rehearsal
from bot.store import SqliteStore
from tests.support.engine_driver import ServiceClient

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
OLD_CONFIG = """\
safety:
  region: US
  safety_plans:
    "77":
      warning_signs: [Not sleeping, Pulling away]
      coping_steps: [A walk]
      people_places: ["Sam, 0123"]
    "term:ada":
      safe_surroundings: [Give the pills to Sam]
"""


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REHEARSE_CONFIG", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "EDITOR",
                 "VISUAL"):
        monkeypatch.delenv(name, raising=False)


def _client(db: Path, client: str = "tg:77", therapist: str | None = "tg:9000") -> None:
    """A client who agreed to the terms (a state in the database), Dr Lee's (tg:9000)."""
    loaded = build(load_config(None, {}))

    async def run() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, lambda: NOW)
            await ServiceClient(service, client).consent()
            if therapist is not None:
                await service.assign(client, therapist, by="operator")

    asyncio.run(run())


def _versions(db: Path, client: str = "tg:77") -> list[tuple[str, str, dict[str, str]]]:
    async def read() -> list[tuple[str, str, dict[str, str]]]:
        async with SqliteStore(db) as store:
            return [(v.author, v.status, dict(v.parts)) for v in await store.safety_plans(client)]

    return asyncio.run(read())


def _ledger_kinds(db: Path, client: str = "tg:77") -> list[tuple[str, dict[str, object]]]:
    async def read() -> list[tuple[str, dict[str, object]]]:
        async with SqliteStore(db) as store:
            return [(r.kind, r.data) for r in await store.ledger(client)]

    return asyncio.run(read())


def test_from_standard_input_suggests_wording_the_client_has_not_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    _client(db)
    monkeypatch.setattr(sys, "stdin", io.StringIO(
        'internal_coping: "Cold water on my face"\nprofessionals: "Dr Lee, 555-0100"\n'))
    assert main(["safety-plan", "tg:77", "--from", "-", "--by", "tg:9000", "--db", str(db)]) == 0
    assert "internal_coping, professionals" in capsys.readouterr().out
    [(author, status, parts)] = _versions(db)
    assert (author, status) == ("tg:9000", "suggested")
    assert parts["internal_coping"] == "Cold water on my face"
    assert ("safety_plan", {"action": "suggested", "by": "tg:9000",
                            "parts": ["internal_coping", "professionals"]}) in _ledger_kinds(db)
    # showing it is a read the client sees; the suggestion is not their plan
    assert main(["safety-plan", "tg:77", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "the client's plan: none" in out
    assert "suggested, waiting for the client:\n  internal_coping: Cold water on my face" in out
    assert ("data_read", {"reader": "operator", "what": "safety-plan"}) in _ledger_kinds(db)


def test_edit_opens_the_editor_on_an_owner_only_file_and_reads_it_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    _client(db)
    seen = tmp_path / "seen.txt"
    editor = tmp_path / "editor.py"  # a real editor process that changes one line
    editor.write_text(
        "import os, sys, stat\n"
        "path = sys.argv[1]\n"
        f"open({str(seen)!r}, 'w').write(oct(stat.S_IMODE(os.stat(path).st_mode)) + '\\n'"
        " + open(path).read())\n"
        "text = open(path).read().replace('warning_signs: \"\"', "
        "'warning_signs: \"Staying in bed\"')\n"
        "open(path, 'w').write(text)\n", encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    assert main(["safety-plan", "tg:77", "--edit", "--db", str(db)]) == 0
    mode, _, shown = seen.read_text(encoding="utf-8").partition("\n")
    assert mode == oct(stat.S_IRUSR | stat.S_IWUSR)
    assert "nothing here becomes their plan without their yes" in shown
    assert [line.split(":")[0] for line in shown.splitlines()
            if line and not line.startswith("#")] == [
        "warning_signs", "internal_coping", "distraction", "people_to_ask", "professionals",
        "safe_environment"]
    [(author, status, parts)] = _versions(db)
    assert (author, status, parts["warning_signs"]) == ("operator", "suggested",
                                                        "Staying in bed")
    # deleted: no folder of the editor's file is left
    assert not list(Path(tempfile.gettempdir()).glob("rehearse-plan-*/safety-plan.yaml"))


def test_an_editor_that_changes_nothing_suggests_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    _client(db)
    monkeypatch.setenv("EDITOR", "true")
    assert main(["safety-plan", "tg:77", "--edit", "--db", str(db)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    monkeypatch.setenv("EDITOR", "false")
    assert main(["safety-plan", "tg:77", "--edit", "--db", str(db)]) == 1
    assert "exited with status 1" in capsys.readouterr().err
    assert _versions(db) == []


@pytest.mark.parametrize(("text", "message"), [
    ("coping_steps: x\n", "<stdin>:1:1: error: not a part of the safety plan: coping_steps"),
    ("warning_signs: [a, b]\n", "<stdin>:1:1: error: `warning_signs` must be text"),
    (f"distraction: {'x' * 401}\n", "<stdin>:1:1: error: longer than 400 characters"),
    ("- a list\n", "<stdin>:1:1: error: expected the parts of a safety plan"),
])
def test_a_bad_file_is_located_and_nothing_is_suggested(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        text: str, message: str) -> None:
    db = tmp_path / "r.db"
    _client(db)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["safety-plan", "tg:77", "--from", "-", "--db", str(db)]) == 1
    assert capsys.readouterr().err.startswith(message)
    assert _versions(db) == []


def test_a_therapist_suggests_only_for_their_own_clients(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    _client(db)
    monkeypatch.setattr(sys, "stdin", io.StringIO('distraction: "The library"\n'))
    assert main(["safety-plan", "tg:77", "--from", "-", "--by", "9001", "--db", str(db)]) == 1
    assert "tg:77 is not a client of 9001" in capsys.readouterr().err
    assert _versions(db) == []
    assert ("access_refused", {"reader": "tg:9001", "what": "safety-plan"}) in _ledger_kinds(db)
    monkeypatch.setattr(sys, "stdin", io.StringIO('distraction: "The library"\n'))
    assert main(["safety-plan", "tg:77", "--from", "-", "--by", "9000", "--db", str(db)]) == 0
    assert [(a, s) for a, s, _ in _versions(db)] == [("tg:9000", "suggested")]


def test_no_such_client(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["safety-plan", "tg:5", "--db", str(tmp_path / "r.db")]) == 1
    assert "no client tg:5" in capsys.readouterr().err


def test_the_old_config_key_is_refused_where_it_stands(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}:3:3: `safety.safety_plans` is no longer read")
    assert "rehearse safety-plan --import-config" in message


def _import_old_config(tmp_path: Path) -> int:
    """``rehearse safety-plan --import-config`` on the old config file, into ``r.db``."""
    config = tmp_path / "config.yaml"
    config.write_text(OLD_CONFIG, encoding="utf-8")
    return main(["safety-plan", "--import-config", "--config", str(config), "--db",
                 str(tmp_path / "r.db")])


def test_import_config_moves_the_plans_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _client(db)
    _client(db, "term:ada")
    assert _import_old_config(tmp_path) == 0
    out = capsys.readouterr().out
    assert "tg:77: imported (warning_signs, internal_coping, people_to_ask)" in out
    assert "term:ada: imported (safe_environment)" in out
    assert "Now delete safety.safety_plans" in out
    [(author, status, parts)] = _versions(db)
    assert (author, status) == ("config", "accepted")
    assert SafetyPlan.model_validate(parts) == SafetyPlan(
        warning_signs="Not sleeping\nPulling away", internal_coping="A walk",
        people_to_ask="Sam, 0123")
    assert _versions(db, "term:ada")[0][2]["safe_environment"] == "Give the pills to Sam"
    assert ("safety_plan", {"action": "imported", "by": "operator",
                            "parts": ["warning_signs", "internal_coping", "people_to_ask"]}
            ) in _ledger_kinds(db)
    # once: a second run leaves the stored plans as they are
    assert _import_old_config(tmp_path) == 0
    assert "tg:77: has a plan in the database already" in capsys.readouterr().out
    assert len(_versions(db)) == 1


def test_import_config_leaves_out_who_is_not_a_client_and_an_erasure_stays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _client(db)
    assert _import_old_config(tmp_path) == 0
    out = capsys.readouterr().out
    assert "term:ada: not a client in the database (not joined yet, or erased); left out" in out
    assert _versions(db, "term:ada") == []

    async def erase() -> None:
        async with SqliteStore(db) as store:
            await store.erase("tg:77")

    asyncio.run(erase())
    assert _import_old_config(tmp_path) == 0
    assert "tg:77: not a client in the database" in capsys.readouterr().out
    assert _versions(db) == []


def test_import_config_refuses_a_plan_too_long_and_imports_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    config = tmp_path / "config.yaml"
    entries = ", ".join(["x" * 150] * 3)  # each entry as before, together too long a part
    config.write_text(f'safety:\n  safety_plans:\n    "1":\n      coping_steps: [{entries}]'
                      '\n    "2":\n      coping_steps: [ok]\n', encoding="utf-8")
    assert main(["safety-plan", "--import-config", "--config", str(config), "--db",
                 str(db)]) == 1
    err = capsys.readouterr().err
    assert "safety.safety_plans.1: longer than 400 characters: internal_coping" in err
    assert "nothing was imported" in err
    assert _versions(db, "tg:2") == []


def test_import_config_without_a_config_file_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["safety-plan", "--import-config"]) == 2
    assert "needs the config file" in capsys.readouterr().err
