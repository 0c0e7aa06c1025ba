"""The progress report and the caseload overview, from ledgers the real engine wrote.

Every client here practised through the real service and store (tests/support/practice.py);
the share rows are committed as the in-chat summary flow will commit them. What a report
shows is read back from its HTML, the way a therapist would see it.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from html.parser import HTMLParser

from bot.app import Loaded
from bot.engine import Command, Part, Start, Text
from bot.report import (
    CASELOAD_KINDS,
    CRISIS_FLAG,
    RATING_FLAG,
    REPORT_KINDS,
    SHARE_ITEMS,
    ProgressReport,
    caseload_line,
    caseload_messages,
    caseload_table,
    progress_report,
    render_report,
)
from bot.service import OPERATOR, ClientRecord, Rehearsal
from bot.store import Commit, LedgerRecord, SqliteStore
from tests.conftest import Clock
from tests.support.engine_driver import CRISIS, ServiceClient
from tests.support.practice import consent_sharing, practise, share

LEE = "tg:9000"


def report_of(record: ClientRecord, loaded: Loaded, clock: Clock) -> ProgressReport:
    return progress_report(record.state, record.ledger, now=clock.now, default_zone="UTC",
                           scripts=loaded.scripts, therapist=record.therapist)


def chart(report: ProgressReport, key: str) -> list[tuple[str, ...]]:
    [found] = [c for c in report.charts if c.key == key]
    return list(found.table.rows)


class _Tags(HTMLParser):
    """Every start tag and every attribute name in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def tags_of(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


async def test_only_what_was_shared_appears_and_every_number_comes_from_it(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await store.assign_therapist(ada.client_id, LEE, clock.now)
    sessions = []
    for before, after, expected, actual, gap in ((5, 2, 6, 4, 1), (6, 3, 5, 5, 1),
                                                 (4, 1, 6, 2, 15), (3, 0, 4, 1, 1)):
        sessions.append(await practise(ada, before=before, after=after, expected=expected,
                                       actual=actual, smaller=1))
        clock.advance(days=gap)
    one, two, three, four = sessions
    await share(store, ada.client_id, one, SHARE_ITEMS, clock.now)
    await share(store, ada.client_id, two, ["exercise"], clock.now)
    # three: kept private. four: its ratings shared, then withdrawn.
    await share(store, ada.client_id, four, ["ratings", "exercise"], clock.now)
    await share(store, ada.client_id, four, ["ratings"], clock.advance(hours=1),
                withdraw=True)
    # Rows the flow will never write, or that name no session, change nothing.
    await share(store, ada.client_id, three + timedelta(seconds=1), SHARE_ITEMS, clock.now)
    await share(store, ada.client_id, three, ["their typed answers", "everything"], clock.now)

    report = report_of(await service.read_record(ada.client_id, LEE), loaded, clock)
    day = [s.date().isoformat() for s in sessions]
    assert report.sharing and report.shared_sessions == 3  # one, two and four
    assert chart(report, "distress") == [(day[0], "5", "2")]
    assert chart(report, "difficulty") == [(day[0], "6", "4")]
    assert [row[:3] for row in chart(report, "level")] == [
        (day[0], "1", "1"), (day[1], "1", "not shared"), (day[3], "1", "not shared")]
    assert chart(report, "weekly") == [("2026-11-23", "2"), ("2026-11-30", "0"),
                                       ("2026-12-07", "1")]
    assert [row[0] for row in report.sessions.rows] == [day[0], day[1], day[3]]
    assert report.highlights == ["3 exercises practised", "1 smaller step chosen: setting "
                                 "their own pace", "easier than expected in 1 session",
                                 "calmer at the end than at the start in 1 session"]

    page = render_report(report)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "Exercises practised per week" in text and "not shared" in text
    # The private session's and the withdrawn ratings' numbers are nowhere in the tables.
    for row in report.sessions.rows:
        assert "4 → 1" not in row and "3 → 0" not in row
    assert tags_of(page).tags.isdisjoint({"script", "img", "iframe", "link", "object",
                                          "embed", "form", "base"})


async def test_what_the_client_shares_from_summary_is_all_the_report_shows(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    """The share rows here are written by the client's own presses in ``/summary``."""
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await store.assign_therapist(ada.client_id, LEE, clock.now)
    first = await practise(ada, before=5, after=2, expected=6, actual=4)
    clock.advance(days=1)
    second = await practise(ada, before=4, after=1, expected=6, actual=2)
    await ada.send(Command(name="summary"))
    await ada.press(ada.keyboard[1].label)  # the older session: the first
    await ada.press("Share my ratings")
    await ada.press("Share the exercise")
    await ada.press("Stop sharing my ratings")  # withdrawn again
    await ada.press("ud")  # back to the list
    await ada.press(ada.keyboard[0].label)  # the newer session: the second
    await ada.press("Share all of it")
    await ada.press("Stop sharing how hard it was")
    await ada.press("ud")
    await ada.press("ud")

    report = report_of(await service.read_record(ada.client_id, LEE), loaded, clock)
    one, two = first.date().isoformat(), second.date().isoformat()
    assert report.sharing and report.shared_sessions == 2
    assert chart(report, "distress") == [(two, "4", "1")]  # the first's were withdrawn
    assert chart(report, "difficulty") == []  # shared, then withdrawn
    assert [row[0] for row in report.sessions.rows] == [one, two]
    kinds = [row.kind for row in await store.ledger(ada.client_id)
             if row.kind in ("summary_shared", "summary_withdrawn")]
    assert kinds == ["summary_shared", "summary_shared", "summary_withdrawn",
                     "summary_shared", "summary_withdrawn"]


async def test_did_it_help_shows_by_exercise_only_where_shared(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    sessions = []
    for helped in ("It helped", "A little", "Not really"):
        sessions.append(await practise(ada, helped=helped))
        clock.advance(days=1)
    await share(store, ada.client_id, sessions[0], ["exercise", "helped"], clock.now)
    await share(store, ada.client_id, sessions[1], ["helped"], clock.now)
    await share(store, ada.client_id, sessions[2], ["exercise"], clock.now)  # its answer: not
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert chart(report, "helped") == [("First steps in sharing", "1", "1", "0")]
    assert [row[-3] for row in report.sessions.rows] == ["It helped", "A little", "not shared"]


async def test_the_caseload_shows_how_each_exercise_was_rated_by_the_sharing_clients(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    for client, helped, shared in (("tg:2001", "It helped", True), ("tg:2002", "A little", True),
                                   ("tg:2003", "Not really", False)):
        someone = ServiceClient(service, client)
        await consent_sharing(someone)
        await store.assign_therapist(client, LEE, clock.now)
        session = await practise(someone, helped=helped)
        if shared:  # the third keeps their answer private
            await share(store, client, session, ["helped"], clock.now)
    records = await service.read_caseload(LEE, kinds=CASELOAD_KINDS)
    lines = [caseload_line(r.state, r.ledger, now=clock.now, default_zone="UTC",
                           therapist=r.therapist) for r in records]
    rated = "first-steps: helped 1 · a little 1 · not really 0 (2 clients)"
    assert rated in "\n".join(caseload_messages(lines))
    assert caseload_table(lines).endswith(rated)


async def test_without_the_sharing_opt_in_only_the_agreement_and_status_show(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    shared = await practise(ada, before=5, after=2)
    await share(store, ada.client_id, shared, SHARE_ITEMS, clock.now)
    await ada.send(Text(text=CRISIS))
    await ada.press("sf")
    with_opt_in = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert with_opt_in.shared_sessions == 1 and with_opt_in.crisis.rows

    await ada.send(Command(name="settings"))
    await ada.press("gs")  # sharing with my therapist: off
    await ada.press("gd")
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert not report.sharing and report.shared_sessions == 0
    assert report.highlights == [] and report.sessions.rows == [] and report.crisis.rows == []
    assert all(c.svg is None and not c.table.rows for c in report.charts)
    page = render_report(report)
    assert "not sharing with you at the moment" in page
    assert "<svg" not in page and "Crisis events" not in page
    assert report.status == "crisis hold"  # what the therapist acts on always shows
    assert ("Current level", "1 of at most 3") in report.contract.rows


async def test_crisis_events_show_as_dates_and_kinds_only(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await ada.send(Text(text=CRISIS))
    await ada.press("sf")
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert report.crisis.rows == [("2026-11-25", "suicide or self-harm")]
    page = render_report(report)
    assert "die" not in html.unescape(page).lower()


async def test_everything_a_client_typed_or_a_ledger_holds_is_escaped(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    hostile = 'term:<script>alert(1)</script><img src=x onerror="alert(2)">'
    client = ServiceClient(service, hostile)
    await consent_sharing(client)
    started = await practise(client)
    await share(store, hostile, started, SHARE_ITEMS, clock.now)
    # A ledger row as another release (or a damaged file) might hold it.
    odd = _row(hostile, clock, "session_started", {"script": "<svg onload=alert(3)>"})
    await store.commit(odd)
    await store.commit(_row(hostile, clock, "session_ended",
                            {"script": "x", "completed": True, "level": "<b>2</b>"}))
    await share(store, hostile, odd.at, SHARE_ITEMS, clock.now)
    await store.commit(_row(hostile, clock, "crisis_language",
                            {"kinds": ["<iframe src=//evil>"]}))

    page = render_report(report_of(await service.read_record(hostile, OPERATOR), loaded,
                                   clock))
    found = tags_of(page)
    assert found.tags.isdisjoint({"script", "img", "iframe"})
    assert not {a for a in found.attributes if a.startswith("on")}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;svg onload=alert(3)&gt;" in page and "&lt;iframe" in page


def _row(client_id: str, clock: Clock, kind: str, data: dict[str, object]) -> Commit:
    at = clock.advance(minutes=1)
    return Commit(event_id=f"raw:{kind}:{at.isoformat()}", client_id=client_id, at=at,
                  state=None, ledger=[LedgerRecord(kind, data, at)])


async def test_small_steps_are_counted_and_failures_never_are(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    finished = await practise(ada, before=4, after=2, smaller=1)
    clock.advance(days=1)
    await ada.send(Command(name="start"))
    await ada.press("First steps in sharing")
    stopped = (await service.state_of(ada.client_id)).session
    assert stopped is not None
    await ada.send(Command(name="stop"))
    await ada.press("ot")  # only this exercise
    for session in (finished, stopped.started_at):
        await share(store, ada.client_id, session, SHARE_ITEMS, clock.now)

    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert report.highlights[:2] == ["2 exercises practised",
                                     "1 smaller step chosen: setting their own pace"]
    page = html.unescape(render_report(report)).lower()
    for word in ("fail", "stopped", "missed", "abandon", "incomplete", "gave up"):
        assert word not in page, word


async def test_the_caseload_flags_what_is_new_since_the_therapist_looked(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    clients = {}
    for number in range(1, 6):
        client = ServiceClient(service, f"tg:{number}")
        clients[number] = client
        if number < 5:
            await consent_sharing(client)
        else:
            await client.send(Command(name="start"))  # never agreed
        await store.assign_therapist(client.client_id, LEE, clock.now)
    quiet, rated, held, halted = (clients[n] for n in range(1, 5))
    shared = await practise(quiet, before=3, after=2)
    await share(store, quiet.client_id, shared, SHARE_ITEMS, clock.now)
    high = await practise(rated, before=8, after=3)
    await share(store, rated.client_id, high, ["exercise"], clock.now)
    await held.send(Text(text=CRISIS))
    await held.press("sf")
    await halted.send(Command(name="stop"))

    def lines() -> dict[str, tuple[str, str | None, int | None, tuple[str, ...]]]:
        return {r.client_id: (line.status, line.last_session, line.this_week, line.flags)
                for r in records
                for line in [caseload_line(r.state, r.ledger, now=clock.now,
                                           default_zone="UTC", therapist=r.therapist)]}

    records = await service.read_caseload(LEE)
    assert lines() == {
        "tg:1": ("active", "2026-11-25", 1, ()),
        "tg:2": ("active", "2026-11-25", 1, ()),  # its ratings are not shared
        "tg:3": ("crisis hold", None, 0, (CRISIS_FLAG,)),
        "tg:4": ("halted", None, 0, ()),
        "tg:5": ("not consented", None, None, ()),
    }
    await service.read_record("tg:3", LEE)  # the therapist looks
    clock.advance(hours=1)
    await share(store, rated.client_id, high, ["ratings"], clock.now)  # shared after the look
    records = await service.read_caseload(LEE)
    assert lines()["tg:3"][3] == ()
    assert lines()["tg:2"][3] == (RATING_FLAG,)
    clock.advance(days=7)
    records = await service.read_caseload(LEE)
    assert lines()["tg:1"][2] == 0  # a new week

    messages = caseload_messages([caseload_line(r.state, r.ledger, now=clock.now,
                                                default_zone="UTC", therapist=r.therapist)
                                  for r in records])
    assert len(messages) == 1 and messages[0].index("tg:2") < messages[0].index("tg:1")
    assert "⚑ new: high rating" in messages[0]


def test_a_long_caseload_is_split_into_messages_telegram_accepts(
    loaded: Loaded, clock: Clock
) -> None:
    states = [loaded.engine.new_state(f"tg:{100000 + n}") for n in range(300)]
    lines = [caseload_line(s, [], now=clock.now, default_zone="UTC") for s in states]
    messages = caseload_messages(lines)
    assert len(messages) > 1 and all(len(m) <= 4000 for m in messages)
    joined = "\n".join(messages)
    assert all(f"tg:{100000 + n}" in joined for n in range(300))


async def test_sessions_not_shared_yet_give_a_report_that_says_so(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    """Today's ledgers (no client can share a session before the summary flow exists)."""
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await practise(ada)
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert report.sharing and report.shared_sessions == 0
    assert "has not shared a session yet" in render_report(report)


async def test_reading_only_the_rows_a_view_uses_gives_the_same_view(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await store.assign_therapist(ada.client_id, LEE, clock.now)
    for day in range(6):
        session = await practise(ada, before=3 + day, after=1 + day % 2, smaller=day % 2,
                                 level_up=True)
        await share(store, ada.client_id, session, SHARE_ITEMS[: 2 + day % 5], clock.now)
        if day == 3:
            await ada.send(Text(text=CRISIS))
            await ada.press("sf")
            await share(store, ada.client_id, session, ["ratings"], clock.now, withdraw=True)
        clock.advance(days=1)

    def facts(report: ProgressReport) -> tuple[object, ...]:
        return (report.highlights, report.sessions, report.contract, report.crisis,
                report.shared_sessions, [(c.key, c.table, c.svg is None) for c in report.charts])

    whole = await service.read_record(ada.client_id, OPERATOR)
    only = await service.read_record(ada.client_id, OPERATOR, kinds=REPORT_KINDS)
    assert len(only.ledger) < len(whole.ledger)
    assert facts(report_of(only, loaded, clock)) == facts(report_of(whole, loaded, clock))
    full = report_of(whole, loaded, clock)
    assert full.crisis.rows and full.highlights and full.sessions.rows

    [whole_line] = await service.read_caseload(LEE)
    [only_line] = await service.read_caseload(LEE, kinds=CASELOAD_KINDS)
    assert len(only_line.ledger) < len(whole_line.ledger)

    def line(record: ClientRecord) -> object:
        return caseload_line(record.state, record.ledger, now=clock.now, default_zone="UTC",
                             therapist=record.therapist)

    assert line(only_line) == line(whole_line)
    assert line(whole_line).flags  # a high rating and a hold, never looked at


async def test_the_weekly_check_in_is_plotted_by_week_only_while_the_client_shares(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = ServiceClient(service, "tg:2001")
    await consent_sharing(ada)
    await store.assign_therapist(ada.client_id, LEE, clock.now)
    never = report_of(await service.read_record(ada.client_id, LEE), loaded, clock)
    assert "outcomes" not in [c.key for c in never.charts]  # never switched on: no chart

    await service.switch_outcomes(ada.client_id, LEE, True, "ev:on")
    weeks = []
    for answers in (("7", "Skip this question", "9"), ("5", "6", "Not this week")):
        weeks.append((clock.now - timedelta(days=clock.now.weekday())).date().isoformat())
        await ada.send(Command(name="start"))
        for answer in answers:
            await ada.press(answer)
        clock.advance(days=7)
    report = report_of(await service.read_record(ada.client_id, LEE), loaded, clock)
    assert chart(report, "outcomes") == [(weeks[0], "7", "", "9"), (weeks[1], "5", "6", "")]
    [drawn] = [c for c in report.charts if c.key == "outcomes"]
    assert drawn.svg is not None and drawn.table.columns == (
        "Week of", "Felt close to someone", "Easy to say what I need",
        "Willing to reach out for support")
    page = render_report(report)
    assert 'data-chart="outcomes"' in page and "Weekly check-in" in page

    await ada.send(Command(name="settings"))
    await ada.press("gs")  # sharing with my therapist: off
    await ada.press("gd")
    private = report_of(await service.read_record(ada.client_id, LEE), loaded, clock)
    assert chart(private, "outcomes") == []
    assert all(c.svg is None for c in private.charts)


async def wrote_and_edited(service: Rehearsal, client_id: str) -> ServiceClient:
    """A client who keeps what they type and shares: typed an answer at each prompt of
    first-steps, then in its summary edited the first and shared it (the second stays
    private)."""
    ada = ServiceClient(service, client_id)
    await ada.send(Start())
    for label in ("I agree", "Yes", "Yes, please", "Yes, please", "No, thanks", "No, thanks"):
        await ada.press(label)
    await ada.press("First steps in sharing")
    for number in range(300):
        state = await service.state_of(ada.client_id)
        if state.session is None:
            break
        if state.session.frame.part is Part.PROMPT:
            await ada.send(Text(text=f"the words I typed first, number {number}"))
        else:
            await ada.answer_current()
    await ada.press("Edit answer 1")
    await ada.send(Text(text="What I really meant to say"))
    await ada.press("Share answer 1")
    return ada


async def test_a_shared_answer_shows_in_its_edited_version_only_while_shared(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = await wrote_and_edited(service, "tg:2001")
    originals = [a.text for a in await store.answers(ada.client_id) if a.kind == "answer"]
    assert len(originals) == 3  # the original stays as typed
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    [row] = report.sessions.rows
    assert row[-1] == "“What I really meant to say” (edited by the client)"
    assert row[1] == "what they wrote"
    page = html.unescape(render_report(report))
    assert "What I really meant to say" in page and "the words I typed first" not in page
    ledger = await store.ledger(ada.client_id)
    [started] = [r.at for r in ledger if r.kind == "session_started"]
    edits = [r.data for r in ledger if r.kind == "answer_edited"]
    assert edits == [{"session": started.isoformat(), "item": "answer:0"}]
    assert "What I really meant" not in str([r.data for r in await store.ledger(ada.client_id)])

    await ada.press("ud")  # done with the summary
    await ada.send(Command(name="summary"))
    await ada.press(ada.keyboard[0].label)
    await ada.press("Stop sharing answer 1")
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert "What I really meant" not in html.unescape(render_report(report))


async def test_a_shared_answer_leaves_the_report_with_the_sharing_opt_in(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = await wrote_and_edited(service, "tg:2001")
    await ada.press("ud")
    await ada.send(Command(name="settings"))
    await ada.press("gs")  # sharing with my therapist: off
    await ada.press("gd")
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert report.sessions.rows == []
    assert "What I really meant" not in html.unescape(render_report(report))


async def test_a_comment_on_did_this_help_shows_only_when_shared(
    store: SqliteStore, loaded: Loaded, clock: Clock
) -> None:
    service = Rehearsal(loaded.engine, store, clock)
    ada = await wrote_and_edited(service, "tg:2001")
    await ada.press("A little")
    await ada.press("Add a comment")
    await ada.send(Text(text="zq9 the second prompt was a lot"))
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    assert "zq9" not in html.unescape(render_report(report))  # private until shared
    await ada.press("Share my comment")
    report = report_of(await service.read_record(ada.client_id, OPERATOR), loaded, clock)
    [row] = report.sessions.rows
    assert row[-2] == "“zq9 the second prompt was a lot”" and "their comment" in row[1]
    assert "zq9" not in str([r.data for r in await store.ledger(ada.client_id)])
