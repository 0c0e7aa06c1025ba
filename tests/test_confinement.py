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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build
from bot.check import check_paths
from bot.config import load_config
from bot.script import Finding
from bot.script._findings import quoted
from bot.script._load import MAX_INCLUDE_DEPTH, MAX_LOAD_BYTES, MAX_LOAD_FILES
from tests.test_check import assert_found, at

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


#: What a secret file outside the scripts folder holds (like /etc/shadow).
SECRET_LINES = ("root:$6$salt$SECRETHASHroot:19000:0:99999:7:::",
                "daemon:*:19000:0:99999:7:::", "ada:$6$pepper$SECRETHASHada:19000:0:99999:7:::")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "shadow"
    path.parent.mkdir()
    path.write_text("\n".join(SECRET_LINES) + "\n", encoding="utf-8")
    return path


def assert_not_shown(text: str) -> None:
    for line in SECRET_LINES:
        for part in line.split(":"):
            assert len(part) < 6 or part not in text, part


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


# --- includes stay in the script folders ---------------------------------------------------


def test_an_absolute_include_outside_the_folders_is_refused_unread(
    tmp_path: Path, secret: Path
) -> None:
    folder = tmp_path / "scripts"
    path = script(folder, "s.yaml", f"includes: [{secret}]\n")
    done = rehearse("check", str(folder))
    assert done.returncode == 1
    assert_not_shown(done.stdout + done.stderr)
    line, col = at(path.read_text(encoding="utf-8"), str(secret))
    [first] = [out for out in done.stdout.splitlines() if "[include-outside]" in out]
    assert first.startswith(f"{path}:{line}:{col}: error: `")
    assert f"is outside the script folders ({folder.resolve()})" in first


@pytest.mark.parametrize("entry", ["../outside.yaml", "sub/../../outside.yaml", "link.yaml"])
def test_includes_leading_out_of_the_folder_are_refused(tmp_path: Path, entry: str) -> None:
    folder = tmp_path / "scripts"
    script(tmp_path, "outside.yaml", kind="library")
    (folder / "sub").mkdir(parents=True)
    (folder / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    path = script(folder, "s.yaml", f"includes: ['{entry}']\n")
    found = assert_found(check_paths([folder]), "include-outside",
                         at(path.read_text(encoding="utf-8"), f"'{entry}'"))
    assert found.file == str(path)


def test_includes_inside_the_folders_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "scripts"
    script(folder / "shared", "lib.yaml", kind="library")
    script(folder, "other.yaml", kind="library")
    (folder / "alias.yaml").symlink_to(folder / "shared" / "lib.yaml")
    script(folder, "s.yaml", f"includes: [shared/lib.yaml, {folder / 'other.yaml'}]\n")
    script(folder, "t.yaml", "includes: [alias.yaml]\n")
    assert not [f for f in check_paths([folder]) if f.severity == "error"]


def test_a_link_in_the_folder_to_a_secret_file_is_refused_unread(
    tmp_path: Path, secret: Path
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "shadow.yaml").symlink_to(secret)
    done = rehearse("check", str(folder))
    assert done.returncode == 1
    assert_not_shown(done.stdout + done.stderr)
    assert done.stdout.startswith(f"{folder / 'shadow.yaml'}:1:1: error: this file leads outside "
                                  "the script folders")


def test_a_file_that_is_no_script_is_named_not_quoted(tmp_path: Path, secret: Path) -> None:
    done = rehearse("check", str(secret))  # named on purpose: read, but never echoed
    assert done.returncode == 1
    assert_not_shown(done.stdout + done.stderr)
    assert done.stdout == (f"{secret}:1:1: error: this is not a script: it has none of the keys "
                           "`script`, `includes`, `prompts`, `exercises`, `steps` "
                           "[schema-not-a-script]\n")


def test_findings_quote_at_most_a_snippet_of_a_file(tmp_path: Path) -> None:
    long_key = "k" * 300
    text = (HEADER.format(id="s", kind="exercise") + STEPS
            + f"{long_key}: 1\nx: !{long_key} 1\nsay: &{long_key} a\nsay: b\n")
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    findings = check_paths([tmp_path / "s.yaml"])
    assert findings
    assert all("k" * 41 not in f.message for f in findings), findings


def test_a_pipe_named_in_includes_is_refused_at_the_entry(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    path = script(tmp_path, "s.yaml", "includes: [pipe.yaml]\n")
    found = assert_found(check_paths([path]), "include-not-a-file",
                         at(path.read_text(encoding="utf-8"), "pipe.yaml"))
    assert "a named pipe, not a regular file" in found.message


def test_an_include_that_cannot_be_resolved_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    path = script(tmp_path, "s.yaml", "includes: [loop.yaml]\n")
    assert_found(check_paths([path]), "include-missing",
                 at(path.read_text(encoding="utf-8"), "loop.yaml"))


def test_an_include_written_with_a_nul_escape_is_a_finding(tmp_path: Path) -> None:
    path = script(tmp_path, "s.yaml", 'includes: ["a\\0b.yaml"]\n')
    assert_found(check_paths([path]), "yaml-binary",
                 at(path.read_text(encoding="utf-8"), '"a'))


def test_a_quote_in_a_finding_never_writes_control_characters() -> None:
    assert quoted("a\x00b\x1b[2J\u202e") == "a\\x00b\\x1b[2J\\u202e"


# --- a budget for one load -------------------------------------------------------------------


def chain(folder: Path, levels: int, *, fan: int, same: bool) -> Path:
    """Level 0 includes ``fan`` files of level 1 (or one file ``fan`` times), and so on."""
    for level in range(levels, -1, -1):
        names = [f"l{level + 1}.yaml"] * fan if same else [
            f"l{level + 1}-{i}.yaml" for i in range(fan)]
        extra = f"includes: [{', '.join(names)}]\n" if level < levels else ""
        for i in range(1 if same or level == 0 else fan):
            name = f"l{level}.yaml" if same or level == 0 else f"l{level}-{i}.yaml"
            script(folder, name, extra, kind="exercise" if level == 0 else "library")
    return folder / "l0.yaml"


def test_one_file_included_ten_times_per_level_five_deep_is_refused_quickly(
    tmp_path: Path,
) -> None:
    root = chain(tmp_path, 5, fan=10, same=True)
    start = time.perf_counter()
    done = rehearse("check", str(root))
    elapsed = time.perf_counter() - start
    print(f"10 x 5 levels: rehearse check took {elapsed:.2f} s")
    assert done.returncode == 1
    text = root.read_text(encoding="utf-8")
    line, col = at(text, "l1.yaml", 2)
    assert f"{root}:{line}:{col}: error: `l1.yaml` is already included on line {line}; " \
        "include each file once [include-duplicate]" in done.stdout


def test_a_script_reading_too_many_files_is_refused(tmp_path: Path) -> None:
    for i in range(10):  # 1 + 10 + 10 x 10 distinct files
        inner = ", ".join(f"b{i}-{j}.yaml" for j in range(10))
        script(tmp_path, f"a{i}.yaml", f"includes: [{inner}]\n", kind="library")
        for j in range(10):
            script(tmp_path, f"b{i}-{j}.yaml", kind="library")
    outer = ", ".join(f"a{i}.yaml" for i in range(10))
    root = script(tmp_path, "s.yaml", f"includes: [{outer}]\n")
    assert MAX_LOAD_FILES < 1 + 10 + 10 * 10
    budget = [f for f in check_paths([root]) if f.code == "include-budget"]
    assert budget and all(f"more than {MAX_LOAD_FILES} files" in f.message for f in budget)


def test_a_script_reading_too_many_bytes_is_refused(tmp_path: Path) -> None:
    filler = "# " + "x" * 98 + "\n"
    for i in range(3):
        library = script(tmp_path, f"big{i}.yaml", kind="library")
        with library.open("a", encoding="utf-8") as out:
            out.write(filler * (MAX_LOAD_BYTES // 100 // 3 + 10))
    root = script(tmp_path, "s.yaml", "includes: [big0.yaml, big1.yaml, big2.yaml]\n")
    findings = check_paths([root])
    found = assert_found(findings, "include-budget", at(root.read_text(encoding="utf-8"),
                                                        "big2.yaml"))
    assert f"more than {MAX_LOAD_BYTES:,} bytes" in found.message


def test_includes_nested_too_deep_are_refused_at_the_entry(tmp_path: Path) -> None:
    ok = chain(tmp_path / "ok", MAX_INCLUDE_DEPTH, fan=1, same=True)
    assert not [f for f in check_paths([ok]) if f.severity == "error"]
    deep = chain(tmp_path / "deep", MAX_INCLUDE_DEPTH + 1, fan=1, same=True)
    found = assert_found(check_paths([deep]), "include-depth",
                         at(deep.read_text(encoding="utf-8"), "l1.yaml"))
    assert f"at most {MAX_INCLUDE_DEPTH}" in found.message


def test_a_file_included_by_two_others_is_shared(tmp_path: Path) -> None:
    script(tmp_path, "lib.yaml", "exercises:\n  - {id: b, title: B, kind: breathing, "
           "pages: [{say: 'In, out.'}]}\n", kind="library")
    script(tmp_path, "left.yaml", "includes: [lib.yaml]\n", kind="library")
    script(tmp_path, "right.yaml", "includes: [lib.yaml]\n", kind="library")
    root = tmp_path / "s.yaml"
    root.write_text(HEADER.format(id="s", kind="exercise") + "includes: [left.yaml, right.yaml]\n"
                    "steps:\n  - {id: go, exercise: b}\n  - {id: done, end: Bye.}\n",
                    encoding="utf-8")
    assert not [f for f in check_paths([root]) if f.severity == "error"]


def test_the_bot_reads_includes_from_its_configured_folders_only(tmp_path: Path) -> None:
    ours, shared = tmp_path / "ours", tmp_path / "shared"
    script(shared, "lib.yaml", kind="library")
    script(tmp_path, "outside.yaml", kind="library")
    script(ours, "good.yaml", f"includes: [{shared / 'lib.yaml'}]\n")
    bad = script(ours, "bad.yaml", "includes: [../outside.yaml]\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"scripts:\n  paths: ['{ours}', '{shared}']\n", encoding="utf-8")
    loaded = build(load_config(config, {}))
    assert set(loaded.scripts) == {"good", "lib"}
    errors = [f for f in loaded.findings if f.severity == "error"]
    assert [(f.file, f.code) for f in errors] == [(str(bad), "include-outside")]
