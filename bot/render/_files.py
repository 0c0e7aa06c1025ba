"""The texts files: ``prompts/<locale>/texts.yaml``, a mapping of keys to template texts."""

from __future__ import annotations

from pathlib import Path

from bot.script._findings import Finding, ScriptError
from bot.script._yaml import LoadedYaml, load_yaml


def load_texts(prompts_dir: Path, locale: str) -> tuple[dict[str, str], LoadedYaml]:
    """Load ``prompts_dir/<locale>/texts.yaml``: a mapping of keys to template texts.

    Returns:
        The texts by key, and the loaded YAML (for locating problems).

    Raises:
        ScriptError: If the file cannot be read or is not a mapping of keys to texts; the
            findings are located at ``file:line:col``.
    """
    source = load_yaml(prompts_dir / locale / "texts.yaml")
    if not isinstance(source.data, dict):
        mark = source.mark_for(())
        message = "the texts file must be a mapping of keys to texts (`key: |` blocks)"
        raise ScriptError([Finding.error(mark, "texts-structure", message)])
    texts: dict[str, str] = {}
    findings: list[Finding] = []
    for key, value in source.data.items():
        if isinstance(value, str):
            texts[key] = value
            continue
        mark = source.mark_for((key,))
        message = f"`{key}` must be text; put it in quotes or use a `|` block"
        findings.append(Finding.error(mark, "texts-type", message))
    if findings:
        raise ScriptError(findings)
    return texts, source
