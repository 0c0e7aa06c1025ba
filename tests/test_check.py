"""Tests for ``rehearse check``: the safety proofs, texts, advice and bad input of every kind."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.bench_check import generate
from bot.check import StepGraph, _texts, check_paths, check_script, to_mermaid
from bot.check import _check as checker
from bot.config import ConfigError, load_config
from bot.engine import ClientState, Opt
from bot.engine._context import Context, Resources
from bot.engine.steps import KINDS, Drawing, kind_of
from bot.engine.steps.say import Say
from bot.render import Renderer
from bot.script import Finding, LoadedScript, Severity, load_script
from bot.script import _model as m

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "scripts"
EXPECT = re.compile(r"# expect: (?P<code>[a-z0-9-]+) at (?P<line>\d+):(?P<col>\d+)")

HEADER = """\
script:
  id: t
  title: T
  version: 1
  author: Tests
  level: {level}
  summary: S
  calm: {calm}
exercises:
  - id: breathe
    title: Breathe
    kind: breathing
    pages:
      - say: Breathe in and out.
  - id: journal
    title: Journal
    kind: journaling
    pages:
      - write: What happened?
  - id: talk-kindly
    title: Kind words
    kind: self_talk
    pages:
      - say: Be kind to yourself.
      - write: What would a friend say?
{extra}steps:
"""
#: The usual way out: an after check-in, then the end.
CLOSE = """\
  - id: after
    checkin:
      moment: after
  - id: done
    end: Bye.
"""
BEFORE = """\
  - id: before
    checkin:
      moment: before
"""


def script_text(steps: str, *, level: int = 1, calm: str = "[breathe]", extra: str = "") -> str:
    """A whole script: the standard header, then ``steps``."""
    return HEADER.format(level=level, calm=calm, extra=extra) + steps


def run(tmp_path: Path, text: str, name: str = "s.yaml") -> list[Finding]:
    """Write ``text`` and check it as ``rehearse check`` does."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return check_paths([path])


def at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, col) where the ``nth`` occurrence of ``needle`` starts in ``text``."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def located(findings: list[Finding]) -> set[tuple[str, int, int]]:
    return {(f.code, f.line, f.col) for f in findings}


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def assert_found(findings: list[Finding], code: str, where: tuple[int, int]) -> Finding:
    """The finding with ``code`` at ``where``; fails listing all findings otherwise."""
    match = [f for f in findings if f.code == code and (f.line, f.col) == where]
    assert match, f"no {code} at {where}; found:\n" + "\n".join(map(str, findings))
    return match[0]


# --- shipped scripts and fixtures -------------------------------------------------------------


def test_shipped_scripts_have_no_errors() -> None:
    findings = check_paths([Path("scripts")], prompts_dir=Path("prompts"))
    assert not errors(findings), "\n".join(map(str, errors(findings)))


def _fixtures(failing: bool) -> list[Path]:
    files = sorted(FIXTURES.glob("*.yaml"))
    return [f for f in files if bool(EXPECT.match(f.read_text("utf-8"))) is failing
            and f.name != "lib.yaml"]


@pytest.mark.parametrize("fixture", _fixtures(failing=False), ids=lambda p: p.name)
def test_passing_fixture_has_no_errors(fixture: Path) -> None:
    findings = check_paths([fixture])
    assert not errors(findings), "\n".join(map(str, findings))


@pytest.mark.parametrize("fixture", _fixtures(failing=True), ids=lambda p: p.name)
def test_failing_fixture_fails_where_it_says(fixture: Path) -> None:
    expected = EXPECT.match(fixture.read_text("utf-8"))
    assert expected is not None
    findings = [f for f in check_paths([fixture]) if f.file == str(fixture)]
    where = (int(expected["line"]), int(expected["col"]))
    assert assert_found(findings, expected["code"], where).severity is Severity.ERROR


def test_there_are_fixtures_of_both_kinds() -> None:
    assert _fixtures(failing=True) and _fixtures(failing=False)


# --- proof 1: reachable, and every path ends ---------------------------------------------------


def test_unreachable_step(tmp_path: Path) -> None:
    steps = "  - id: start\n    say: Hi.\n    next: after\n  - id: orphan\n    say: Lost.\n"
    text = script_text(steps + CLOSE)
    found = assert_found(run(tmp_path, text), "unreachable-step", at(text, "id: orphan"))
    assert "`orphan`" in found.message and "`start`" in found.message


def test_last_step_that_runs_out_is_a_dead_end(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: pick\n    ask:\n      text: Which?\n      choices:\n"
             "        - label: End\n          goto: after\n        - label: Wander\n"
             "          goto: wander\n" + CLOSE + "  - id: wander\n    say: Nowhere.\n")
    text = script_text(steps)
    found = assert_found(run(tmp_path, text), "dead-end", at(text, "id: wander"))
    assert "runs out" in found.message


def test_loop_without_way_out_is_reported_once_where_it_is_entered(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: pick\n    ask:\n      text: Which?\n      choices:\n"
             "        - label: End\n          goto: after\n        - label: Loop\n"
             "          goto: round\n" + CLOSE
             + "  - id: round\n    say: Round.\n  - id: again\n    say: Again.\n    next: round\n")
    text = script_text(steps)
    findings = run(tmp_path, text)
    found = assert_found(findings, "dead-end", at(text, "id: round"))
    assert "round → again → round" in found.message
    assert [f.code for f in findings].count("dead-end") == 1


@pytest.mark.parametrize("body", [
    "    say: Hi.\n    next: nowhere\n",
    "    ask:\n      text: Go?\n      choices:\n        - label: Go\n          goto: nowhere\n",
    "    branch:\n      - if: level > 1\n        goto: nowhere\n      - goto: after\n",
])
def test_jump_to_a_missing_step(tmp_path: Path, body: str) -> None:
    text = script_text(BEFORE + "  - id: start\n" + body + CLOSE)
    found = assert_found(run(tmp_path, text), "unknown-step", at(text, "nowhere"))
    assert "`nowhere`" in found.message


def test_unknown_step_suggests_a_close_id(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: start\n    say: Hi.\n    next: aftr\n" + CLOSE)
    assert "did you mean `after`?" in assert_found(
        run(tmp_path, text), "unknown-step", at(text, "aftr")).message


def test_unknown_exercise(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: ex\n    exercise: breath\n" + CLOSE)
    found = assert_found(run(tmp_path, text), "unknown-exercise", at(text, "breath\n"))
    assert "did you mean `breathe`?" in found.message


def test_script_without_an_end(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: loop\n    say: Again.\n    next: before\n")
    assert_found(run(tmp_path, text), "missing-end", at(text, "steps:"))


def test_every_choice_and_branch_arm_is_an_edge(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: pick\n    ask:\n      text: Which?\n      choices:\n"
             "        - label: A\n          goto: a\n        - label: B\n          goto: b\n"
             "  - id: a\n    branch:\n      - if: distress > 5\n        goto: after\n"
             "      - goto: b\n  - id: b\n    say: B.\n" + CLOSE)
    assert not errors(run(tmp_path, script_text(steps)))


# --- proof 2: a check-in first ----------------------------------------------------------------

PROMPTS = """\
prompts:
  - id: light
    level: 1
    topic: day
    text: Share what you had for lunch.
    smaller: Name a food.
  - id: deeper
    level: 2
    topic: day
    text: Share something that annoyed you.
    smaller: Share one small thing.
"""


@pytest.mark.parametrize("level", ["2", "current"])
def test_prompt_above_level_one_needs_a_checkin_first(tmp_path: Path, level: str) -> None:
    steps = f"  - id: share\n    prompt:\n      level: {level}\n" + BEFORE + CLOSE
    text = script_text(steps, level=2, extra=PROMPTS)
    found = assert_found(run(tmp_path, text), "no-checkin-before-prompt", at(text, "id: share"))
    assert "first step" in found.message


def test_level_one_prompt_may_come_first(tmp_path: Path) -> None:
    steps = "  - id: share\n    prompt:\n      level: 1\n" + BEFORE + CLOSE
    assert not errors(run(tmp_path, script_text(steps, level=2, extra=PROMPTS)))


def test_one_path_around_the_checkin_is_enough_to_fail(tmp_path: Path) -> None:
    steps = ("  - id: start\n    ask:\n      text: Ready?\n      choices:\n"
             "        - label: Check in\n        - label: Straight in\n          goto: share\n"
             + BEFORE + "  - id: share\n    prompt:\n      level: 2\n" + CLOSE)
    text = script_text(steps, level=2, extra=PROMPTS)
    found = assert_found(run(tmp_path, text), "no-checkin-before-prompt", at(text, "id: share"))
    assert "start → share" in found.message


ROLEPLAY = """\
  - id: scene
    roleplay:
      character: Robin
      practises: disclosing
      scene: Robin asks how your week was.
      turns:
        - says: How was your week?
          example: Busy, honestly.
          smaller: Good week?
"""


def test_roleplay_needs_a_checkin_first(tmp_path: Path) -> None:
    text = script_text(ROLEPLAY + CLOSE)
    assert_found(run(tmp_path, text), "no-checkin-before-roleplay", at(text, "id: scene"))
    assert not errors(run(tmp_path, script_text(BEFORE + ROLEPLAY + CLOSE)))


# --- proof 3: de-escalation -------------------------------------------------------------------


def test_checkin_without_any_calm(tmp_path: Path) -> None:
    text = script_text(BEFORE + CLOSE, calm="[]")
    found = assert_found(run(tmp_path, text), "no-calm", at(text, "checkin:"))
    assert "two rounds" in found.message and "gently" in found.message


def test_roleplay_without_any_calm(tmp_path: Path) -> None:
    own = "      calm: [breathe]\n"
    text = script_text(BEFORE + own + ROLEPLAY + CLOSE.replace("after\n  - id: done",
                                                               f"after\n{own}  - id: done"),
                       calm="[]")
    assert located(errors(run(tmp_path, text))) == {("no-calm", *at(text, "roleplay:"))}


@pytest.mark.parametrize(("calm", "code"), [
    ("journal", "calm-not-calming"),
    ("talk-kindly", "calm-not-calming"),  # a calming kind, but it asks for writing
    ("breathing", "calm-unknown"),
])
def test_calm_exercise_must_exist_and_calm(tmp_path: Path, calm: str, code: str) -> None:
    steps = f"  - id: before\n    checkin:\n      moment: before\n      calm: [{calm}]\n" + CLOSE
    text = script_text(steps)
    line, col = at(text, f"calm: [{calm}]")
    assert_found(run(tmp_path, text), code, (line, col + len("calm: [")))


def test_script_default_calm_is_reported_once(tmp_path: Path) -> None:
    text = script_text(BEFORE + ROLEPLAY + CLOSE, calm="[journal]")
    found = [f for f in run(tmp_path, text) if f.code == "calm-not-calming"]
    assert [(f.line, f.col) for f in found] == [at(text, "journal]")]


def test_hostile_first_turn(tmp_path: Path) -> None:
    text = script_text(BEFORE + ROLEPLAY.replace("smaller: Good week?",
                                                 "smaller: Good week?\n          hostile: true")
                       + CLOSE)
    assert_found(run(tmp_path, text), "hostile-first-turn", at(text, "hostile"))


# --- proof 4: texts ---------------------------------------------------------------------------


def say(text: str) -> str:
    return f"  - id: hello\n    say: {text}\n"


@pytest.mark.parametrize(("template", "code", "needle"), [
    ('"{{ name "', "template-syntax", '"{{'),
    ("\"{{ ''.__class__ }}\"", "template-unsafe", '"{{'),
    ('"{{ name|safe }}"', "template-unsafe", '"{{'),
    ('"{% include \'x\' %}"', "template-unsafe", '"{%'),
    ('"Hi {{ nickname }}"', "template-unknown-variable", '"Hi'),
    ('"{{ \'Breathe. \' * 500 }}"', "template-too-long", '"{{'),
    ('"{{ name + 1 }}"', "template-render", '"{{'),
])
def test_bad_templates(tmp_path: Path, template: str, code: str, needle: str) -> None:
    text = script_text(BEFORE + say(template) + CLOSE)
    assert_found(run(tmp_path, text), code, at(text, needle))


def test_unknown_variable_suggests_a_name_and_lists_the_built_ins(tmp_path: Path) -> None:
    text = script_text(BEFORE + say('"Hi {{ nam }}"') + CLOSE)
    message = assert_found(run(tmp_path, text), "template-unknown-variable",
                           at(text, '"Hi')).message
    assert "did you mean `name`?" in message and "exercises_done" in message


def test_unknown_tag_is_a_warning(tmp_path: Path) -> None:
    text = script_text(BEFORE + say('"Hi <blink>there</blink>"') + CLOSE)
    found = assert_found(run(tmp_path, text), "template-html", at(text, '"Hi'))
    assert found.severity is Severity.WARNING


def test_problem_on_a_later_line_of_a_literal_block(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: hello\n    say: |\n      One.\n      Two.\n"
                       "      Three {{ nick }}.\n" + CLOSE)
    assert_found(run(tmp_path, text), "template-unknown-variable", at(text, "Three"))


def test_problem_on_a_later_paragraph_of_a_folded_block(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: hello\n    say: >-\n      One\n      still one.\n\n"
                       "      Two {{ nick }}\n      more.\n" + CLOSE)
    assert_found(run(tmp_path, text), "template-unknown-variable", at(text, "Two"))


def test_variables_from_set_and_save_as_are_known(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: count\n    set:\n      tries: 1\n"
             "  - id: mood\n    ask:\n      text: Mood?\n      save_as: mood\n      choices:\n"
             "        - label: Fine\n          set:\n            fine: true\n"
             "        - label: Low\n          set:\n            fine: false\n"
             "  - id: word\n    ask:\n      text: A word?\n      free_text:\n"
             "        save_as: word\n        max_length: 40\n"
             + say('"{{ tries }} {{ mood }} {{ fine }} {{ word }}"') + CLOSE)
    assert not errors(run(tmp_path, script_text(steps)))


def test_variable_not_set_on_every_path_is_reported(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: word\n    ask:\n      text: A word?\n      free_text:\n"
             "        save_as: word\n      choices:\n        - label: Skip\n"
             + say('"You wrote {{ word }}"') + CLOSE)
    text = script_text(steps)
    found = assert_found(run(tmp_path, text), "template-unknown-variable", at(text, '"You'))
    assert "may not be set yet" in found.message
    fixed = text.replace("- label: Skip\n", "- label: Skip\n          set:\n            word: ''\n")
    assert not errors(run(tmp_path, fixed))


def test_variable_in_a_shared_prompt_must_be_set_wherever_it_is_drawn(tmp_path: Path) -> None:
    prompts = ("prompts:\n  - id: p\n    level: 1\n    topic: day\n"
               "    text: Tell {{ who }} about lunch.\n    smaller: Name a food.\n")
    late = (BEFORE + "  - id: share\n    prompt:\n      level: 1\n"
            "  - id: who\n    set:\n      who: a friend\n" + CLOSE)
    text = script_text(late, extra=prompts)
    assert_found(run(tmp_path, text), "template-unknown-variable", at(text, "Tell"))


def test_long_saved_answer_makes_a_text_too_long(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: word\n    ask:\n      text: Tell me.\n      free_text:\n"
             "        save_as: story\n        max_length: 4000\n"
             + say('"You said: {{ story }}. Thanks, {{ name }}, for telling me."') + CLOSE)
    text = script_text(steps)
    found = assert_found(run(tmp_path, text), "template-too-long", at(text, '"You'))
    assert "4,096" in found.message


def test_roleplay_lines_leave_room_for_their_frame(tmp_path: Path) -> None:
    line = "{{ last_connection }}" + "x" * 3_400  # 3,900 characters with a 500-character note
    text = script_text(BEFORE + ROLEPLAY.replace("How was your week?", f'"{line}"') + CLOSE)
    found = assert_found(run(tmp_path, text), "template-too-long", at(text, f'"{line}'))
    assert "frame" in found.message
    assert not errors(run(tmp_path, script_text(BEFORE + say(f'"{line}"') + CLOSE)))


@pytest.mark.parametrize(("condition", "code", "offset"), [
    ('"level >= = 2"', "condition-invalid", 10),
    ("level >> 2", "condition-invalid", 0),
    ("__import__('os')", "condition-invalid", 0),
    ("nickname == 'x'", "condition-unknown-variable", 0),
])
def test_bad_conditions(tmp_path: Path, condition: str, code: str, offset: int) -> None:
    steps = (BEFORE + f"  - id: fork\n    branch:\n      - if: {condition}\n        goto: after\n"
             "      - goto: after\n" + CLOSE)
    text = script_text(steps)
    line, col = at(text, condition)
    assert_found(run(tmp_path, text), code, (line, col + offset))


def test_label_limit_holds_even_beyond_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    text = script_text(BEFORE + "  - id: pick\n    ask:\n      text: Pick.\n      choices:\n"
                       "        - label: Go\n" + CLOSE)
    path.write_text(text, encoding="utf-8")
    script = load_script(path)
    ask = script.steps["pick"].ask
    assert ask is not None
    long_label = ask.choices[0].model_copy(update={"label": "L" * 41})  # skips validation
    pick = script.steps["pick"].model_copy(
        update={"ask": ask.model_copy(update={"choices": [long_label]})})
    script = dataclasses.replace(script, steps={**script.steps, "pick": pick})
    assert_found(check_script(script, Renderer({})), "button-too-long", at(text, "Go\n"))


def test_plain_text_shortcut_renders_like_the_renderer() -> None:
    renderer = Renderer({})
    for text in ("  Plain text, with “quotes” and émoji 🙂.  ", "Line one.\nLine two.\n"):
        assert _texts._is_plain(text)
        assert renderer.text(text, {}) == text.strip()
    assert not any(map(_texts._is_plain, ("{{ x }}", "a <b>b</b>", "a &amp; b")))


# --- smaller steps, pools and levels ----------------------------------------------------------


def test_prompt_without_a_smaller_step(tmp_path: Path) -> None:
    prompts = PROMPTS.replace("    smaller: Share one small thing.\n", "").replace(
        "topic: day\n    text: Share what", "topic: food\n    text: Share what")
    steps = BEFORE + "  - id: share\n    prompt:\n      level: 2\n" + CLOSE
    text = script_text(steps, level=2, extra=prompts)
    assert_found(run(tmp_path, text), "no-smaller-step", at(text, "id: deeper"))
    same_topic = PROMPTS.replace("    smaller: Share one small thing.\n", "")
    assert not errors(run(tmp_path, script_text(steps, level=2, extra=same_topic)))


def test_turn_without_smaller_or_example(tmp_path: Path) -> None:
    bare = ROLEPLAY.replace("          example: Busy, honestly.\n", "").replace(
        "          smaller: Good week?\n", "")
    text = script_text(BEFORE + bare + CLOSE)
    assert_found(run(tmp_path, text), "no-smaller-step", at(text, "says:"))


def test_prompt_step_that_can_never_draw(tmp_path: Path) -> None:
    steps = BEFORE + "  - id: share\n    prompt:\n      topic: work\n" + CLOSE
    text = script_text(steps, level=2, extra=PROMPTS)
    found = assert_found(run(tmp_path, text), "prompt-pool-empty", at(text, "topic: work"))
    assert "`work`" in found.message


@pytest.mark.parametrize(("steps", "needle"), [
    ("  - id: share\n    prompt:\n      level: 1\n", "level: 2"),  # the prompt `deeper`
    ("  - id: share\n    prompt:\n      level: 3\n", "level: 3"),
    (ROLEPLAY.replace("smaller: Good week?", "smaller: Good week?\n          level: 4"),
     "level: 4"),
])
def test_level_above_the_script(tmp_path: Path, steps: str, needle: str) -> None:
    text = script_text(BEFORE + steps + CLOSE, level=1, extra=PROMPTS)
    line, col = at(text, needle)
    assert_found(run(tmp_path, text), "level-above-script", (line, col + len("level: ")))


# --- warnings ---------------------------------------------------------------------------------


def test_unused_prompt_and_exercise(tmp_path: Path) -> None:
    steps = BEFORE + "  - id: share\n    prompt:\n      level: 1\n" + CLOSE
    text = script_text(steps, level=2, extra=PROMPTS)
    findings = run(tmp_path, text)
    assert_found(findings, "unused-prompt", at(text, "id: deeper"))
    assert_found(findings, "unused-exercise", at(text, "id: journal"))
    assert all(f.severity is Severity.WARNING for f in findings if f.code.startswith("unused"))


def test_level_jump(tmp_path: Path) -> None:
    steps = (BEFORE + "  - id: one\n    prompt:\n      level: 1\n"
             "  - id: pause\n    say: Next.\n  - id: three\n    prompt:\n      level: 3\n" + CLOSE)
    prompts = PROMPTS + ("  - id: deepest\n    level: 3\n    topic: day\n"
                         "    text: Share a fear.\n    smaller: Share a worry.\n")
    text = script_text(steps, level=3, extra=prompts)
    found = assert_found(run(tmp_path, text), "level-jump", at(text, "id: three"))
    assert found.severity is Severity.WARNING and "from 1" in found.message


def test_turn_without_example_and_end_without_after_checkin(tmp_path: Path) -> None:
    text = script_text(BEFORE + ROLEPLAY.replace("          example: Busy, honestly.\n", "")
                       + "  - id: done\n    end: Bye.\n")
    findings = run(tmp_path, text)
    assert not errors(findings)
    assert located(findings) >= {("turn-without-example", *at(text, "says:")),
                                 ("no-after-checkin", *at(text, "id: done"))}


# --- bad input never tracebacks ---------------------------------------------------------------


def test_python_object_tag_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "hacked"
    text = script_text(BEFORE + say(f'!!python/object/apply:os.system ["touch {marker}"]') + CLOSE)
    assert_found(run(tmp_path, text), "yaml-tag", at(text, "!!python"))
    assert not marker.exists()


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]"
              for p, c in zip("abcde", "bcdef", strict=True)]
    start = time.process_time()
    findings = run(tmp_path, "\n".join(lines) + "\n")
    assert time.process_time() - start < 2
    assert [f.code for f in findings] == ["yaml-too-many-nodes"]


def test_ten_megabyte_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"say: " + b"x" * 10_000_000)
    assert located(check_paths([path])) == {("yaml-too-large", 1, 1)}


@pytest.mark.parametrize(("content", "code", "where"), [
    (b"script:\n  id: a\x00b\n", "yaml-binary", (2, 8)),
    (b"script:\n  id: caf\xe9\n", "yaml-encoding", (2, 10)),
    (b"script:\n\tid: x\n", "yaml-syntax", (2, 1)),
])
def test_bytes_that_are_not_a_yaml_text(
    tmp_path: Path, content: bytes, code: str, where: tuple[int, int]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    assert located(check_paths([path])) == {(code, *where)}


def test_duplicate_key(tmp_path: Path) -> None:
    text = script_text(BEFORE + "  - id: hello\n    say: Hi.\n    say: Again.\n" + CLOSE)
    assert_found(run(tmp_path, text), "yaml-duplicate-key", at(text, "say: Again"))


def test_wrong_type(tmp_path: Path) -> None:
    text = script_text(BEFORE + CLOSE).replace("version: 1", 'version: "1"')
    found = assert_found(run(tmp_path, text), "schema-type", at(text, '"1"'))
    assert "whole number" in found.message


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = script_text(BEFORE + CLOSE).replace("title: T", "tittle: T")
    found = assert_found(run(tmp_path, text), "schema-unknown-key", at(text, "tittle"))
    assert "did you mean `title`?" in found.message


def test_missing_include(tmp_path: Path) -> None:
    text = script_text(BEFORE + CLOSE, extra="includes: [nothere.yaml]\n")
    assert_found(run(tmp_path, text), "include-missing", at(text, "nothere"))


def test_include_cycle(tmp_path: Path) -> None:
    library = ("script:\n  id: lib\n  title: L\n  version: 1\n  author: A\n  kind: library\n"
               "  level: 1\n  summary: S\nincludes: [s.yaml]\n")
    (tmp_path / "lib.yaml").write_text(library, encoding="utf-8")
    text = script_text(BEFORE + CLOSE, extra="includes: [lib.yaml]\n")
    findings = run(tmp_path, text)
    assert ("include-cycle", *at(library, "s.yaml")) in {
        (f.code, f.line, f.col) for f in findings if f.file.endswith("lib.yaml")}


def test_library_is_checked_for_its_texts(tmp_path: Path) -> None:
    library = ("script:\n  id: lib\n  title: L\n  version: 1\n  author: A\n  kind: library\n"
               "  level: 1\n  summary: S\nexercises:\n  - id: b\n    title: B\n"
               "    kind: breathing\n    pages:\n      - say: Hi {{ nick }}.\n")
    assert located(run(tmp_path, library, "lib.yaml")) == {
        ("template-unknown-variable", *at(library, "Hi"))}


def test_unexpected_failure_becomes_an_internal_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(checker, "check_script", broken)
    findings = run(tmp_path, script_text(BEFORE + CLOSE))
    assert [(f.code, f.line, f.col) for f in findings] == [("internal", 1, 1)]
    assert "boom" in findings[0].message


def test_directories_expand_and_findings_are_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(script_text(say('"{{ x }}"') + CLOSE), encoding="utf-8")
    (tmp_path / "a.yaml").write_text("script: [", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a script", encoding="utf-8")
    findings = check_paths([tmp_path])
    assert {Path(f.file).name for f in findings} == {"a.yaml", "b.yaml"}
    assert findings == sorted(findings, key=lambda f: (f.file, f.line, f.col, f.code, f.message))


def test_prompts_dir_also_checks_the_system_texts(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "texts.yaml").write_text("help: Hi {{ nobody }}\n", encoding="utf-8")
    findings = check_paths([], prompts_dir=tmp_path)
    assert any(f.code == "template-unknown-variable" for f in findings)
    assert any(f.code == "texts-missing" for f in findings)



def test_prompts_dir_also_checks_the_intent_book(tmp_path: Path) -> None:
    shipped = Path("prompts/en")
    (tmp_path / "en").mkdir()
    for name in ("texts.yaml", "crisis_rules.yaml"):
        (tmp_path / "en" / name).write_text((shipped / name).read_text(encoding="utf-8"),
                                            encoding="utf-8")
    book = (shipped / "intents.yaml").read_text(encoding="utf-8")
    missing = check_paths([], prompts_dir=tmp_path)
    assert [f.file for f in missing] == [str(tmp_path / "en" / "intents.yaml")], missing
    lines = book.splitlines(keepends=True)
    line = next(i for i, text in enumerate(lines) if text.lstrip().startswith("stop_requests"))
    lines.insert(line + 1, "  - \"Please Stop\"\n")
    (tmp_path / "en" / "intents.yaml").write_text("".join(lines), encoding="utf-8")
    found = [f for f in check_paths([], prompts_dir=tmp_path)
             if f.file.endswith("intents.yaml")]
    assert [(f.line, f.severity) for f in found] == [(line + 2, Severity.ERROR)], found
    assert "must be lower-case words" in found[0].message


# --- agreement with the engine ----------------------------------------------------------------


def test_the_graph_leads_where_the_engines_step_kinds_say() -> None:
    assert set(KINDS) == set(m.STEP_KINDS)
    for path in sorted(Path("scripts").glob("*.yaml")):
        script = load_script(path)
        graph = StepGraph(script)
        for step_id, step in script.steps.items():
            edges = kind_of(step).edges(step, script.following(step_id))
            assert graph.edges(step_id) == edges
            assert set(graph.successors(step_id)) == {e.target for e in edges} - {None}


def test_built_in_variables_are_the_engines() -> None:
    resources = Resources(scripts={}, texts=None, crisis=None, intents=None,  # type: ignore[arg-type]
                          policy=None)
    context = Context(resources, ClientState(client_id="c"), datetime.now(UTC), "Alex")
    assert set(context.variables()) == set(m.BUILTIN_VARIABLES)


def test_every_consent_a_script_may_require_is_one_the_engine_asks_for() -> None:
    assert {c.value for c in m.Consent} <= {o.value for o in Opt}


def test_two_thousand_steps_load_and_check_quickly(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(generate(2_000), encoding="utf-8")
    start = time.process_time()
    findings = check_paths([path])
    assert not errors(findings)
    assert time.process_time() - start < 3  # about 0.75 s here; see docs/performance.md


class _SayThatChecksIn(Say):
    """A `say` step made into a gate and drawn as one: a new kind, as the table sees it."""

    checks_in = True

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        return Drawing("a gate of its own", "hexagon", "checkin")


def test_the_proofs_and_the_drawings_read_the_table_of_step_kinds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = ("  - id: gate\n    say: Ready?\n  - id: share\n    prompt:\n      level: 2\n"
             + BEFORE + CLOSE)
    text = script_text(steps, level=2, extra=PROMPTS)
    assert_found(run(tmp_path, text), "no-checkin-before-prompt", at(text, "id: share"))
    monkeypatch.setitem(KINDS, "say", _SayThatChecksIn())  # type: ignore[index]
    assert "no-checkin-before-prompt" not in {f.code for f in run(tmp_path, text)}
    drawn = to_mermaid(load_script(tmp_path / "s.yaml"))
    assert 's0{{"gate<br/>a gate of its own"}}' in drawn and "class s0 checkin" in drawn


def test_scripts_and_the_configuration_explain_mistakes_alike(tmp_path: Path) -> None:
    """One translator of validation errors: the same mistake reads the same in both."""
    text = script_text(BEFORE + CLOSE).replace("level: 1", 'level: "1"').replace(
        "title: T", "tittle: T")
    script = {f.code: f.message for f in run(tmp_path, text)}
    config = tmp_path / "config.yaml"
    config.write_text("telegram:\n  poll_timeout: '30'\n  poll_timout: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config, {})
    said = [m.split(": ", 1)[1] for m in caught.value.messages]
    assert script["schema-type"] == "`script.level` must be a whole number"
    assert "`telegram.poll_timeout` must be a whole number" in said
    assert script["schema-unknown-key"] == (
        "unknown key `tittle` in `script`; did you mean `title`?")
    assert "unknown key `poll_timout` in `telegram`; did you mean `poll_timeout`?" in said
