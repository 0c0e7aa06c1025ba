"""Tests for the strict, safe YAML loader of scripts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.script._findings import Finding, ScriptError
from bot.script._yaml import LoadedYaml, Mark, load_yaml, load_yaml_text

NAME = "s.yaml"


def load(tmp_path: Path, content: str | bytes, **limits: int) -> LoadedYaml:
    """Write ``content`` to a real file and load it under the display name ``s.yaml``."""
    path = tmp_path / "script.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return load_yaml(path, display_name=NAME, **limits)


def errors(tmp_path: Path, content: str | bytes, **limits: int) -> list[Finding]:
    """Load ``content`` expecting failure; return the findings."""
    with pytest.raises(ScriptError) as caught:
        load(tmp_path, content, **limits)
    assert caught.value.findings, "a ScriptError must carry at least one finding"
    return caught.value.findings


def located(findings: list[Finding]) -> list[tuple[int, int, str]]:
    """Return ``(line, col, code)`` of each finding."""
    return [(f.line, f.col, f.code) for f in findings]


def the_error(tmp_path: Path, content: str | bytes, **limits: int) -> Finding:
    """Load ``content`` expecting exactly one finding; return it."""
    found = errors(tmp_path, content, **limits)
    assert len(found) == 1, found
    return found[0]


# --- size and bytes ---------------------------------------------------------------------------


def test_file_over_the_size_limit_is_rejected_at_1_1(tmp_path: Path) -> None:
    finding = the_error(tmp_path, "- 1\n" * 10, max_bytes=39)
    assert (finding.line, finding.col, finding.code) == (1, 1, "yaml-too-large")
    assert str(finding).startswith("s.yaml:1:1: error: ")


def test_file_exactly_at_the_size_limit_loads(tmp_path: Path) -> None:
    assert load(tmp_path, "- 1\n" * 10, max_bytes=40).data == [1] * 10


def test_ten_megabyte_file_is_rejected_quickly(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"key: value\n" * 1_000_000)
    start = time.process_time()
    with pytest.raises(ScriptError) as caught:
        load_yaml(path)
    assert time.process_time() - start < 1.0
    assert located(caught.value.findings) == [(1, 1, "yaml-too-large")]
    assert caught.value.findings[0].file == str(path)


def test_nul_byte_is_reported_where_it_is(tmp_path: Path) -> None:
    finding = the_error(tmp_path, b"a: 1\nb: x\x00y\n")
    assert (finding.line, finding.col, finding.code) == (2, 5, "yaml-binary")


@pytest.mark.parametrize("control", [b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f"])
def test_binary_control_bytes_are_rejected(tmp_path: Path, control: bytes) -> None:
    finding = the_error(tmp_path, b"a: " + control + b"\n")
    assert (finding.line, finding.col, finding.code) == (1, 4, "yaml-binary")


def test_c1_control_character_is_rejected(tmp_path: Path) -> None:
    finding = the_error(tmp_path, "a: 1\nb: é\u0085\n")
    assert (finding.line, finding.col, finding.code) == (2, 5, "yaml-binary")


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u202e", "right-to-left override"),
        ("\u202d", "left-to-right override"),
        ("\u202a", "left-to-right embedding"),
        ("\u202b", "right-to-left embedding"),
        ("\u202c", "pop directional formatting"),
        ("\u2066", "left-to-right isolate"),
        ("\u2067", "right-to-left isolate"),
        ("\u2068", "first strong isolate"),
        ("\u2069", "pop directional isolate"),
        ("\u200b", "zero-width space"),
        ("\u2060", "word joiner"),
        ("\ufeff", "zero-width no-break space"),
    ],
)
def test_characters_that_disguise_text_are_rejected_where_they_are(
    tmp_path: Path, char: str, name: str
) -> None:
    finding = the_error(tmp_path, f"a: 1\nsay: 'Tap {char}Yes'\n")
    assert (finding.line, finding.col, finding.code) == (2, 11, "yaml-disguise")
    assert f"U+{ord(char):04X} ({name})" in finding.message


@pytest.mark.parametrize(
    ("escape", "code"),
    [("\\u202E", "yaml-disguise"), ("\\u2066", "yaml-disguise"), ("\\x1b[2J", "yaml-binary"),
     ("\\0", "yaml-binary"), ("\\ud800", "yaml-binary"), ("\\x85", "yaml-binary")],
)
def test_escapes_cannot_write_what_the_file_may_not_hold(
    tmp_path: Path, escape: str, code: str
) -> None:
    findings = errors(tmp_path, f'a: 1\nsay: "Tap {escape}Yes"\n"k{escape}": 2\n')
    assert located(findings) == [(2, 6, code), (3, 1, code)]
    assert "escape" in findings[0].message


@pytest.mark.parametrize(
    "text",
    ["👩\u200d👩\u200d👧 family", "می\u200cخواهم", "שלום\u200f (1)", "abc\u200e"],
)
def test_joiners_and_direction_marks_stay_allowed(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, f"say: '{text}'\n").data == {"say": text}


def test_invalid_utf8_is_reported_at_the_first_bad_byte(tmp_path: Path) -> None:
    content = "title: Übung\nbody: ok\nnote: süß ".encode() + b"\xff\xfe rest\n"
    finding = the_error(tmp_path, content)
    assert (finding.line, finding.col, finding.code) == (3, 11, "yaml-encoding")
    assert "0xFF" in finding.message


def test_latin1_file_is_an_encoding_error(tmp_path: Path) -> None:
    finding = the_error(tmp_path, "a: 1\nb: café\n".encode("latin-1"))
    assert (finding.line, finding.col, finding.code) == (2, 7, "yaml-encoding")


def test_utf8_bom_is_accepted_and_columns_ignore_it(tmp_path: Path) -> None:
    loaded = load(tmp_path, b"\xef\xbb\xbfa: 1\nb: [x]\n")
    assert loaded.data == {"a": 1, "b": ["x"]}
    assert loaded.key_marks[("a",)] == Mark(NAME, 1, 1)


def test_windows_line_endings_count_one_line_each(tmp_path: Path) -> None:
    finding = the_error(tmp_path, b"a: 1\r\nb: 2\r\nc: \x00\r\n")
    assert (finding.line, finding.col) == (3, 4)
    loaded = load(tmp_path, b"a: 1\r\nb: 2\r\n")
    assert loaded.value_marks[("b",)] == Mark(NAME, 2, 4)


def test_unreadable_path_is_a_finding_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(ScriptError) as caught:
        load_yaml(tmp_path / "missing.yaml", display_name=NAME)
    assert located(caught.value.findings) == [(1, 1, "yaml-unreadable")]


# --- syntax ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "col"),
    [
        ("steps:\n\t- say: hi\n", 2, 1),
        ("steps:\n  - say: hi\n\t  - say: again\n", 3, 1),
        ("a:\tb\n", 1, 3),
    ],
)
def test_tabs_are_a_plain_syntax_error(tmp_path: Path, content: str, line: int, col: int) -> None:
    finding = the_error(tmp_path, content)
    assert (finding.line, finding.col, finding.code) == (line, col, "yaml-syntax")
    assert "tabs are not allowed for indentation; use spaces" in finding.message


@pytest.mark.parametrize(
    ("content", "line", "col", "words"),
    [
        ("a: b: c\n", 1, 5, "put the whole value in quotes"),
        ("a: 'open\nb: 2\n", 3, 1, "line 1"),
        ('a: "\\q"\n', 1, 6, "unknown escape \\q"),
        ("a:\n  b: 1\n c: 2\n", 3, 2, "indentation"),
        ("a: [1, 2\n", 2, 1, "']'"),
        ("a: @x\n", 1, 4, "cannot start with '@'"),
        ("key\nother: 1\n", 2, 6, "':'"),
        ("%YAML 9.9\n---\na: 1\n", 1, 1, "YAML syntax error"),
    ],
)
def test_syntax_errors_are_located_and_plain(
    tmp_path: Path, content: str, line: int, col: int, words: str
) -> None:
    finding = the_error(tmp_path, content)
    assert (finding.line, finding.col, finding.code) == (line, col, "yaml-syntax")
    assert words in finding.message
    assert "Traceback" not in finding.message


def test_multiple_documents_are_rejected_at_the_second(tmp_path: Path) -> None:
    finding = the_error(tmp_path, "a: 1\n---\nb: 2\n")
    assert (finding.line, finding.col, finding.code) == (2, 1, "yaml-multi-doc")


def test_single_explicit_document_is_fine(tmp_path: Path) -> None:
    assert load(tmp_path, "---\na: 1\n...\n").data == {"a": 1}


@pytest.mark.parametrize(
    ("content", "line"), [("", 1), ("\n\n", 1), ("# only a comment\n", 1), ("---\n", 2)]
)
def test_empty_file_gives_none(tmp_path: Path, content: str, line: int) -> None:
    loaded = load(tmp_path, content)
    assert loaded.data is None
    assert loaded.mark_for(("steps", 0)) == Mark(NAME, line, 1)


# --- tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "col"),
    [
        ("a: 1\nb: !!python/object/apply:os.system ['echo hi']\n", 2, 4),
        ("a: !!python/name:os.system\n", 1, 4),
        ("a: !custom x\n", 1, 4),
        ("a: !!int '3'\n", 1, 4),
        ("a: !!map {b: 1}\n", 1, 4),
        ("a: !!set {b}\n", 1, 4),
        ("a: !!binary aGk=\n", 1, 4),
        ("a: ! x\n", 1, 4),
        ("a: !!str [x]\n", 1, 4),
    ],
)
def test_explicit_tags_are_rejected(tmp_path: Path, content: str, line: int, col: int) -> None:
    finding = the_error(tmp_path, content)
    assert (finding.line, finding.col, finding.code) == (line, col, "yaml-tag")


def test_python_tags_execute_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    content = (
        f"a: !!python/object/apply:os.system ['touch {target}']\n"
        f"b: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
        f"['{target}']]\n"
        f"c: !!python/object/new:subprocess.check_call [['touch', '{target}']]\n"
    )
    found = errors(tmp_path, content)
    assert {f.code for f in found} == {"yaml-tag"}
    assert len(found) == 4
    assert not target.exists()


def test_every_bad_tag_is_reported(tmp_path: Path) -> None:
    found = errors(tmp_path, "a: !x 1\nb: ok\nc: !y 2\n")
    assert located(found) == [(1, 4, "yaml-tag"), (3, 4, "yaml-tag")]


def test_str_tag_is_allowed_and_keeps_text(tmp_path: Path) -> None:
    assert load(tmp_path, "a: !!str 12\nb: !!str true\n").data == {"a": "12", "b": "true"}


# --- aliases, size and depth ------------------------------------------------------------------


BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def test_billion_laughs_is_rejected_fast(tmp_path: Path) -> None:
    start = time.process_time()
    found = errors(tmp_path, BILLION_LAUGHS)
    assert time.process_time() - start < 0.5
    assert located(found) == [(7, 28, "yaml-aliases")]


def test_doubling_bomb_within_the_alias_limit_is_rejected_fast(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x]", *(f"a{i + 1}: &a{i + 1} [*a{i}, *a{i}]" for i in range(24))]
    start = time.process_time()
    found = errors(tmp_path, "\n".join(lines))
    assert time.process_time() - start < 0.5
    assert located(found) == [(1, 1, "yaml-too-many-nodes")]


def test_aliases_within_limits_are_expanded_with_marks(tmp_path: Path) -> None:
    loaded = load(tmp_path, "base: &b {x: 1}\ncopy: *b\n")
    assert loaded.data == {"base": {"x": 1}, "copy": {"x": 1}}
    assert loaded.value_marks[("copy",)] == Mark(NAME, 2, 7)
    assert loaded.value_marks[("copy", "x")] == Mark(NAME, 1, 14)


def test_alias_limit_is_configurable(tmp_path: Path) -> None:
    content = "a: &a 1\nb: [*a, *a, *a]\n"
    assert located(errors(tmp_path, content, max_aliases=2)) == [(2, 13, "yaml-aliases")]
    assert load(tmp_path, content, max_aliases=3).data == {"a": 1, "b": [1, 1, 1]}


def test_recursive_alias_is_rejected(tmp_path: Path) -> None:
    assert located(errors(tmp_path, "a: &x [1, *x]\n")) == [(1, 11, "yaml-aliases")]


def test_undefined_and_duplicate_anchors_are_syntax_errors(tmp_path: Path) -> None:
    assert located(errors(tmp_path, "a: *nope\n")) == [(1, 4, "yaml-syntax")]
    found = the_error(tmp_path, "a: &x 1\nb: &x 2\n")
    assert (found.line, found.col, found.code) == (2, 4, "yaml-syntax")
    assert "line 1" in found.message


def test_too_many_nodes(tmp_path: Path) -> None:
    content = "[" + ", ".join(["1"] * 20) + "]\n"
    assert located(errors(tmp_path, content, max_nodes=10)) == [(1, 29, "yaml-too-many-nodes")]
    assert load(tmp_path, content, max_nodes=21).data == [1] * 20


def test_too_deep(tmp_path: Path) -> None:
    assert located(errors(tmp_path, "[" * 5 + "]" * 5, max_depth=3)) == [(1, 5, "yaml-too-deep")]
    assert load(tmp_path, "[" * 4 + "]" * 4, max_depth=3).data == [[[[]]]]


def test_aliases_count_towards_depth(tmp_path: Path) -> None:
    content = "a: &a [[x]]\nb: [[*a]]\n"
    assert located(errors(tmp_path, content, max_depth=3)) == [(1, 8, "yaml-too-deep")]


def test_huge_nesting_does_not_raise_recursion_error(tmp_path: Path) -> None:
    found = errors(tmp_path, "[" * 50_000, max_depth=100_000)
    assert {f.code for f in found} <= {"yaml-too-deep", "yaml-syntax"}


def test_merge_keys_are_rejected(tmp_path: Path) -> None:
    found = errors(tmp_path, "base: &b {x: 1}\ncopy:\n  <<: *b\n  y: 2\n")
    assert located(found) == [(3, 3, "yaml-merge")]
    assert "merge keys are not supported; repeat the keys" in found[0].message.replace(" (<<)", "")


def test_quoted_merge_key_is_just_text(tmp_path: Path) -> None:
    assert load(tmp_path, "'<<': 1\n").data == {"<<": 1}


# --- keys -----------------------------------------------------------------------------------


def test_duplicate_key_is_reported_at_the_second_occurrence(tmp_path: Path) -> None:
    content = "title: A\nsteps:\n  - say: hi\n    say: again\ntitle: B\n"
    found = errors(tmp_path, content)
    assert located(found) == [(4, 5, "yaml-duplicate-key"), (5, 1, "yaml-duplicate-key")]
    assert '"say"' in found[0].message and "line 3" in found[0].message
    assert '"title"' in found[1].message and "line 1" in found[1].message


def test_keys_that_read_the_same_as_text_are_duplicates(tmp_path: Path) -> None:
    assert located(errors(tmp_path, "1: a\n'1': b\n")) == [(2, 1, "yaml-duplicate-key")]


def test_non_scalar_keys_are_rejected(tmp_path: Path) -> None:
    found = errors(tmp_path, "[a, b]: 1\n? {c: 1}\n: 2\n")
    assert located(found) == [(1, 1, "yaml-key-type"), (2, 3, "yaml-key-type")]


def test_keys_are_always_text(tmp_path: Path) -> None:
    data = load(tmp_path, "1: a\nyes: b\ntrue: c\n~: d\n1.5: e\n").data
    assert data == {"1": "a", "yes": "b", "true": "c", "~": "d", "1.5": "e"}


# --- scalars --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "yes", "no", "on", "off", "y", "n", "Yes", "NO", "12:30", "1_000", "0x1F", "0o17",
        "0b101", ".inf", "-.inf", ".nan", "2024-01-01", "2024-01-01T10:00:00", "007", "+-1",
        "1e5", "1.2.3", "hello world", "=", "<<",
    ],
)  # fmt: skip
def test_plain_scalars_that_stay_text(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, f"v: {text}\n").data == {"v": text}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None), ("~", None), ("null", None), ("Null", None), ("NULL", None),
        ("true", True), ("True", True), ("TRUE", True),
        ("false", False), ("False", False), ("FALSE", False),
        ("0", 0), ("12", 12), ("-3", -3), ("+4", 4),
        ("1.5", 1.5), ("-0.25", -0.25), ("1.", 1.0), (".5", 0.5), ("1.5e3", 1500.0),
        ("2.5E-1", 0.25),
    ],
)  # fmt: skip
def test_plain_scalars_that_resolve(tmp_path: Path, text: str, value: object) -> None:
    data = load(tmp_path, f"v: {text}\n").data
    assert data == {"v": value}
    assert isinstance(data, dict)
    assert type(data["v"]) is type(value)


def test_huge_numbers_never_crash(tmp_path: Path) -> None:
    digits = "9" * 5000
    assert load(tmp_path, f"a: {digits}\nb: 1.0e999\n").data == {"a": digits, "b": "1.0e999"}


@pytest.mark.parametrize(
    "content",
    ["v: '12'\n", 'v: "true"\n', "v: 'null'\n", "v: |\n  12\n", "v: >-\n  12\n"],
)
def test_quoted_and_block_scalars_are_always_text(tmp_path: Path, content: str) -> None:
    data = load(tmp_path, content).data
    assert isinstance(data, dict)
    value = data["v"]
    assert isinstance(value, str)
    assert value.strip() in {"12", "true", "null"}


def test_empty_quoted_value_is_empty_text(tmp_path: Path) -> None:
    assert load(tmp_path, "a: ''\nb:\n").data == {"a": "", "b": None}


# --- marks ----------------------------------------------------------------------------------


SCRIPT = """\
title: Practice
steps:
  - say: Hello
  - ask:
      text: "Ready?"
      choices:
        - label: Yes
          next: end
        - {label: Not yet, next: 0}
"""


def test_value_and_key_marks_of_nested_paths(tmp_path: Path) -> None:
    loaded = load(tmp_path, SCRIPT)
    choice = ("steps", 1, "ask", "choices", 0, "label")
    assert loaded.data == {
        "title": "Practice",
        "steps": [
            {"say": "Hello"},
            {
                "ask": {
                    "text": "Ready?",
                    "choices": [{"label": "Yes", "next": "end"}, {"label": "Not yet", "next": 0}],
                }
            },
        ],
    }
    assert loaded.value_marks[()] == Mark(NAME, 1, 1)
    assert loaded.key_marks[("title",)] == Mark(NAME, 1, 1)
    assert loaded.value_marks[("title",)] == Mark(NAME, 1, 8)
    assert loaded.value_marks[("steps",)] == Mark(NAME, 3, 3)
    assert loaded.value_marks[("steps", 1)] == Mark(NAME, 4, 5)
    assert loaded.key_marks[("steps", 1, "ask", "text")] == Mark(NAME, 5, 7)
    assert loaded.value_marks[("steps", 1, "ask", "text")] == Mark(NAME, 5, 13)
    assert loaded.key_marks[choice] == Mark(NAME, 7, 11)
    assert loaded.value_marks[choice] == Mark(NAME, 7, 18)
    assert loaded.value_marks[("steps", 1, "ask", "choices", 1)] == Mark(NAME, 9, 11)
    assert loaded.key_marks[("steps", 1, "ask", "choices", 1, "next")] == Mark(NAME, 9, 28)
    assert loaded.value_marks[("steps", 1, "ask", "choices", 1, "next")] == Mark(NAME, 9, 34)


def test_mark_for_prefers_exact_then_ancestor_then_origin(tmp_path: Path) -> None:
    loaded = load(tmp_path, SCRIPT)
    label = ("steps", 1, "ask", "choices", 0, "label")
    assert loaded.mark_for(label) == Mark(NAME, 7, 18)
    assert loaded.mark_for(label, key=True) == Mark(NAME, 7, 11)
    assert loaded.mark_for(("steps", 0, "missing")) == Mark(NAME, 3, 5)
    assert loaded.mark_for(("steps", 0, "missing"), key=True) == Mark(NAME, 3, 5)
    assert loaded.mark_for(("nowhere", 5)) == Mark(NAME, 1, 1)
    assert LoadedYaml(None, {}, {}, NAME).mark_for(("x",)) == Mark(NAME, 1, 1)


def test_load_yaml_text_matches_load_yaml(tmp_path: Path) -> None:
    from_text = load_yaml_text(SCRIPT, file=NAME)
    from_file = load(tmp_path, SCRIPT)
    assert from_text == from_file
    assert load_yaml_text(SCRIPT.encode(), file=NAME) == from_file


def test_text_with_lone_surrogate_is_an_encoding_error() -> None:
    with pytest.raises(ScriptError) as caught:
        load_yaml_text("a: b\nc: \ud800\n", file=NAME)
    assert located(caught.value.findings) == [(2, 4, "yaml-encoding")]


def test_display_name_defaults_to_the_path(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: [\n", encoding="utf-8")
    with pytest.raises(ScriptError) as caught:
        load_yaml(path)
    assert str(caught.value).startswith(f"{path}:2:1: error: ")


# --- robustness -----------------------------------------------------------------------------


YAMLISH = st.text(
    alphabet=st.sampled_from(list("ab1 :-\n\t'\"[]{},&*!|>#?%@`~.\\<\x00\x85\ufeff\u2028é")),
    max_size=80,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), YAMLISH))
def test_any_input_returns_or_raises_script_error(content: str | bytes) -> None:
    try:
        loaded = load_yaml_text(content, file=NAME, max_aliases=3, max_nodes=50, max_depth=5)
    except ScriptError as exc:
        assert exc.findings
        assert all(f.file == NAME and f.line >= 1 and f.col >= 1 for f in exc.findings)
    else:
        assert () in loaded.value_marks
