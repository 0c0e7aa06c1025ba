"""The JSON Schema of script files, for editors (VS Code's YAML extension and others).

The schema is generated from the pydantic models in :mod:`bot.script._model`, so the editor
and the loader never disagree. The committed copy ``schema/script.schema.json`` is refreshed
with ``rehearse schema > schema/script.schema.json``; a test fails when it drifts.
"""

from __future__ import annotations

import re
from typing import Any

from bot.script import _model as m

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:rehearse:script.schema.json"
_RST_LITERAL = re.compile(r"``([^`]+)``")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a script file.

    Keys appear as they are written in YAML (``if``, not ``if_``), descriptions are kept
    (with reStructuredText literals turned into Markdown ones for editor tooltips), and a
    step must have exactly one kind key.
    """
    generated = _markdown(m.ScriptFile.model_json_schema(by_alias=True))
    assert isinstance(generated, dict)
    generated["$defs"]["Step"]["oneOf"] = [{"required": [kind]} for kind in m.STEP_KINDS]
    generated.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "Rehearse script", **generated}


def _markdown(node: object) -> object:
    """Return ``node`` with every ``description`` turned from reST literals into Markdown."""
    if isinstance(node, dict):
        return {
            key: _RST_LITERAL.sub(r"`\1`", value)
            if key == "description" and isinstance(value, str)
            else _markdown(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_markdown(item) for item in node]
    return node
