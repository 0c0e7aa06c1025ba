"""A therapist's suggested safety plan as a small YAML file: written for ``$EDITOR``, read back.

``rehearse safety-plan CLIENT --edit`` writes the six parts (prefilled with the suggestion
waiting for the client, else the client's own plan) to an owner-only file, opens the editor
on it and reads it back; ``--from FILE`` (``-`` for standard input) reads the same form
without an editor, for scripts. Mistakes are reported as ``file:line:col: message``.
"""

from __future__ import annotations

import json

from bot.engine import PART_CHARS, PARTS, SafetyPlan, plan_from
from bot.script import Finding, LoadedYaml, ScriptError, load_yaml_text

#: What each part asks, in Stanley & Brown's (2012) words, for the comment above it.
_WHAT = {
    "warning_signs": "thoughts, images, mood, situations or behaviour that come before a crisis",
    "internal_coping": "what the client can do on their own, without contacting anyone",
    "distraction": "people and social settings that take the client's mind off things",
    "people_to_ask": "family members or friends the client can ask for help",
    "professionals": "professionals and agencies, crisis lines included, with numbers",
    "safe_environment": "making the surroundings safe (e.g. who keeps which means)",
}


def plan_yaml(client_id: str, plan: SafetyPlan) -> str:
    """The file a therapist edits: one key per part, each explained, in the plan's order."""
    lines = [
        f"# Suggested wording for the safety plan of {client_id} (Stanley & Brown's six parts).",
        "# The client sees it in /safetyplan and decides, part by part, whether to use it:",
        "# nothing here becomes their plan without their yes. Leave a part empty (\"\") to",
        f"# suggest nothing for it; each part holds up to {PART_CHARS} characters.",
    ]
    for part in PARTS:
        text = json.dumps(plan.part(part), ensure_ascii=False)  # a YAML string, quoted
        lines += ["", f"# {_WHAT[part]}", f"{part}: {text}"]
    return "\n".join(lines) + "\n"


def read_plan(text: str, file: str) -> SafetyPlan:
    """The suggested plan in ``text`` (the form `plan_yaml` writes).

    Raises:
        ScriptError: With ``file:line:col`` findings: not YAML, not a mapping of parts to
            text, an unknown part or a part too long.
    """
    source = load_yaml_text(text, file=file)
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        raise _error(source, (), "expected the parts of a safety plan, one `part: text` a line")
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            raise _error(source, (key,), f"`{key}` must be text (in quotes if in doubt)")
    try:
        return plan_from({str(k): v or "" for k, v in data.items()})
    except ValueError as exc:
        bad = next((k for k in data if str(k) in str(exc)), None)
        raise _error(source, () if bad is None else (bad,), str(exc)) from None


def _error(source: LoadedYaml, path: tuple[str, ...], message: str) -> ScriptError:
    return ScriptError([Finding.error(source.mark_for(path, key=bool(path)), "safety-plan",
                                      message)])
