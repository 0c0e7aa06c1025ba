"""The script language: load, validate, check, graph and schema.

Typical use::

    from bot.script import load_script, check_paths
    script = load_script(Path("scripts/first-steps.yaml"))
"""

from bot.script._check import check_paths, check_script
from bot.script._expr import parse_condition
from bot.script._findings import Finding, ScriptError, Severity, findings_to_json
from bot.script._graph import StepGraph, to_dot, to_mermaid
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
    "StepGraph",
    "check_paths",
    "check_script",
    "findings_to_json",
    "json_schema",
    "load_script",
    "load_yaml",
    "load_yaml_text",
    "parse_condition",
    "script_files",
    "script_folders",
    "to_dot",
    "to_mermaid",
]
