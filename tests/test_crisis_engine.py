"""The detector gives the same answer at every step kind, and the rule book checks itself.

The engine scans every free text before anything else, so what it does with a message must
not depend on where the client is: a risk message brings crisis support at consent, at the
menu, at a prompt, mid-role-play, at a check-in, while paused and after a halt; a benign one
never does. The rule book reports its own mistakes as ``file:line:col``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.check import check_paths
from bot.crisis import load_rules, read_cases
from bot.script import ScriptError
from tests.support.engine_driver import SITUATIONS, Driver, build_situations, in_scene

ROOT = Path(__file__).resolve().parents[1]
CORPUS = read_cases(ROOT / "tests/crisis/corpus_en.tsv")
#: One situation per step kind the issue names (and a few more), each a live engine state.
STEP_KINDS = ("consent pending", "menu pending", "prompt", "roleplay turn", "checkin rating",
              "checkin cues", "ask with free text", "paused", "halted", "crisis question")


@pytest.fixture(scope="module")
def situations(loaded: Loaded) -> dict[str, Driver]:
    built = build_situations(loaded.engine)
    assert set(STEP_KINDS) <= set(SITUATIONS)
    return built


@pytest.mark.parametrize("situation", STEP_KINDS)
def test_every_step_kind_answers_the_corpus_as_the_detector_does(
    situations: dict[str, Driver], situation: str
) -> None:
    detector = next(iter(situations.values())).engine.resources.crisis
    wrong = []
    for case in CORPUS:
        d = situations[situation].fork()
        scene = in_scene(d)
        d.text(case.text)
        crisis = "crisis_language" in d.kinds()
        if crisis != bool(detector.scan(case.text)):
            wrong.append(case.text)
        elif crisis:  # the numbers come first, whatever the step
            assert d.texts()[0] == d.resources_text(case.text, running=situation in _RUNNING,
                                                    scene=scene), case.text
    assert not wrong, f"{situation}: {wrong[:5]}"


#: Situations with an exercise running (the first crisis message says it is paused).
_RUNNING = {"prompt", "roleplay turn", "checkin rating", "checkin cues", "ask with free text"}


def test_a_broken_rule_book_is_reported_at_file_line_col(tmp_path: Path) -> None:
    book = tmp_path / "en" / "crisis_rules.yaml"
    book.parent.mkdir()
    book.write_text(
        "within: 3\nconcepts:\n  DIE: [die]\n  bad name: [x]\n"
        "rules:\n  - id: a\n    kind: suicide\n    why: w\n    match: [DIE, NOPE]\n"
        "  - id: a\n    kind: grief\n    why: w\n    match: [DIE]\n", encoding="utf-8")
    with pytest.raises(ScriptError) as caught:
        load_rules(book)
    messages = [str(f) for f in caught.value.findings]
    assert any(":4:3:" in m and "UPPER_CASE" in m for m in messages), messages
    assert any(":9:18:" in m and "unknown concept `NOPE`" in m for m in messages), messages
    assert any(":10:9:" in m and "used twice" in m for m in messages), messages
    assert any(":11:11:" in m and "`kind` must be one of" in m for m in messages), messages
    # `rehearse check --prompts` reports the same, so a broken book never loads unseen
    found = [str(f) for f in check_paths([], prompts_dir=tmp_path)]
    assert any("unknown concept `NOPE`" in m for m in found), found


def test_the_shipped_rule_book_passes_rehearse_check() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "check", "--prompts", "prompts",
                           "scripts"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def rehearse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin"})


def test_crisis_explain_names_the_rule_and_the_repairs() -> None:
    done = rehearse("crisis", "explain", "i wnat 2 k1ll myself")
    assert done.returncode == 0, done.stderr
    assert "MATCH suicide" in done.stdout and "crisis_rules.yaml:" in done.stdout
    assert "k1ll" in done.stdout  # the repair is shown
    calm = rehearse("crisis", "explain", "I'm killing it at work")
    assert "no rule matched" in calm.stdout
    shaving = rehearse("crisis", "explain", "I cut myself shaving")
    assert "not counted: rule `" in shaving.stdout and "`not_near`" in shaving.stdout


def test_explain_piped_into_a_reader_that_stops_ends_without_a_traceback() -> None:
    """`rehearse crisis explain … | head -1`: here the pipe's reader is gone at once."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "crisis", "explain", "i wnat 2 k1ll myself"],
            cwd=ROOT, stdout=write, stderr=subprocess.PIPE, check=False,
            env={"PATH": "/usr/bin:/bin"})
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == b"", done.stderr.decode()


def test_crisis_test_scores_a_labelled_file(tmp_path: Path) -> None:
    cases = tmp_path / "cases.tsv"
    cases.write_text("kind\timminent\tcategory\ttext\n"
                     "suicide\tno\texplicit\ti want to die\n"
                     "partner_abuse\tno\tpartner_abuse\tmy husband hits me\n"
                     "none\t-\tbenign\tthe battery died\n", encoding="utf-8")
    done = rehearse("crisis", "test", str(cases))
    assert done.returncode == 0, done.stderr
    assert "suicide" in done.stdout and "100.0%" in done.stdout
    assert "false alarms: 0/1" in done.stdout
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\nhello\n", encoding="utf-8")
    failed = rehearse("crisis", "test", str(bad))
    assert failed.returncode == 1 and f"{bad}:1:1:" in failed.stderr
    assert "Traceback" not in failed.stderr
