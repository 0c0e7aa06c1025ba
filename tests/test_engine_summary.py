"""The client's session summaries: every choice (share, keep private, withdraw), the list.

The real engine over the shipped scripts, with the ledger's session rows handed in as the
service does (``Driver.new(..., ledger=True)``). Nothing is shared until the client presses
a share button while holding the sharing opt-in; each press is one ledger row.
"""

from __future__ import annotations

import pytest

from bot.app import Loaded
from bot.engine import (
    RATED,
    SHARED,
    WITHDRAWN,
    CrisisQuestion,
    Kept,
    LevelQuestion,
    SummaryQuestion,
    sessions,
)
from tests.support.engine_driver import CRISIS, Driver, assert_crisis, assert_halted

FIRST = "first-steps"


def finished(loaded: Loaded, *, share: bool = True, times: int = 1) -> Driver:
    """A client who finished first-steps `times` times, the last summary showing."""
    d = Driver.new(loaded.engine, ledger=True)
    d.consent(share=share)
    for n in range(times):
        if n:
            d.press(d.label("summary_done"))
            d.advance(hours=20)
        d.pick(FIRST)
        d.walk_to_end()
    return d


def share_rows(d: Driver) -> list[tuple[str, object, object]]:
    return [(e.kind, e.data["session"], e.data["items"]) for e in d.all_ledger()
            if e.kind in (SHARED, WITHDRAWN)]


def shown_items(d: Driver) -> list[str]:
    """What the summary on screen shares now (the engine's own reading of the rows)."""
    pending = d.state.pending
    assert isinstance(pending, SummaryQuestion) and d.session_rows is not None
    [mine] = [s for s in sessions(d.session_rows, d.kept) if s.id == pending.session]
    return sorted(mine.items)


def test_the_summary_follows_a_finished_session_and_everything_starts_private(
        loaded: Loaded) -> None:
    d = finished(loaded)
    started = d.session_rows[0].at if d.session_rows else None
    assert d.state.pending == SummaryQuestion(session=started, offer_level=True)
    summary = d.texts()[-1]
    assert "Your summary: First steps in sharing" in summary
    assert summary.count("Private") == 4 and "Shared" not in summary
    assert d.labels() == [d.label(k) for k in (
        "helped_yes", "helped_a_little", "helped_not_really",
        "summary_share_exercise", "summary_share_ratings", "summary_share_difficulty",
        "summary_share_relief", "summary_share_all", "summary_done")]
    assert share_rows(d) == []


def test_share_one_item_then_withdraw_it_each_a_ledger_row(loaded: Loaded) -> None:
    d = finished(loaded)
    session = d.state.pending.session.isoformat()  # type: ignore[union-attr]
    d.press(d.label("summary_share_ratings"))
    assert d.kinds() == [SHARED] and shown_items(d) == ["ratings"]
    assert d.has_button(d.label("summary_withdraw_ratings"))
    assert "<i>Shared</i> · How you felt" in d.texts()[-1]
    d.press(d.label("summary_withdraw_ratings"))
    assert d.kinds() == [WITHDRAWN] and shown_items(d) == []
    assert share_rows(d) == [(SHARED, session, ["ratings"]), (WITHDRAWN, session, ["ratings"])]


def test_share_all_shares_only_what_is_not_shared_yet(loaded: Loaded) -> None:
    d = finished(loaded)
    d.press(d.label("summary_share_exercise"))
    d.press(d.label("summary_share_all"))
    session = d.state.pending.session.isoformat()  # type: ignore[union-attr]
    assert share_rows(d)[-1] == (SHARED, session, ["ratings", "difficulty", "relief"])
    assert shown_items(d) == sorted(["exercise", "ratings", "difficulty", "relief"])
    assert not d.has_button(d.label("summary_share_all"))  # nothing left to share


def test_keep_private_is_done_without_a_row_and_the_level_offer_follows(
        loaded: Loaded) -> None:
    d = finished(loaded, times=3)  # the default rule: three completions at a level
    d.press(d.label("summary_done"))
    assert d.said("summary.closed") and d.said("level.offer", level=1, next_level=2)
    assert d.state.pending == LevelQuestion() and share_rows(d) == []


def test_without_the_sharing_opt_in_the_summary_is_the_clients_alone(loaded: Loaded) -> None:
    d = finished(loaded, share=False)
    assert "yours alone" in d.texts()[-1] and "Private" not in d.texts()[-1]
    assert d.labels() == [d.label(k) for k in (
        "helped_yes", "helped_a_little", "helped_not_really", "summary_done")]
    # A forged share press (never offered on this keyboard) is stale and writes nothing.
    d.press_data(f"{d.state.keyboard}:ui1")
    assert d.said("unexpected.stale_button") and share_rows(d) == []


def test_stale_and_forged_presses_change_nothing(loaded: Loaded) -> None:
    d = finished(loaded)
    old = d.button(d.label("summary_share_ratings")).data
    d.press(d.label("summary_share_exercise"))
    before = share_rows(d)
    d.press_data(old)  # an older keyboard
    assert d.said("unexpected.stale_button") and share_rows(d) == before
    d.press_data(f"{d.state.keyboard}:ui9")  # no such item
    assert d.said("unexpected.stale_button") and share_rows(d) == before
    assert isinstance(d.state.pending, SummaryQuestion)


def test_typed_text_at_the_summary_asks_for_a_button(loaded: Loaded) -> None:
    d = finished(loaded)
    d.text("ok thanks")
    assert d.said("unexpected.text_at_buttons") and share_rows(d) == []
    assert isinstance(d.state.pending, SummaryQuestion)


def test_crisis_words_at_the_summary_show_resources_first(loaded: Loaded) -> None:
    d = finished(loaded)
    d.text(CRISIS)
    assert_crisis(d, CRISIS, had_session=False, running=False)
    assert d.state.pending == CrisisQuestion() and share_rows(d) == []


def test_stop_at_the_summary_stops_at_once(loaded: Loaded) -> None:
    d = finished(loaded)
    d.command("stop")
    assert_halted(d, had_session=False, via="command")
    d.command("summary")
    assert d.said("stop.halted")


def test_summary_lists_every_session_page_by_page(loaded: Loaded) -> None:
    d = finished(loaded, times=7)
    d.press(d.label("summary_done"))
    if d.state.pending == LevelQuestion():
        d.press(d.label("level_no"))
    d.command("summary")
    assert d.said("summary.list", page=1, pages=2, sharing=True)
    assert len(d.labels()) == 5 + 2  # five sessions, "Older", "Done"
    d.press(d.label("summary_older"))
    assert d.said("summary.list", page=2, pages=2, sharing=True)
    assert d.labels()[2:] == [d.label("summary_newer"), d.label("summary_done")]
    d.press(d.labels()[1])  # the oldest session
    pending = d.state.pending
    assert isinstance(pending, SummaryQuestion) and pending.listed
    assert d.session_rows is not None and pending.session == d.session_rows[0].at
    d.press(d.label("summary_share_exercise"))
    d.press(d.label("summary_done"))  # back to the page it was chosen from
    assert d.said("summary.list", page=2, pages=2, sharing=True)
    d.press(d.label("summary_done"))
    assert d.said("summary.closed") and d.state.pending is None
    assert [r[0] for r in share_rows(d)] == [SHARED]


@pytest.mark.parametrize("consented", [False, True])
def test_summary_with_nothing_to_show(loaded: Loaded, consented: bool) -> None:
    d = Driver.new(loaded.engine, ledger=True)
    if consented:
        d.consent()
        d.command("summary")
        assert d.said("summary.none") and d.state.pending is None
    else:
        d.command("summary")  # nothing before the terms are agreed to
        assert d.said("consent.intro", **_intro(loaded))


def _intro(loaded: Loaded) -> dict[str, object]:
    policy = loaded.engine.resources.policy
    return {"retention_days": policy.retention_days, "answers_days": policy.answers_days,
            "therapist_delay": policy.therapist_delay,
            "crisis_hold_hours": policy.crisis_hold_hours}



def test_did_this_help_is_asked_once_and_shared_only_when_the_client_says_so(
        loaded: Loaded) -> None:
    d = finished(loaded)
    session = d.state.pending.session.isoformat()  # type: ignore[union-attr]
    assert "Did this help?" in d.texts()[-1]
    d.press(d.label("helped_a_little"))
    assert [(e.kind, e.data) for e in d.ledger()] == [
        (RATED, {"session": session, "script": FIRST, "helped": "a-little"})]
    assert "You said: a little" in d.texts()[-1] and "Did this help?" not in d.texts()[-1]
    assert not d.has_button(d.label("helped_yes"))  # answered: not asked again
    assert shown_items(d) == []  # the answer too is private until shared
    d.press(d.label("summary_share_helped"))
    assert shown_items(d) == ["helped"]
    assert share_rows(d) == [(SHARED, session, ["helped"])]


def test_summary_mid_session_then_done_goes_back_to_the_step(loaded: Loaded) -> None:
    d = finished(loaded)
    d.press(d.label("summary_done"))
    d.advance(hours=20)
    d.pick(FIRST)
    d.press("go")
    step = d.step
    d.command("summary")
    assert d.said("summary.list", page=1, pages=1, sharing=True)
    d.press(d.label("summary_done"))
    assert d.said("summary.closed") and d.step == step and d.has_button("go")


# -- typed answers ---------------------------------------------------------------------------
def wrote(loaded: Loaded, *, free_text: bool = True, share: bool = True) -> Driver:
    """A client who typed their own words at every writing step of first-steps."""
    d = Driver.new(loaded.engine, ledger=True)
    d.consent(free_text=free_text, share=share)
    d.pick(FIRST)
    while d.state.session is not None:
        trial = d.fork()
        trial.text("My own words")
        if trial.last.answers or (not free_text and d.part == "page"
                                  and not trial.said("unexpected.text_at_buttons")):
            d.text("My own words")
        else:
            d.answer_current()
    return d


def test_kept_answers_are_listed_private_and_can_be_shared_and_withdrawn(
        loaded: Loaded) -> None:
    d = wrote(loaded)
    session = d.state.pending.session.isoformat()  # type: ignore[union-attr]
    summary = d.texts()[-1]
    assert "What you wrote" in summary and summary.count("My own words") == 3
    d.press("Share answer 2")
    assert share_rows(d) == [(SHARED, session, ["answer:1"])]
    assert "<i>Shared</i> · My own words" in d.texts()[-1]
    d.press("Stop sharing answer 2")
    assert share_rows(d)[-1] == (WITHDRAWN, session, ["answer:1"])
    d.press(d.label("summary_share_all"))
    assert {"answer:0", "answer:1", "answer:2"} <= set(shown_items(d))


def test_an_edit_is_the_shown_version_and_the_ledger_holds_no_words(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press("Edit answer 1")
    assert "Type the new version of answer 1" in d.texts()[-1]
    assert d.state.pending.editing == 0  # type: ignore[union-attr]
    d.text("What I really meant")
    [edit] = d.last.answers
    assert edit.kind == "edit" and edit.text == "What I really meant"
    [row] = [e for e in d.last.ledger if e.kind == "answer_edited"]
    assert row.data["item"] == "answer:0" and "What I really meant" not in str(row.data)
    summary = d.texts()[-1]
    assert "What I really meant <i>(your edited version)</i>" in summary
    assert summary.count("My own words") == 2
    d.press("Share answer 1")
    [mine] = [s for s in sessions(d.session_rows or [], d.kept)]
    assert mine.answers[0].text == "What I really meant" and mine.shares("answer:0")


def test_keep_it_as_it_is_leaves_the_answer(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press("Edit answer 2")
    d.press(d.label("summary_keep_answer"))
    assert d.last.answers == [] and "edited version" not in d.texts()[-1]
    assert d.state.pending.editing is None  # type: ignore[union-attr]


def test_without_keeping_what_they_type_no_answers_are_listed(loaded: Loaded) -> None:
    d = wrote(loaded, free_text=False)
    assert "What you wrote" not in d.texts()[-1]
    assert not any("answer" in label for label in d.labels())
    d.press_data(f"{d.state.keyboard}:ue0")  # forged: never offered
    assert d.said("unexpected.stale_button") and d.last.answers == []


def test_a_forged_answer_press_changes_nothing(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press_data(f"{d.state.keyboard}:uw7")  # no eighth answer on this keyboard
    assert d.said("unexpected.stale_button") and share_rows(d) == []


def test_crisis_words_while_editing_show_resources_and_store_nothing(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press("Edit answer 1")
    d.text(CRISIS)
    assert_crisis(d, CRISIS, had_session=False, running=False)
    assert d.last.answers == [] and not any(e.kind == "answer_edited" for e in d.all_ledger())


def test_stop_while_editing_halts(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press("Edit answer 1")
    d.command("stop")
    assert_halted(d, had_session=False, via="command")
    assert not any(a.kind == "edit" for a in d.kept)


# -- a comment on "Did this help?" -------------------------------------------------------------
def test_a_comment_follows_the_answer_is_private_and_can_be_shared(loaded: Loaded) -> None:
    d = wrote(loaded)
    assert not d.has_button(d.label("summary_comment"))  # only once "Did this help?" is answered
    d.press(d.label("helped_a_little"))
    assert "add a comment on it" in d.texts()[-1]
    d.press(d.label("summary_comment"))
    assert "Type your comment" in d.texts()[-1]
    d.text("The breathing part worked, the last prompt was too much")
    [comment] = d.last.answers
    assert comment.kind == "comment"
    session = d.state.pending.session.isoformat()  # type: ignore[union-attr]
    assert comment.step == session
    assert [e.data for e in d.last.ledger] == [{"session": session}]  # the fact, no words
    assert "<i>Private</i> · Your comment on it: The breathing part" in d.texts()[-1]
    d.press(d.label("summary_share_comment"))
    assert share_rows(d) == [(SHARED, session, ["comment"])]
    d.press(d.label("summary_change_comment"))
    d.press(d.label("summary_keep_answer"))
    assert d.last.answers == [] and "The breathing part" in d.texts()[-1]


def test_a_comment_too_long_is_asked_again(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press(d.label("helped_yes"))
    d.press(d.label("summary_comment"))
    d.text("x" * 501)
    assert d.said("unexpected.too_long", limit=500) and d.last.answers == []
    assert d.state.pending.commenting  # type: ignore[union-attr]
    d.text("short")
    assert [a.text for a in d.last.answers] == ["short"]


def test_without_keeping_what_they_type_no_comment_is_offered_or_stored(
        loaded: Loaded) -> None:
    d = wrote(loaded, free_text=False)
    d.press(d.label("helped_yes"))
    assert not d.has_button(d.label("summary_comment"))
    assert "add a comment" not in d.texts()[-1]
    d.press_data(f"{d.state.keyboard}:uc")  # forged: never offered
    assert d.said("unexpected.stale_button")
    d.text("my comment anyway")
    assert d.said("unexpected.text_at_buttons") and d.last.answers == []


def test_crisis_words_in_a_comment_show_resources_and_store_nothing(loaded: Loaded) -> None:
    d = wrote(loaded)
    d.press(d.label("helped_not_really"))
    d.press(d.label("summary_comment"))
    d.text(CRISIS)
    assert_crisis(d, CRISIS, had_session=False, running=False)
    assert d.last.answers == []


def test_answers_beyond_what_the_summary_shows_are_never_shared_unseen(loaded: Loaded) -> None:
    d = wrote(loaded)
    start = d.state.pending.session  # type: ignore[union-attr]
    assert start is not None
    d.kept += [Kept(step="prompt-3", text=f"more words {n}", at=start) for n in range(9)]
    d.press(d.label("summary_done"))
    d.command("summary")
    d.press(d.labels()[0])
    assert d.labels().count("Edit answer 8") == 1
    assert "Edit answer 9" not in d.labels() and d.texts()[-1].count("more words") == 5
    d.press(d.label("summary_share_all"))
    [(_, _, items)] = [r for r in share_rows(d) if "answer:0" in r[2]]  # type: ignore[operator]
    assert {i for i in items if i.startswith("answer:")} == {  # type: ignore[union-attr]
        f"answer:{n}" for n in range(8)}
