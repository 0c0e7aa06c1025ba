"""Scripts stay in their folders: regular files only, includes confined, loading on a budget.

The attacks are the ones an independent review ran against ``rehearse check`` and
``rehearse run``: a FIFO named ``x.yaml`` (it hung both forever), ``includes: [/etc/shadow]``
(it printed the file in findings), ``../`` and symlinks out of the folder, and one file
included 10 times per level, 5 levels deep (49 s, exit 0).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.script import Finding, check_paths

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
script:
  id: {id}
  title: T
  version: 1
  author: Tests
  kind: {kind}
  level: 1
  summary: S
"""
STEPS = """\
steps:
  - id: done
    end: Bye.
"""


def script(tmp: Path, name: str, extra: str = "", *, kind: str = "exercise") -> Path:
    """Write a small script (an exercise with one end step, or a library) named ``name``."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = HEADER.format(id=path.stem.replace(".", "-").lower(), kind=kind) + extra
    path.write_text(body + (STEPS if kind == "exercise" else ""), encoding="utf-8")
    return path


def rehearse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; a hang fails the test instead of stalling the suite."""
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60, check=False)


def codes(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(Path(f.file).name, f.code) for f in findings}


# --- only regular files are read -------------------------------------------------------------


@pytest.fixture
def fifo_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "scripts"
    script(folder, "fine.yaml")
    os.mkfifo(folder / "x.yaml")
    yield folder


def test_a_fifo_in_the_folder_is_a_finding_for_rehearse_check(fifo_folder: Path) -> None:
    done = rehearse("check", str(fifo_folder))
    assert done.returncode == 1, done.stderr
    assert f"{fifo_folder / 'x.yaml'}:1:1: error: this is a named pipe, not a regular file" \
        in done.stdout
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 1, errors  # the other script is checked as usual


def test_a_fifo_in_the_folder_does_not_stall_rehearse_run(
    fifo_folder: Path, tmp_path: Path
) -> None:
    (fifo_folder / "fine.yaml").unlink()
    config = tmp_path / "config.yaml"
    config.write_text(f"scripts:\n  paths: ['{fifo_folder}']\nstorage:\n"
                      f"  database: '{tmp_path / 'r.db'}'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "REHEARSE_"))}
    env.update(TELEGRAM_BOT_TOKEN="123:never-used", TELEGRAM_API_BASE_URL="http://127.0.0.1:9")
    done = rehearse("run", "--config", str(config), env=env)
    assert done.returncode == 1
    assert f"{fifo_folder / 'x.yaml'}:1:1: error: this is a named pipe" in done.stderr
    assert "no script passed its checks" in done.stderr


def test_sockets_and_folders_named_yaml_are_findings(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "d.yaml").mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "sock.yaml"))
        findings = check_paths([folder])
    messages = {Path(f.file).name: (f.line, f.col, f.message) for f in findings}
    assert messages["sock.yaml"][:2] == (1, 1)
    assert "this is a socket, not a regular file" in messages["sock.yaml"][2]
    assert "this is a folder, not a regular file" in messages["d.yaml"][2]
