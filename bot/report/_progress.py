"""The progress report of one client: the facts, charts and tables, before any HTML.

Only what the client shares appears. Without the sharing opt-in the report holds the
agreement (the contract) and the status only; with it, each chart and table is computed
from the sessions that share its item (see `_shares`), and the crisis events appear as
dates and kinds. Small steps are counted; failures never are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.engine import (
    HELPED,
    HISTORY_KINDS,
    OUTCOME_ITEMS,
    OUTCOME_RATED,
    OUTCOMES_SWITCHED,
    ClientState,
    current_terms,
)
from bot.report import _charts
from bot.report._agreement import HISTORY_COLUMNS, TERM_NAMES, history_rows, term_value
from bot.report._shares import SESSION_KINDS, SHARE_ITEMS, Session, shared_sessions, sharing
from bot.report._status import client_status, client_zone
from bot.script import LoadedScript
from bot.store import CaseloadEntry, LedgerRow

#: How the report names each kind of crisis the detector recognises.
CRISIS_KINDS = {
    "suicide": "suicide or self-harm",
    "partner_abuse": "abuse by a partner",
    "sexual_violence": "sexual violence",
    "child_at_risk": "a child at risk",
    "harm_to_others": "harm to others",
}
_RELIEF = {"yes": "yes", "a-little": "a little", "no": "not this time"}
_ITEM_WORDS = {
    "exercise": "exercise",
    "ratings": "ratings",
    "difficulty": "difficulty",
    "relief": "relief",
    "pacing": "pacing",
    "connections": "connections",
    "helped": "whether it helped",
    "comment": "their comment",
}
_HELPED_WORDS = {"yes": "It helped", "a-little": "A little", "not-really": "Not really"}
NOT_SHARED = "not shared"
#: The ledger rows the report reads: a read of these alone builds the same report.
REPORT_KINDS = SESSION_KINDS | {"level_changed", "crisis_language", *HISTORY_KINDS,
                                OUTCOMES_SWITCHED, OUTCOME_RATED}
#: How the report names each item of the weekly outcome check-in.
_OUTCOME_WORDS = {"closeness": "Felt close to someone", "saying_needs": "Easy to say what I need",
                  "reaching_out": "Willing to reach out for support"}


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of text under column headings."""

    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart and the table of its numbers.

    Attributes:
        key: A stable name (``distress``, ``difficulty``, ``level``, ``weekly``, ``helped``,
            ``outcomes``).
        title: Its heading.
        note: One sentence on how to read it.
        svg: The drawing, or None when no shared session has its numbers.
        table: The numbers drawn.
    """

    key: str
    title: str
    note: str
    svg: Markup | None
    table: Table


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """Everything the progress report shows.

    Attributes:
        client_id: The client.
        therapist: The client's therapist, if any.
        generated: When it was made, in the report's time zone.
        zone: The time zone of every date (the client's).
        status: The client's status.
        level: Their current level.
        max_level: Their contract's max level.
        sharing: Whether they share with their therapist at all.
        shared_sessions: How many sessions they share something of.
        highlights: Small steps, in words.
        charts: The charts, each with its table.
        sessions: The shared sessions in order, item by item.
        contract: The current agreement.
        contract_history: Each proposed change to it and what became of it.
        crisis: Crisis events as dates and kinds (empty without sharing).
    """

    client_id: str
    therapist: str | None
    generated: str
    zone: str
    status: str
    level: int
    max_level: int
    sharing: bool
    shared_sessions: int
    highlights: list[str]
    charts: list[Chart]
    sessions: Table
    contract: Table
    contract_history: Table
    crisis: Table


def progress_report(
    state: ClientState,
    ledger: Sequence[LedgerRow],
    *,
    now: datetime,
    default_zone: str,
    scripts: Mapping[str, LoadedScript],
    therapist: CaseloadEntry | None = None,
) -> ProgressReport:
    """Build the report of one client from their state and ledger.

    Args:
        state: The client's state.
        ledger: Their ledger rows, in order.
        now: When the report is made.
        default_zone: The practice's time zone, for clients who set none.
        scripts: The scripts by id, for their titles (one no longer loaded shows its id).
        therapist: The client's caseload entry.
    """
    zone = client_zone(state, default_zone)
    titles = {sid: script.meta.title for sid, script in scripts.items()}
    sessions = shared_sessions(state, ledger)
    shares = sharing(state)
    level_ups = _level_ups(ledger, zone) if shares else []
    return ProgressReport(
        client_id=state.client_id,
        therapist=therapist.therapist if therapist else None,
        generated=now.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        zone=str(zone),
        status=client_status(state),
        level=state.level,
        max_level=state.contract.max_level,
        sharing=shares,
        shared_sessions=len(sessions),
        highlights=_highlights(sessions, level_ups),
        charts=[
            _distress_chart(sessions, zone),
            _difficulty_chart(sessions, zone),
            _level_chart(sessions, zone, level_ups),
            _weekly_chart(sessions, zone),
            _helped_chart(sessions, titles),
            *_outcomes_chart(ledger, zone, shares),
        ],
        sessions=_session_table(sessions, zone, titles),
        contract=_contract(state, titles),
        contract_history=Table(HISTORY_COLUMNS, history_rows(ledger, zone, titles)),
        crisis=_crisis(ledger, zone) if shares else Table(("Date", "Kind"), []),
    )


# -- small steps -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _LevelUp:
    at: datetime
    day: str
    to_level: int


def _level_ups(ledger: Sequence[LedgerRow], zone: ZoneInfo) -> list[_LevelUp]:
    """Steps up a level the client agreed to (the engine never moves without a yes)."""
    ups = []
    for row in ledger:
        to_level = row.data.get("to_level")
        if row.kind == "level_changed" and isinstance(to_level, int):
            ups.append(_LevelUp(row.at, _day(row.at, zone), to_level))
    return ups


def _day(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).date().isoformat()


def _highlights(sessions: Sequence[Session], level_ups: Sequence[_LevelUp]) -> list[str]:
    def count(item: str, holds: Callable[[Session], bool]) -> int:
        return sum(1 for s in sessions if s.shares(item) and holds(s))

    lines = []
    practised = count("exercise", lambda s: True)
    if practised:
        lines.append(_plural(practised, "exercise") + " practised")
    smaller = sum(s.smaller_steps for s in sessions if s.shares("pacing"))
    if smaller:
        lines.append(_plural(smaller, "smaller step") + " chosen: setting their own pace")
    connections = sum(s.connections for s in sessions if s.shares("connections"))
    if connections:
        lines.append(_plural(connections, "moment") + " of connection noted")
    easier = count("difficulty", lambda s: s.expected is not None and s.actual is not None
                   and s.actual < s.expected)
    if easier:
        lines.append(f"easier than expected in {_plural(easier, 'session')}")
    calmer = count("ratings", lambda s: s.distress_before is not None
                   and s.distress_after is not None and s.distress_after < s.distress_before)
    if calmer:
        lines.append(f"calmer at the end than at the start in {_plural(calmer, 'session')}")
    lines.extend(f"moved up to level {up.to_level} on {up.day}" for up in level_ups)
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- charts ----------------------------------------------------------------------------------
def _labels(sessions: Sequence[Session], zone: ZoneInfo) -> list[str]:
    """Short dates under a chart (the table beside it has them in full)."""
    days = [s.id.astimezone(zone).date() for s in sessions]
    spans_years = len({d.year for d in days}) > 1
    return [f"{d.day} {d:%b %Y}" if spans_years else f"{d.day} {d:%b}" for d in days]


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def _distress_chart(sessions: Sequence[Session], zone: ZoneInfo) -> Chart:
    rated = [s for s in sessions if s.shares("ratings")
             and (s.distress_before is not None or s.distress_after is not None)]
    table = Table(("Date", "Before", "After"),
                  [(_day(s.id, zone), _number(s.distress_before), _number(s.distress_after))
                   for s in rated])
    title = "Distress before and after each session"
    svg = _charts.line(title, _labels(rated, zone), [
        ("Before", [s.distress_before for s in rated], {}),
        ("After", [s.distress_after for s in rated], {}),
    ], y_range=(0, 10)) if rated else None
    return Chart("distress", title, "0 is calm, 10 the most distress the client can imagine.",
                 svg, table)


def _difficulty_chart(sessions: Sequence[Session], zone: ZoneInfo) -> Chart:
    rated = [s for s in sessions if s.shares("difficulty")
             and (s.expected is not None or s.actual is not None)]
    table = Table(("Date", "Expected", "Actual"),
                  [(_day(s.id, zone), _number(s.expected), _number(s.actual)) for s in rated])
    title = "Expected and actual difficulty"
    svg = _charts.line(title, _labels(rated, zone), [
        ("Expected", [s.expected for s in rated], {}),
        ("Actual", [s.actual for s in rated], {}),
    ], y_range=(0, 10)) if rated else None
    return Chart("difficulty", title, "How hard the client expected it to be before, and how "
                 "hard it was after (0–10). Actual below expected is a small step too.",
                 svg, table)


def _level_chart(sessions: Sequence[Session], zone: ZoneInfo,
                 level_ups: Sequence[_LevelUp]) -> Chart:
    done = [s for s in sessions if s.shares("exercise") and s.level is not None]
    ups = list(level_ups)
    rows, marks = [], []
    for session in done:
        reached = [up for up in ups if up.at <= session.id]
        ups = [up for up in ups if up.at > session.id]
        marks.append(session.level if reached else None)
        smaller = str(session.smaller_steps) if session.shares("pacing") else NOT_SHARED
        rows.append((_day(session.id, zone), str(session.level), smaller,
                     f"up to {reached[-1].to_level}" if reached else ""))
    table = Table(("Date", "Level", "Smaller steps", "Level-up before it"), rows)
    title = "Level over time, with level-ups and smaller steps"
    svg = _charts.line(title, _labels(done, zone), [
        ("Level", [s.level for s in done], {}),
        ("Smaller steps chosen", [s.smaller_steps if s.shares("pacing") else None
                                  for s in done], {"stroke": False}),
        ("Level-up", marks, {"stroke": False, "dots_size": 7}),
    ], y_range=(0, 5)) if done else None
    return Chart("level", title, "The disclosure level of each session (1 light … 5 core); "
                 "a smaller step is the client choosing their pace.", svg, table)


def _weekly_chart(sessions: Sequence[Session], zone: ZoneInfo) -> Chart:
    def monday(at: datetime) -> date:
        local = at.astimezone(zone).date()
        return local - timedelta(days=local.weekday())

    weeks = Counter(monday(s.id) for s in sessions if s.shares("exercise"))
    rows = []
    if weeks:
        week, last = min(weeks), max(weeks)
        while week <= last:
            rows.append((week.isoformat(), str(weeks.get(week, 0))))
            week += timedelta(days=7)
    table = Table(("Week of", "Exercises practised"), rows)
    title = "Exercises practised per week"
    svg = _charts.bars(title, [r[0] for r in rows], [
        ("Exercises practised", [int(r[1]) for r in rows], {}),
    ]) if rows else None
    return Chart("weekly", title, "Weeks start on Monday.", svg, table)


def _helped_chart(sessions: Sequence[Session], titles: Mapping[str, str]) -> Chart:
    """Each exercise's answers to "Did this help?", from the sessions that share them."""
    answers: dict[str, Counter[str]] = {}
    for s in sessions:
        if s.shares("helped") and s.helped is not None:
            answers.setdefault(titles.get(s.script, s.script), Counter())[s.helped] += 1
    scripts = sorted(answers)
    table = Table(("Exercise", *_HELPED_WORDS.values()),
                  [(name, *(str(answers[name][h]) for h in HELPED)) for name in scripts])
    title = "Did it help? The client's answers, by exercise"
    svg = _charts.bars(title, scripts, [
        (words, [answers[name][h] for name in scripts], {})
        for h, words in _HELPED_WORDS.items()]) if scripts else None
    return Chart("helped", title, "Asked after each exercise, answered only if the client "
                 "chose to: feedback on the exercise, never a score of the client.", svg, table)


def _outcomes_chart(ledger: Sequence[LedgerRow], zone: ZoneInfo, shares: bool) -> list[Chart]:
    """The weekly check-in's answers per week (the week's last answer to each item), only
    while the client shares; no chart at all for a client whose check-in was never on."""
    if not any(r.kind == OUTCOMES_SWITCHED and r.data.get("on") is True for r in ledger):
        return []
    weeks: dict[date, dict[str, int]] = {}
    for row in ledger if shares else ():
        item, value = row.data.get("item"), row.data.get("value")
        if (row.kind == OUTCOME_RATED and item in OUTCOME_ITEMS and isinstance(value, int)
                and not isinstance(value, bool) and 0 <= value <= 10):
            local = row.at.astimezone(zone).date()
            weeks.setdefault(local - timedelta(days=local.weekday()), {})[str(item)] = value
    order = sorted(weeks)
    table = Table(("Week of", *(_OUTCOME_WORDS[i] for i in OUTCOME_ITEMS)),
                  [(week.isoformat(), *(_number(weeks[week].get(i)) for i in OUTCOME_ITEMS))
                   for week in order])
    title = "Weekly check-in: the client's answers (0–10)"
    svg = _charts.line(title, [w.isoformat() for w in order], [
        (_OUTCOME_WORDS[i], [weeks[w].get(i) for w in order], {}) for i in OUTCOME_ITEMS],
        y_range=(0, 10)) if order else None
    return [Chart("outcomes", title, "Optional, asked at most once a week: how the week felt "
                  "to the client, each question skippable; never a score of the client.",
                  svg, table)]


# -- tables ----------------------------------------------------------------------------------
def _session_table(sessions: Sequence[Session], zone: ZoneInfo,
                   titles: Mapping[str, str]) -> Table:
    def shown(session: Session, item: str, text: str) -> str:
        return text if session.shares(item) else NOT_SHARED

    rows = []
    for s in sessions:
        exercise = f"{titles.get(s.script, s.script)}, level {_number(s.level)}" + (
            ", finished" if s.completed else "")
        distress = " → ".join(_number(r) for r in s.ratings) or "none given"
        difficulty = f"expected {_number(s.expected) or '–'}, was {_number(s.actual) or '–'}"
        choices = ", ".join(part for part in (
            _plural(s.smaller_steps, "smaller step") if s.smaller_steps else "",
            _plural(s.skips, "skip") if s.skips else "") if part) or "went step by step"
        wrote = [f"“{t.text}”" + (" (edited by the client)" if t.edited else "")
                 for t in s.answers if s.shares(t.item)]
        rows.append((
            _day(s.id, zone),
            ", ".join([*(_ITEM_WORDS[item] for item in SHARE_ITEMS if s.shares(item)),
                       *(["what they wrote"] if wrote else [])]),
            shown(s, "exercise", exercise),
            shown(s, "ratings", distress),
            shown(s, "difficulty", difficulty),
            shown(s, "relief", _RELIEF.get(s.relief or "", "not asked")),
            shown(s, "pacing", choices),
            shown(s, "connections", str(s.connections)),
            shown(s, "helped", _HELPED_WORDS.get(s.helped or "", "not asked")),
            shown(s, "comment", f"“{s.comment}”" if s.comment is not None else ""),
            "; ".join(wrote) or NOT_SHARED,
        ))
    return Table(("Date", "Shared", "Exercise", "Distress (0–10)", "Difficulty", "Relief",
                  "Pacing choices", "Connections noted", "Did it help?", "Their comment",
                  "What they wrote"),
                 rows)


def _contract(state: ClientState, titles: Mapping[str, str]) -> Table:
    contract = state.contract
    rule = contract.advance
    pace = state.settings.pace or contract.pace
    rule_text = (f"after {_plural(rule.completed_at_level, 'finished exercise')} at a level "
                 f"with distress at most {rule.max_after_distress} at the end"
                 + (" and none harder than expected"
                    if rule.require_actual_not_harder_than_expected else "")
                 + "; always asked, never automatic")
    return Table(("Agreement", "Now"), [
        ("Current level", f"{state.level} of at most {contract.max_level}"),
        *((TERM_NAMES[term], term_value(term, value, titles))
          for term, value in current_terms(contract).items() if term != "max_level"),
        ("Pace", pace),
        ("Role-play turns", f"up to {contract.roleplay_turns} per scene"),
        ("High distress from", f"{contract.distress_threshold} of 10"),
        ("A step up is offered", rule_text),
    ])


def _crisis(ledger: Sequence[LedgerRow], zone: ZoneInfo) -> Table:
    rows = []
    for row in ledger:
        if row.kind == "crisis_language":
            kinds = row.data.get("kinds")
            names = [CRISIS_KINDS.get(str(k), str(k))
                     for k in (kinds if isinstance(kinds, list) else [])]
            rows.append((_day(row.at, zone), ", ".join(names) or "unspecified"))
    return Table(("Date", "Kind"), rows)
