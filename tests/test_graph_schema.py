"""Tests for the flow drawings (Mermaid, Graphviz DOT) and the editor JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

try:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None

from bot.check import DEESCALATION, to_dot, to_mermaid
from bot.script import json_schema, load_script, load_yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "scripts").glob("*.yaml"))
SCHEMA_FILE = ROOT / "schema" / "script.schema.json"

TRICKY = """\
script:
  id: tricky
  title: Tricky labels
  version: 1
  author: Tests
  level: 1
  summary: Labels full of characters that drawings must escape.
  calm: [breathe]
exercises:
  - id: breathe
    title: Breathe
    kind: breathing
    pages:
      - say: Breathe.
steps:
  - id: before
    checkin:
      moment: before
  - id: pick
    ask:
      text: Pick one.
      choices:
        - label: 'Say "hi" [now] <b>{ok}</b> #1 | a\\b'
          goto: fork
        - label: Done
          goto: done
  - id: fork
    branch:
      - if: distress >= 5 and name != "x"
        goto: done
      - goto: done
  - id: done
    end: Bye.
"""


def _balanced(dot: str) -> bool:
    """Whether braces and brackets balance outside quoted strings, and every quote closes."""
    depth, quoted, escaped = [], False, False
    pairs = {"}": "{", "]": "["}
    for char in dot:
        if quoted:
            quoted, escaped = (quoted, False) if escaped else (char != '"', char == "\\")
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth and not quoted


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    path = tmp_path / "tricky.yaml"
    path.write_text(TRICKY, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_drawings_show_every_step(path: Path) -> None:
    script = load_script(path)
    mermaid, dot = to_mermaid(script), to_dot(script)
    assert mermaid.startswith("flowchart TD\n")
    assert dot.startswith(f'digraph "{script.id}" {{') and _balanced(dot)
    for step_id in script.steps:
        assert f'"{step_id}<br/>' in mermaid and f'label="{step_id}\\n' in dot


@pytest.mark.parametrize("path", [p for p in SCRIPTS if "library" not in p.name],
                         ids=lambda p: p.name)
def test_checkins_are_hexagons_with_dotted_deescalation(path: Path) -> None:
    script = load_script(path)
    mermaid, dot = to_mermaid(script), to_dot(script)
    checkins = [s for s in script.steps.values() if s.checkin is not None]
    assert checkins
    assert mermaid.count('{{"') == len(checkins)
    assert dot.count("shape=hexagon") == len(checkins)
    calm = ", ".join(script.meta.calm)
    assert f"calm: {calm} ({DEESCALATION})" in mermaid
    assert "-.->" in mermaid and "style=dotted" in dot
    assert "classDef checkin" in mermaid and "classDef level1" in mermaid


def test_levels_and_choice_labels_are_shown(tricky: Path) -> None:
    mermaid = to_mermaid(load_script(tricky))
    assert "class s0 checkin" in mermaid
    assert '-->|"Done"|' in mermaid
    assert '(["done<br/>end"])' in mermaid


def test_labels_are_escaped(tricky: Path) -> None:
    script = load_script(tricky)
    mermaid, dot = to_mermaid(script), to_dot(script)
    label = next(line for line in mermaid.splitlines() if "Say" in line)
    inner = label.split('|"', 1)[1].rsplit('"|', 1)[0]
    assert not set(inner) & set('"[]<>{}|')
    assert "#quot;hi#quot;" in inner and "#lt;b#gt;" in inner and "#35;1" in inner
    assert 'label="Say \\"hi\\" [now] <b>{ok}</b> #1 | a\\\\b"' in dot
    assert 'label="distress >= 5 and name != \\"x\\""' in dot
    assert _balanced(dot)


def test_unknown_targets_are_drawn_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dangling.yaml"
    path.write_text(TRICKY.replace("goto: fork", "goto: nowhere"), encoding="utf-8")
    script = load_script(path)
    assert "nowhere<br/>unknown step" in to_mermaid(script)
    assert 'label="nowhere\\nunknown step"' in to_dot(script)


# --- the JSON Schema ---------------------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    """Regenerate with ``rehearse schema > schema/script.schema.json``."""
    expected = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected


def test_schema_is_for_editors() -> None:
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["$id"] and schema["title"] == "Rehearse script"
    assert {"script", "steps", "prompts", "exercises", "includes"} <= set(schema["properties"])
    arm = schema["$defs"]["BranchArm"]["properties"]
    assert "if" in arm and "if_" not in arm
    step = schema["$defs"]["Step"]
    assert step["additionalProperties"] is False
    assert {"required": ["checkin"]} in step["oneOf"]
    assert step["properties"]["next"]["description"]
    assert "``" not in json.dumps(schema)


def _resolve(schema: dict[str, Any], defs: dict[str, Any], value: object) -> dict[str, Any]:
    """The (sub)schema that applies to ``value``: ``$ref`` followed, ``anyOf`` chosen by type."""
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs, value)
    wanted = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else None
    options = [_resolve(option, defs, value) for option in schema.get("anyOf", [])]
    return next((option for option in options if option.get("type") == wanted), schema)


def _undeclared_keys(value: object, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Keys in ``value`` that the schema does not declare, with their paths."""
    schema = _resolve(schema, defs, value)
    if isinstance(value, list):
        return [k for item in value for k in _undeclared_keys(item, schema["items"], defs)]
    if not isinstance(value, dict) or "properties" not in schema:  # not a model (e.g. `set`)
        return []
    properties = schema["properties"]
    missing = [key for key in value if key not in properties]
    return missing + [k for key, item in value.items() if key in properties
                      for k in _undeclared_keys(item, properties[key], defs)]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_schema_accepts_the_shipped_scripts(path: Path) -> None:
    data = load_yaml(path).data
    schema = json_schema()
    if jsonschema is not None:  # not a dependency; a full validation when it is installed
        jsonschema.validate(data, schema)
    assert _undeclared_keys(data, schema, schema["$defs"]) == []


def test_schema_would_flag_a_misspelt_key(tricky: Path) -> None:
    data = load_yaml(tricky).data
    assert isinstance(data, dict)
    data["steps"][0]["checkin"]["momnet"] = "before"
    schema = json_schema()
    assert _undeclared_keys(data, schema, schema["$defs"]) == ["momnet"]
