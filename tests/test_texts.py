"""Tests for the shipped English system texts (prompts/en)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import region_lines
from bot.config import Config
from bot.engine import BUTTON_KEYS, PARTS, RISK_KINDS
from bot.render import (
    MAX_LABEL_LENGTH,
    MAX_MESSAGE_LENGTH,
    SYSTEM_TEXTS,
    Renderer,
    check_texts,
    load_texts,
    plain_text,
    visible_length,
)

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"
TEXTS, _ = load_texts(PROMPTS, "en")
MESSAGES = sorted(key for key in SYSTEM_TEXTS if not key.startswith("buttons."))
BUTTONS = sorted(key for key in SYSTEM_TEXTS if key.startswith("buttons."))

#: The keys the engine and adapters rely on, by prefix (the registry may only grow beyond these).
_REQUIRED: dict[str, list[str]] = {
    "consent": ["intro", "adult", "minor_refused", "free_text", "share", "reminders", "alert",
                "changed", "declined", "done"],
    "stop": ["confirm", "only_this", "withdraw"],
    "crisis": ["safety_plan", "resources", "are_you_safe", "not_safe", "safe", "hold",
               "welcome_back"],
    "checkin": ["question", "expected", "actual", "relief", "body_cues", "body_info", "high",
                "still_high", "thanks"],
    "roleplay": ["frame", "line", "hint", "example", "step_out"],
    "prompt": ["ack", "smaller", "skip_reason", "skip_ack", "none_left"],
    "pause": ["done", "resumed", "nothing"],
    "settings": ["menu", "ask_timezone", "ask_reminder_time", "saved"],
    "level": ["offer", "up", "stay"],
    "unexpected": ["text_at_buttons", "out_of_range", "too_long", "empty", "stale_button",
                   "non_text", "unknown_command"],
    "delete": ["confirm", "done", "cancelled"],
    "access": ["invite_needed", "bad_code", "too_many_codes", "welcome"],
    "session": ["cap", "day_cap", "closed"],
    "buttons": list(BUTTON_KEYS),  # every label the engine shows
    "mydata": ["intro"],
    "group": ["refusal"],
    "exercise": ["done"],
}  # fmt: skip
REQUIRED = [f"{prefix}.{name}" for prefix, names in _REQUIRED.items() for name in names] + [
    "help",
    "privacy",
    "progress",
    "reminder",
    "silence.followup",
    "welcome_back",
]
#: Phrases the crisis list must keep.
CORE_PHRASES = (
    "kill myself", "end it all", "kms", "unalive", "suicide", "self harm", "hurt myself",
    "want to die", "overdose", "better off without me", "don't want to be here anymore",
    "no reason to live", "can't go on",
)  # fmt: skip

#: Contexts at the edges: empty lists, zero counts, no reason, no name.
EDGE_CASES: list[tuple[str, dict[str, object]]] = [
    ("consent.done", {"opt_ins": []}),
    ("consent.done", {"opt_ins": ["reminders", "something_new"]}),
    ("checkin.body_info", {"cues": [], "under": False}),
    ("checkin.body_info", {"cues": ["Tight chest"], "under": False}),
    ("prompt.skip_ack", {"reason": None}),
    ("prompt.skip_ack", {"reason": "not_today"}),
    ("prompt.skip_ack", {"reason": "too_much"}),
    ("progress", dict.fromkeys(SYSTEM_TEXTS["progress"], 0)),
    ("settings.menu", {**SYSTEM_TEXTS["settings.menu"], "reminders": [], "pace": "steady"}),
    ("delete.done", {"deleted_messages": 0}),
    ("delete.done", {"deleted_messages": 1}),
    ("access.welcome", {"name": ""}),
    ("crisis.safety_plan", {"sections": []}),
    ("crisis.resources", {**SYSTEM_TEXTS["crisis.resources"], "plan": ""}),
    ("crisis.safe", {"paused": False, "has_plan": True}),
    ("safetyplan.part", {**SYSTEM_TEXTS["safetyplan.part"], "current": "", "suggested": ""}),
    ("safetyplan.overview", {"written": False, "shared": False, "suggested": False}),
    ("menu.needs_consent", {"missing": ["store_free_text"]}),
]

#: Things the bot must never say: it has no feelings or history and is not therapy.
BOT_AS_PERSON = re.compile(r"\b(we|we'll|we're|us|our|let's|together)\b", re.IGNORECASE)
FORBIDDEN = re.compile(
    r"\bI (feel|felt|remember|care|love|am proud|'m proud|am glad|'m glad|am happy|'m happy|"
    r"understand how you feel)\b|\bthis is therapy\b|\bI am your therapist\b|\bstreak",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer.from_dir(PROMPTS, "en")


def test_every_key_exists_and_no_stray_keys() -> None:
    assert set(REQUIRED) <= set(SYSTEM_TEXTS)
    assert set(TEXTS) == set(SYSTEM_TEXTS)


def test_rehearse_check_finds_nothing() -> None:
    assert [str(f) for f in check_texts(PROMPTS, "en")] == []


@pytest.mark.parametrize("key", MESSAGES)
def test_every_text_renders_with_sample_values_within_limits(renderer: Renderer, key: str) -> None:
    out = renderer.system(key, **SYSTEM_TEXTS[key])
    assert out.strip()
    assert visible_length(out) <= MAX_MESSAGE_LENGTH
    assert "{{" not in out
    assert "{%" not in out


#: A sentence run on into the next with no space ("…when you're ready.If that changes"): a
#: block tag at a line's end swallows the line break after it.
RUN_ON = re.compile(r"[a-z)][.!?:][A-Z•]")


@pytest.mark.parametrize("key", MESSAGES)
@pytest.mark.parametrize("flag", [True, False])
def test_no_sentence_runs_into_the_next(renderer: Renderer, key: str, flag: bool) -> None:
    """With every yes/no variable of the sample set one way, then the other."""
    context = {name: flag if isinstance(value, bool) else value
               for name, value in SYSTEM_TEXTS[key].items()}
    out = plain_text(renderer.system(key, **context))
    assert not RUN_ON.search(out), (key, RUN_ON.search(out), out)


@pytest.mark.parametrize(("key", "context"), EDGE_CASES)
def test_texts_render_at_the_edges(
    renderer: Renderer, key: str, context: dict[str, object]
) -> None:
    assert renderer.system(key, **context).strip()


@pytest.mark.parametrize("key", BUTTONS)
def test_button_labels_are_short_plain_text(renderer: Renderer, key: str) -> None:
    label = renderer.label(key, **SYSTEM_TEXTS[key])
    assert 0 < len(label) <= MAX_LABEL_LENGTH
    assert "\n" not in label
    # no tags or entities: the same either way
    assert renderer.system(key, **SYSTEM_TEXTS[key]) == label


@pytest.mark.parametrize("key", sorted(k for k in SYSTEM_TEXTS if k.startswith("commands.")))
def test_command_descriptions_are_short_plain_text(renderer: Renderer, key: str) -> None:
    text = renderer.system(key)
    assert text == plain_text(text)
    assert 0 < len(text) <= 60


def test_button_labels_are_distinct_where_shown_together(renderer: Renderer) -> None:
    groups = [
        ["buttons.skip_not_today", "buttons.skip_too_much", "buttons.skip_private",
         "buttons.skip_no_reason"],
        ["buttons.relief_yes", "buttons.relief_little", "buttons.relief_no"],
        ["buttons.only_this", "buttons.withdraw"],
        ["buttons.safe", "buttons.not_safe"],
        [key for key in BUTTONS if key.startswith("buttons.cue_")] + ["buttons.done"],
    ]  # fmt: skip
    for group in groups:
        labels = [renderer.label(key) for key in group]
        assert len(set(labels)) == len(labels), labels


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_html_tags_are_balanced_in_the_source(key: str) -> None:
    literal = re.sub(r"{%.*?%}|{{.*?}}", "", TEXTS[key], flags=re.DOTALL)
    stack: list[str] = []
    for closing, name in re.findall(r"<(/?)([a-z-]+)[^<>]*>", literal):
        if closing:
            assert stack and stack.pop() == name, f"{key}: unexpected </{name}>"
        else:
            stack.append(name)
    assert not stack, f"{key}: <{stack[-1]}> is not closed"


def test_consent_says_what_rehearse_is_not(renderer: Renderer) -> None:
    intro = plain_text(renderer.system("consent.intro", **SYSTEM_TEXTS["consent.intro"]))
    for promise in (
        "not therapy",
        "not a crisis service",
        "Nobody watches this chat live",
        "before your next session",
        "at most 730 days",
        "SQLite",
        "operator",
        "crisis language, in memory, even when it is not stored",
        "not end-to-end encrypted",
        "/stop",
        "18 or older",
    ):
        assert promise in intro, promise
    assert intro.rstrip().endswith("?")


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_no_text_claims_feelings_therapy_or_streaks(renderer: Renderer, key: str) -> None:
    sample = SYSTEM_TEXTS[key]
    out = (renderer.label(key, **sample) if key in BUTTONS
           else plain_text(renderer.system(key, **sample)))
    assert not FORBIDDEN.search(out), out
    # the bot's own voice is not a person beside the client: no "we", "us", "let's"
    assert not BOT_AS_PERSON.search(out), out
    for match in re.finditer(r"crisis service", out):
        assert out[: match.start()].endswith("not a "), out


def test_opt_in_questions_explain_and_point_to_settings(renderer: Renderer) -> None:
    for key in ("consent.free_text", "consent.share", "consent.reminders"):
        text = plain_text(renderer.system(key))
        assert "Optional" in text
        assert "/settings" in text


@pytest.mark.parametrize("region", sorted(Config().safety.regions))
def test_crisis_resources_show_every_line_and_the_emergency_number(
    renderer: Renderer, region: str
) -> None:
    lines = region_lines(Config())[region]
    out = plain_text(renderer.system(
        "crisis.resources", groups=lines.groups(RISK_KINDS), emergency=lines.emergency,
        noticed=False, paused=False, scene=False, imminent=False, plan="", alerted=False))
    assert out.startswith(f"If you or anyone else is in danger right now, call {lines.emergency}")
    for kind in RISK_KINDS:
        for line in lines.lines.get(kind) or lines.lines["suicide"]:
            assert line.name in out
            assert line.contact in out
            # each line on a line of its own, never run on after the sentence before it
            assert f"\n• {line.name}" in out


def test_not_safe_repeats_the_emergency_number(renderer: Renderer) -> None:
    for unsure in (False, True):
        out = plain_text(renderer.system("crisis.not_safe", emergency="999", unsure=unsure,
                                         scene=unsure, plan="", alert="off"))
        assert "Please call 999 now" in out
        assert "Your therapist is not notified automatically" in out
        # "not sure" says first that it is answered as not safe; stepping out comes next
        assert out.startswith("I wasn't sure I understood") is unsure
        assert ("Stepping out of the practice scene." in out) is unsure


def test_safety_plan_sample_has_every_part_in_order() -> None:
    sample = SYSTEM_TEXTS["crisis.safety_plan"]["sections"]
    assert isinstance(sample, list)
    assert [s["part"] for s in sample] == list(PARTS)


def test_every_part_has_its_own_question(renderer: Renderer) -> None:
    questions = set()
    for part in PARTS:
        out = plain_text(renderer.system("safetyplan.part", **{
            **SYSTEM_TEXTS["safetyplan.part"], "part": part, "current": "", "suggested": ""}))
        question = out.splitlines()[1]
        assert question.endswith(("?", ".")) and len(question) > 40, part
        questions.add(question)
    assert len(questions) == len(PARTS)


def test_a_plan_shows_its_parts_as_given(renderer: Renderer) -> None:
    out = plain_text(renderer.system("crisis.safety_plan", sections=[
        {"part": "internal_coping", "heading": "What I can do on my own",
         "text": "Paced breathing"}]))
    assert "1. What I can do on my own\nPaced breathing" in out
    assert "warning signs" not in out.lower()


def test_reminder_is_neutral_on_a_lock_screen(renderer: Renderer) -> None:
    text = plain_text(renderer.system("reminder")).lower()
    assert len(text) <= 80
    for word in ("therapy", "therapist", "crisis", "distress", "streak", "miss", "again"):
        assert word not in text


def test_help_lists_every_command(renderer: Renderer) -> None:
    text = renderer.system("help")
    commands = "stop pause resume smaller skip progress settings mydata delete privacy sos help"
    for command in commands.split():
        assert f"/{command}" in text
