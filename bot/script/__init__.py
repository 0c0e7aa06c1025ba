"""The script language: strict YAML, the schema, loading with includes, conditions.

What the engine does with a script is :mod:`bot.engine`; the checker's proofs about it, and
the drawings, are :mod:`bot.check`.

Typical use::

    from bot.script import load_script
    script = load_script(Path("scripts/first-steps.yaml"))
"""

from bot.script._expr import parse_condition
from bot.script._findings import Finding, ScriptError, Severity, findings_to_json
from bot.script._load import LoadedScript, Origin, load_script, script_files, script_folders
from bot.script._schema import json_schema
from bot.script._yaml import LoadedYaml, Mark, load_yaml, load_yaml_text

__all__ = [
    "Finding",
    "LoadedScript",
    "LoadedYaml",
    "Mark",
    "Origin",
    "ScriptError",
    "Severity",
    "findings_to_json",
    "json_schema",
    "load_script",
    "load_yaml",
    "load_yaml_text",
    "parse_condition",
    "script_files",
    "script_folders",
]
