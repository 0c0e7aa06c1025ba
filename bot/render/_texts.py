"""The system texts: every key the bot says something by, its sample values, and their files.

Every sentence the bot says on its own (consent, help, crisis, buttons …) is a template in
``prompts/<locale>/texts.yaml``, so that a practice can reword or translate them.
:data:`SYSTEM_TEXTS` lists every key with the sample context it is checked with;
:func:`check_texts` is ``rehearse check --prompts``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path

from bot.engine import BUTTON_KEYS, COMMANDS, RISK_KINDS
from bot.render._files import load_texts
from bot.render._html import plain_text
from bot.render._renderer import MAX_MESSAGE_LENGTH, Renderer, RenderError
from bot.script._findings import Finding, ScriptError, Severity
from bot.script._yaml import Mark

#: A contract's terms in plain words, as ``contract.term`` renders them (its longest values).
_AGREEMENT = [
    "Exercises may go up to level 4 of 5 (you move up a level only when you say yes)",
    "Topics left out: family, work, a-topic-id-of-forty-characters-for-length",
    "Exercises: First steps in sharing, Saying no kindly, Receiving closeness",
    "A session lasts up to 15 minutes",
    "Up to 3 sessions a day",
]
#: A client's plan as ``crisis.safety_plan`` shows it: each written part under its heading.
_PLAN_SECTIONS = [
    {"part": "warning_signs", "heading": "My warning signs",
     "text": "Pulling away from everyone, not sleeping, feeling like a burden"},
    {"part": "internal_coping", "heading": "What I can do on my own",
     "text": "Paced breathing for five minutes, a walk round the block, a shower"},
    {"part": "distraction", "heading": "People and places that distract me",
     "text": "The library café; my neighbour Ali"},
    {"part": "people_to_ask", "heading": "People I can ask for help",
     "text": "Sam (my sister), 0123 456 789"},
    {"part": "professionals", "heading": "Professionals and crisis lines",
     "text": "Dr Rivera, weekdays 9–17, 0123 000 000; out of hours: 988"},
    {"part": "safe_environment", "heading": "Making my surroundings safer",
     "text": "Give my spare medication to Sam to keep"},
]
#: The plan as the first crisis message carries it (rendered ``crisis.safety_plan``).
_PLAN_TEXT = "Your safety plan, in your own words: 1. My warning signs: not sleeping …"
_LINE_GROUPS = [
    {"kind": kind, "resources": [
        {"name": "988 Suicide & Crisis Lifeline", "contact": "Call or text 988", "note": "24/7"},
        {"name": "National Domestic Violence Hotline", "contact": "Call 1-800-799-7233",
         "note": ""},
    ]}
    for kind in RISK_KINDS
]
#: Longest description of a command in Telegram's menu.
MAX_COMMAND_DESCRIPTION = 256

#: Every system text: its key and the sample context it is checked with. The sample's keys
#: are exactly the variables the text may use; ``buttons.*`` keys are button labels.
SYSTEM_TEXTS: Mapping[str, Mapping[str, object]] = {
    "consent.intro": {"retention_days": 730, "answers_days": 90,
                      "therapist_delay": "before your next session", "crisis_hold_hours": 24},
    "consent.adult": {},
    "consent.minor_refused": {},
    "consent.guardian_needed": {},
    "consent.free_text": {},
    "consent.share": {},
    "consent.reminders": {},
    "consent.alert": {"alert_minutes": 30},
    "grounding.offer": {},
    "consent.changed": {},
    "consent.declined": {},
    "consent.done": {"opt_ins": ["store_free_text", "share_with_therapist", "reminders",
                                 "alert_therapist"]},
    "help": {},
    "privacy": {"retention_days": 730, "answers_days": 90},
    "stop.confirm": {},
    "stop.only_this": {},
    "stop.withdraw": {},
    "crisis.safety_plan": {"sections": _PLAN_SECTIONS},
    "crisis.resources": {"groups": _LINE_GROUPS, "emergency": "911", "noticed": True,
                         "scene": True,
                         "paused": True, "imminent": True, "plan": _PLAN_TEXT,
                         "alerted": True},
    "crisis.are_you_safe": {},
    "crisis.not_safe": {"emergency": "911", "unsure": True, "scene": True,
                        "plan": _PLAN_TEXT, "alert": "off"},
    "alert.therapist": {"name": "Alex", "client": "tg:123456", "when": "Thu 3 Dec 14:05 (UTC)",
                        "signal": "crisis", "kinds": ["suicide", "partner_abuse"],
                        "imminent": True, "answer": "not_safe", "follow_up": False},
    "crisis.safe": {"paused": True, "has_plan": False},
    "crisis.hold": {"until": "Thu 3 Dec, 14:05", "support_only": True},
    "crisis.practice_ended": {"ended": True, "until": "Thu 3 Dec, 14:05"},
    "crisis.support": {"groups": _LINE_GROUPS, "emergency": "911", "until": "Thu 3 Dec, 14:05"},
    "crisis.practice_waits": {"until": "Thu 3 Dec, 14:05"},
    "crisis.welcome_back": {},
    "checkin.question": {},
    "checkin.expected": {},
    "checkin.actual": {},
    "checkin.relief": {},
    "checkin.body_cues": {},
    "checkin.body_info": {"cues": ["Tight chest", "Numb", "Far away"], "under": True},
    "checkin.high": {"distress": 8},
    "checkin.under": {},
    "checkin.still_high": {"sustained": True},
    "checkin.thanks": {},
    "roleplay.frame": {
        "character": "Sam",
        "scene": "Sam, your partner, has just asked how your week really was.",
    },
    "roleplay.line": {"character": "Sam", "line": "You seem quiet tonight. What's on your mind?"},
    "roleplay.hint": {"hint": "Start with one true sentence about how you feel right now."},
    "roleplay.example": {"example": "I've been a bit low this week, and I'd like to tell you."},
    "roleplay.held": {},
    "roleplay.step_out": {"character": "Sam"},
    "roleplay.partner_screen": {},
    "roleplay.partner_unsafe": {"groups": _LINE_GROUPS, "emergency": "911",
                                "plan": _PLAN_TEXT},
    "roleplay.reframe": {
        "character": "Sam",
        "scene": "Sam, your partner, has just asked how your week really was.",
    },
    "prompt.ack": {},
    "prompt.smaller": {"text": "Name one small thing that made you smile this week."},
    "prompt.skip_reason": {},
    "prompt.skip_ack": {"reason": "private"},
    "prompt.none_left": {},
    "pause.done": {"character": "Sam"},
    "pause.resumed": {},
    "pause.nothing": {},
    "progress": {
        "exercises_done": 12,
        "smaller_steps": 4,
        "connections": 3,
        "level": 2,
        "max_level": 3,
        "prompts_shared": 9,
        "held": True,
        "held_until": "Thu 3 Dec, 14:05",
        "support_only": False,
    },
    "settings.menu": {
        "pace": "gentle",
        "store_free_text": False,
        "share_with_therapist": True,
        "alert_therapist": False,
        "reminders": ["Mon 19:00", "Thu 19:00"],
        "timezone": "Europe/London",
        "region": "United Kingdom",
        "agreement": _AGREEMENT,
        "proposal_waiting": True,
    },
    "settings.ask_timezone": {},
    "settings.ask_region": {"suggested": "Deutschland"},
    "settings.ask_reminder_time": {},
    "settings.saved": {},
    "settings.kept_answers": {},
    "settings.answers_deleted": {},
    "settings.answers_kept": {"answers_days": 90},
    "summary.session": {
        "title": "Sharing a small thing", "date": "Thu 3 Dec, 14:05", "completed": True,
        "level": 2, "distress_before": 5, "distress_after": 3, "expected": 6, "actual": 4,
        "relief": "a-little", "smaller_steps": 1, "skips": 1, "connections": 1,
        "helped": "a-little", "can_comment": True,
        "comment": ("It was easier than I expected to say it out loud. " * 5)[:239] + "…",
        "items": ["exercise", "ratings", "difficulty", "relief", "pacing", "connections",
                  "helped", "comment"],
        # As many answers as a summary shows, each as long as it shows them.
        "answers": [{"text": ("I would like to talk about the holidays with my sister. " * 5)[:239]
                     + "…", "edited": n % 2 == 0, "shared": n % 3 == 0} for n in range(8)],
        "shared": ["exercise", "ratings", "answer:say-it"], "sharing": True,
    },
    "summary.edit": {"number": 2, "chars": 4000, "text": (
        "I would like to talk about the holidays with my sister. " * 70)[:3499] + "…"},
    "summary.comment": {"chars": 500, "comment": (
        "It was easier than I expected to say it out loud. " * 10)[:500]},
    "summary.list": {"page": 1, "pages": 2, "sharing": True},
    "summary.none": {},
    "summary.closed": {},
    "level.offer": {"level": 1, "next_level": 2},
    "level.up": {"level": 2},
    "level.stay": {},
    "unexpected.text_at_buttons": {},
    "unexpected.out_of_range": {"low": 0, "high": 10},
    "unexpected.too_long": {"limit": 1000},
    "unexpected.empty": {},
    "unexpected.stale_button": {},
    "unexpected.non_text": {},
    "unexpected.unknown_command": {},
    "delete.confirm": {},
    "delete.done": {"deleted_messages": 14},
    "delete.cancelled": {},
    "mydata.intro": {},
    "access.invite_needed": {},
    "access.bad_code": {},
    "access.too_many_codes": {},
    "access.welcome": {"name": "Alex"},
    "group.refusal": {},
    "reminder": {},
    "silence.followup": {},
    "session.cap": {},
    "session.day_cap": {},
    "session.resting": {},
    "session.closed": {},
    "welcome_back": {},
    "exercise.done": {"title": "Sharing a small preference"},
    "exercise.none": {},
    "error.generic": {},
    "menu.choose": {},
    "menu.needs_consent": {"missing": ["core", "store_free_text", "share_with_therapist"]},
    "pacing.smallest": {},
    "pacing.enough": {"shared": 2},
    "pacing.enough_ack": {},
    "pacing.cannot_skip": {},
    "settings.bad_time": {},
    "settings.quiet_hours": {"start": "21:00", "end": "08:00"},
    "settings.bad_timezone": {},
    "stop.halted": {},
    "stop.request": {},
    "safetyplan.intro": {"shared": True, "suggested": True, "parts": 6},
    "safetyplan.part": {"part": "warning_signs", "heading": "My warning signs", "number": 1,
                        "total": 6, "current": "Not sleeping", "suggested": "Pulling away",
                        "chars": 400, "one_part": False},
    "safetyplan.too_long": {"chars": 400, "length": 512},
    "safetyplan.suggestion_changed": {},
    "safetyplan.overview": {"written": True, "shared": True, "suggested": True},
    "safetyplan.choose": {},
    "safetyplan.not_now": {},
    "safetyplan.done": {},
    "safetyplan.suggested": {},
    "contract.term": {"term": "assign", "value": ["First steps in sharing", "Saying no kindly"]},
    "contract.proposed": {"terms": _AGREEMENT, "later": True},
    "contract.agreed": {"terms": _AGREEMENT},
    "contract.talk_first": {},
    "contract.replaced": {},
    "contract.overview": {"terms": _AGREEMENT, "waiting": True, "history": [
        {"date": "Thu 3 Dec, 14:05", "status": status, "terms": _AGREEMENT[:2]}
        for status in ("agreed", "talk_first", "replaced", "waiting")]},
    "outcomes.item": {"item": "reaching_out", "number": 1, "of": 3},
    "outcomes.number": {},
    "outcomes.thanks": {},
    "outcomes.not_this_week": {},
    **{f"commands.{name}": {} for name in COMMANDS},
    **{f"buttons.{name}": {} for name in BUTTON_KEYS},
    # A typed answer's buttons name it by its place in the summary.
    **{f"buttons.summary_{act}_answer": {"number": 12} for act in ("share", "withdraw", "edit")},
}


def check_texts(
    prompts_dir: Path, locale: str = "en", *, max_length: int = MAX_MESSAGE_LENGTH
) -> list[Finding]:
    """Check a locale's system texts as ``rehearse check`` reports them.

    Every known key must be present (for a locale other than ``en`` a missing key is only a
    warning: the English text is used), use only its own variables, be safe and valid
    Telegram HTML, render with sample values within Telegram's limits, and button labels
    must be short.

    Returns:
        Findings located at ``file:line:col``, errors before warnings.
    """
    try:
        texts, source = load_texts(prompts_dir, locale)
    except ScriptError as exc:
        return exc.findings
    english: Collection[str] = ()
    if locale != "en":
        try:
            english = load_texts(prompts_dir, "en")[0]
        except ScriptError:
            english = ()
    lines = (prompts_dir / locale / "texts.yaml").read_text(encoding="utf-8-sig").splitlines()
    root = source.mark_for(())
    findings = [
        Finding.warning(root, "texts-missing",
                        f"`{key}` is not translated; the English text is used")
        if key in english
        else Finding.error(root, "texts-missing", f"`{key}` is missing; the bot needs it")
        for key in SYSTEM_TEXTS
        if key not in texts
    ]  # fmt: skip
    checker = Renderer({}, max_length=max_length)
    usable: dict[str, str] = {}
    for key, text in texts.items():
        mark = source.mark_for((key,), key=True)
        if key not in SYSTEM_TEXTS:
            close = difflib.get_close_matches(key, SYSTEM_TEXTS, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            message = f"unknown key `{key}` (the bot never uses it){hint}"
            findings.append(
                Finding.warning(mark, "texts-unknown-key", message)
            )
            continue
        problems = checker.check(text, SYSTEM_TEXTS[key])
        first = _first_text_line(source.mark_for((key,)), lines)
        for problem in problems:
            message = f"`{key}`: {problem.message}"
            at = Mark(mark.file, first + problem.line - 1, 1)
            findings.append(Finding.error(at, problem.code, message))
        if not problems:
            usable[key] = text
    renderer = Renderer(usable, max_length=max_length)
    for key in usable:
        mark = source.mark_for((key,), key=True)
        try:
            if key.startswith("buttons."):
                renderer.label(key, **SYSTEM_TEXTS[key])
                continue
            text = renderer.system(key, **SYSTEM_TEXTS[key])
            if not text:
                raise RenderError("the text renders empty; Telegram cannot send an empty message")
            if key.startswith("commands.") and (
                text != plain_text(text) or len(text) > MAX_COMMAND_DESCRIPTION
            ):
                raise RenderError(
                    "a command description is plain text (no tags, no &) of at most "
                    f"{MAX_COMMAND_DESCRIPTION} characters"
                )
        except RenderError as exc:
            message = f"`{key}` with sample values: {exc}"
            findings.append(Finding.error(mark, "texts-render", message))
    return sorted(findings, key=lambda f: (f.severity != Severity.ERROR, f.line, f.col))


def _first_text_line(value: Mark, lines: list[str]) -> int:
    """The file line of a text's first template line: the next one after a ``|`` or ``>``."""
    rest = lines[value.line - 1][value.col - 1 :] if value.line <= len(lines) else ""
    return value.line + 1 if rest[:1] in ("|", ">") else value.line
