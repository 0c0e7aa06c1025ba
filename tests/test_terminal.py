"""``rehearse play``: the real engine and a real SQLite store, driven through text streams.

A newcomer reads the consent text, picks a shipped script and walks it to the end by typing
button numbers and ratings; /stop, crisis language, /mydata and /delete work as in Telegram;
``--watch`` reloads an edited script and keeps the client's place while it still exists.
The last tests start ``python -m bot`` as a subprocess, as the README's first command does.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import Loaded, build
from bot.config import load_config
from bot.store import SqliteStore
from bot.terminal import play

ROOT = Path(__file__).resolve().parent.parent
FIRST_STEPS = ROOT / "scripts" / "first-steps.yaml"
CONSENT = ["1", "1", "2", "2", "2", "2"]  # agree, adult, no to each of the four opt-ins
#: From the menu (first-steps only) to the end: ratings are typed, buttons by number.
WALK = ["1",                  # First steps in sharing
        "1", "1", "1",        # three "Go on"
        "2", "3",             # distress before, expected difficulty
        "1",                  # "I shared it"
        "2",                  # "Enough for today"
        "1",                  # "Go on"
        "2", "2",             # distress after, actual difficulty
        "2"]                  # "A little" relief


def _only_first_steps(folder: Path | None = None) -> Loaded:
    if folder is None:
        return build(load_config(None, {}), [FIRST_STEPS])
    return build(load_config(None, {}), [folder / "first-steps.yaml"])


async def _play(loaded: Loaded, db: Path, lines: list[str], name: str = "ada") -> str:
    out = io.StringIO()
    async with SqliteStore(db) as store:
        await play(loaded, store, name, stdin=io.StringIO("".join(f"{x}\n" for x in lines)),
                   out=out)
    return out.getvalue()


async def test_a_newcomer_rehearses_a_script_to_the_end(tmp_path: Path) -> None:
    loaded = _only_first_steps()
    text = await _play(loaded, tmp_path / "t.db", [*CONSENT, *WALK])
    assert text.startswith("Welcome to Rehearse.")
    assert "<b>" not in text  # plain text in a terminal
    assert "   [1] I agree\n   [2] No, thanks" in text
    assert "Are you 18 or older?" in text
    assert "(type a number from 0 to 10)" in text
    assert "Hi ada. This is a short practice" in text
    assert "You've finished “First steps in sharing”" in text
    async with SqliteStore(tmp_path / "t.db") as store:
        kinds = [r.kind for r in await store.ledger("term:ada")]
        assert kinds.count("consent") == 5
        ended = [r.data for r in await store.ledger("term:ada") if r.kind == "session_ended"]
        assert ended and ended[-1]["completed"] is True


async def test_the_place_is_kept_between_runs(tmp_path: Path) -> None:
    loaded = _only_first_steps()
    await _play(loaded, tmp_path / "t.db", [*CONSENT, "1", "1"])
    text = await _play(loaded, tmp_path / "t.db", [])
    assert "Welcome back. You can pick up where you left off." not in text  # not paused
    assert "If you skip because you'd rather keep something private" not in text
    assert "For each prompt you can type your answer here" in text


async def test_stop_halts(tmp_path: Path) -> None:
    text = await _play(_only_first_steps(), tmp_path / "t.db",
                       [*CONSENT, "1", "/stop", "1"])
    after = text.split("Stopped.", 1)[1]
    assert "   [1] Only this exercise\n   [2] Withdraw consent and delete my data" in after
    assert "Only this exercise has stopped." in after


async def test_a_stop_word_halts(tmp_path: Path) -> None:
    text = await _play(_only_first_steps(), tmp_path / "t.db", [*CONSENT, "1", "  Cancel "])
    assert "Stopped. The exercise has ended" in text


async def test_crisis_language_at_a_step_shows_resources(tmp_path: Path) -> None:
    text = await _play(_only_first_steps(), tmp_path / "t.db",
                       [*CONSENT, "1", "1", "1", "1", "2", "3", "I want to die", "2"])
    after = text.split("Share one small thing", 1)[1]
    assert "Some words in your message" in after
    assert "988 Suicide & Crisis Lifeline: Call or text 988" in after
    assert "Are you safe right now?\n   [1] Yes, I'm safe\n   [2] No, I'm not safe" in after
    assert "Please call 911 now." in after


async def test_mydata_writes_an_owner_only_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = await _play(_only_first_steps(), tmp_path / "t.db", [*CONSENT, "/mydata"])
    path = tmp_path / "rehearse-export-ada.json"
    assert f"(your data was written to {path.name})" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["client_id"] == "term:ada"
    assert [row["kind"] for row in data["ledger"]][-1] == "export_requested"


async def test_a_safety_plan_is_written_and_shown_first_on_sos(tmp_path: Path) -> None:
    lines = [*CONSENT, "/safetyplan", "1",  # "Write my plan"
             "Not sleeping, pulling away", "1", "1", "1", "1", "1",  # one part, five skipped
             "2",  # "Done"
             "/sos"]
    text = await _play(_only_first_steps(), tmp_path / "t.db", lines)
    assert "1 of 6: My warning signs" in text and "6 of 6: Making my surroundings safer" in text
    sos = text.rsplit("If you or anyone else is in danger right now, call 911.", 1)[1]
    assert sos.index("Not sleeping, pulling away") < sos.index("988")
    async with SqliteStore(tmp_path / "t.db") as store:
        [saved] = await store.safety_plans("term:ada")
    assert saved.parts["warning_signs"] == "Not sleeping, pulling away"


async def test_delete_erases(tmp_path: Path) -> None:
    text = await _play(_only_first_steps(), tmp_path / "t.db", [*CONSENT, "/delete", "1"])
    assert "Done. Everything stored about you in Rehearse has been erased." in text
    async with SqliteStore(tmp_path / "t.db") as store:
        assert await store.load_state("term:ada") is None
        assert await store.ledger("term:ada") == []


async def test_numbers_are_buttons_except_on_ratings(tmp_path: Path) -> None:
    text = await _play(_only_first_steps(), tmp_path / "t.db",
                       [*CONSENT, "1", "1", "1", "1", "11", "7"])
    assert "Please send a whole number from 0 to 10." in text  # 11 is not a button here
    assert "Thank you for telling me. 7 out of 10 is a lot." in text
    text = await _play(_only_first_steps(), tmp_path / "u.db", ["9"])
    assert "Please choose one of the buttons above." in text  # no 9th button


# -- --watch ---------------------------------------------------------------------------------------


class Typist(io.StringIO):
    """Standard input that a test types into while ``play`` runs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: queue.Queue[str] = queue.Queue()

    def readline(self, size: int | None = -1, /) -> str:
        return self.lines.get(timeout=20)

    def type(self, *lines: str) -> None:
        for line in lines:
            self.lines.put(f"{line}\n")

    def end(self) -> None:
        self.lines.put("")


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(800):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    later = path.stat().st_mtime + 2
    os.utime(path, (later, later))


async def test_watch_reloads_and_keeps_the_place(tmp_path: Path) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name in ("first-steps.yaml", "library.yaml"):
        shutil.copy(ROOT / "scripts" / name, folder / name)
    script = folder / "first-steps.yaml"
    source = script.read_text(encoding="utf-8")
    loaded = _only_first_steps(folder)
    out, keys = io.StringIO(), Typist()
    async with SqliteStore(tmp_path / "t.db") as store:
        task = asyncio.create_task(play(loaded, store, "ada", watch=[script], stdin=keys,
                                        out=out, watch_interval=0.05))
        try:
            keys.type(*CONSENT, "1", "1")
            await _until(lambda: "For each prompt you can type" in out.getvalue(), "step 2")

            # 1. a text changes: the client stays at their step and sees the new wording
            edited = source.replace("If you skip because you'd rather",
                                    "EDITED. If you skip because you'd rather")
            _touch_later(script, edited)
            await _until(lambda: "(reloaded: first-steps)" in out.getvalue(), "a reload")
            keys.type("1")
            await _until(lambda: "EDITED. If you skip" in out.getvalue(), "the new text")
            assert "This session is closed." not in out.getvalue()

            # 2. a broken edit keeps the last good version
            seen = out.getvalue().count("(reloaded")
            _touch_later(script, edited.replace("\nsteps:\n", "\nstepz:\n", 1))
            await _until(lambda: out.getvalue().count("(reloaded") > seen, "a second reload")
            assert "   ! " in out.getvalue()

            # 3. the current step is removed: the session closes, gently
            start = edited.index("  - id: privacy-is-a-choice")
            end = edited.index("  - id: checkin-before")
            seen = out.getvalue().count("(reloaded")
            _touch_later(script, edited[:start] + edited[end:])
            await _until(lambda: out.getvalue().count("(reloaded") > seen, "a third reload")
            keys.type("1")
            await _until(lambda: "This session is closed." in out.getvalue(), "the close")
        finally:
            keys.end()
            await asyncio.wait_for(task, 20)
        ended = [r.data for r in await store.ledger("term:ada") if r.kind == "session_ended"]
        assert ended[-1]["reason"] == "script-changed"


# -- the command line ------------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TELEGRAM_BOT_TOKEN", "REHEARSE_CONFIG", "TELEGRAM_API_BASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_python_m_bot_play_prints_the_consent_and_exits_at_eof(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "play", "scripts/first-steps.yaml",
         "--db", str(tmp_path / "p.db"), "--as", "ada"],
        cwd=ROOT, env=_environment(), input="", capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Welcome to Rehearse.")
    assert "[1] I agree" in result.stdout
    assert "Traceback" not in result.stderr


def test_plain_python_m_bot_without_a_token_rehearses_in_the_terminal(tmp_path: Path) -> None:
    """The README's first command: no subcommand, no token, no config, an empty directory."""
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=_environment(), input="/help\n",
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Welcome to Rehearse.")
    assert "/sos" in result.stdout  # the /help answer
    assert (tmp_path / "rehearse.db").exists()  # the embedded default database
    assert "Traceback" not in result.stderr
