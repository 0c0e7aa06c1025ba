"""The contract as a living agreement, in the engine: a therapist proposes a change, the client
gets one message and agrees or asks to talk first; only an agreed change takes effect.

Real engine, real shipped texts and scripts; the history reaches the engine in the state, as
the service hands it in from the ledger (``tests/test_therapist_contract.py`` covers that).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import Loaded
from bot.engine import (
    Clinician,
    ContractChange,
    ContractQuestion,
    CrisisQuestion,
    MenuQuestion,
    StopQuestion,
    change_from,
    history,
)
from bot.engine._agreement import ANSWERED, PROPOSED
from bot.store import LedgerRow
from tests.support.engine_driver import CRISIS, T0, Driver

THERAPIST = "tg:9000"


@pytest.fixture
def d(loaded: Loaded) -> Driver:
    driver = Driver.new(loaded.engine)
    driver.consent()
    return driver


def propose(d: Driver, **terms: str) -> None:
    change = change_from(terms, scripts=d.engine.resources.scripts)
    d.send(Clinician(action="propose-contract", by=THERAPIST, change=change))


def test_one_message_then_agree_makes_the_change_and_moves_nobody_up(d: Driver) -> None:
    before = d.state.contract
    propose(d, max_level="4", session_minutes="10", off_limits="family, work")
    assert len(d.messages) == 1  # one message, with the change in plain words
    assert "Your therapist proposes a change to your agreement" in d.plain()
    assert "up to level 4 of 5" in d.plain() and "up to 10 minutes" in d.plain()
    assert "Topics left out: family, work" in d.plain()
    assert d.labels() == ["Agree", "I'd like to talk about it first"]
    assert d.state.contract == before  # nothing takes effect before the client agrees
    assert d.rows(PROPOSED) == [{"number": 1, "by": THERAPIST, "replaces": None, "change": {
        "max_level": 4, "off_limits": ["family", "work"], "session_minutes": 10}}]

    d.press("Agree")
    contract = d.state.contract
    assert (contract.max_level, contract.session_minutes) == (4, 10)
    assert contract.off_limit_topics == ["family", "work"]
    assert contract.sessions_per_day == before.sessions_per_day  # what was not proposed stays
    assert d.state.level == 1  # a higher max level moves nobody up: they are asked later
    assert d.rows(ANSWERED) == [{"number": 1, "answer": "agreed"}]
    assert d.state.proposal is None
    assert d.said("contract.agreed", terms=[
        d.render("contract.term", term="max_level", value=4),
        d.render("contract.term", term="off_limits", value=["family", "work"]),
        d.render("contract.term", term="session_minutes", value=10)])
    assert d.state.pending == MenuQuestion()  # back to the menu it replaced


def test_talk_first_changes_nothing_and_the_therapist_sees_it(d: Driver) -> None:
    before = d.state.contract
    propose(d, max_level="5")
    d.press("I'd like to talk about it first")
    assert d.state.contract == before and d.state.proposal is None
    assert d.rows(ANSWERED) == [{"number": 1, "answer": "talk_first"}]
    assert d.said("contract.talk_first")


def test_a_newer_proposal_replaces_the_waiting_one_whose_buttons_go_stale(d: Driver) -> None:
    propose(d, max_level="4")
    old = d.button("Agree").data
    propose(d, sessions_per_day="1")
    assert d.rows(PROPOSED)[-1]["replaces"] == 1
    assert "Up to 1 session a day" in d.plain()
    d.press_data(old)
    assert d.said("unexpected.stale_button")
    assert d.state.contract.max_level == 3  # the replaced proposal never takes effect
    d.press("Agree")
    assert d.state.contract.sessions_per_day == 1 and d.state.contract.max_level == 3
    assert d.rows(ANSWERED) == [{"number": 2, "answer": "agreed"}]


def test_a_press_for_a_replaced_proposal_on_a_live_keyboard_changes_nothing(d: Driver) -> None:
    d.pick("first-steps")
    propose(d, max_level="4")  # mid-exercise: told without buttons
    d.command("contract")
    assert d.state.pending == ContractQuestion(number=1)
    propose(d, max_level="2")  # still mid-exercise: the keyboard of proposal 1 stays live
    d.press("Agree")
    assert d.said("contract.replaced")
    assert d.state.contract.max_level == 3 and d.state.proposal is not None


def test_forged_presses_are_stale(d: Driver) -> None:
    propose(d, max_level="4")
    for forged in ("{live}:ca7", "{next}:ca1", "{live}:ca1x", "ca1", "{live}:ct0"):
        live = d.state.keyboard  # each stale press asks again, on a new keyboard
        data = forged.format(live=live, next=live + 1)
        d.press_data(data)
        assert d.said("unexpected.stale_button"), data
        assert d.labels() == ["Agree", "I'd like to talk about it first"]
    assert d.state.contract.max_level == 3


def test_mid_exercise_the_message_has_no_buttons_and_the_exercise_keeps_its_own(
        d: Driver) -> None:
    d.pick("first-steps")
    labels = d.labels()
    propose(d, max_level="4")
    [message] = d.messages
    assert not message.buttons and "Send /contract when you're ready" in d.plain()
    assert d.labels() == labels  # the exercise's buttons are still the live ones
    d.answer_current()
    assert d.state.session is not None and not d.said("unexpected.stale_button")
    d.command("contract")
    assert d.labels() == ["Agree", "I'd like to talk about it first"]
    d.press("Agree")
    assert d.state.contract.max_level == 4
    assert d.state.session is not None and d.state.pending is None  # back in the exercise


def test_stop_and_crisis_words_still_come_first_while_it_waits(d: Driver) -> None:
    propose(d, max_level="4")
    d.text(CRISIS)
    assert d.texts()[0] == d.resources_text(CRISIS)
    assert isinstance(d.state.pending, CrisisQuestion)
    assert d.state.contract.max_level == 3 and d.state.proposal is not None
    d.command("stop")
    assert d.state.halted and d.state.pending == StopQuestion()
    propose(d, max_level="5")  # after a halt nothing is sent unprompted
    assert d.texts() == [] and d.state.proposal is not None
    assert d.state.proposal.number == 2


def test_during_a_crisis_hold_it_waits_for_contract(d: Driver) -> None:
    d.text(CRISIS)
    d.press("sf")  # safe right now: the hold stays on for its hours
    assert d.state.crisis_hold_since is not None
    propose(d, max_level="4")
    assert d.texts() == [] and d.state.proposal is not None  # nothing pushed after a crisis
    d.command("contract")
    assert d.labels() == ["Agree", "I'd like to talk about it first"]


def test_a_lower_max_level_brings_the_level_down_with_it(d: Driver) -> None:
    d.state.level = 3
    propose(d, max_level="2")
    assert d.state.level == 3  # not before the client agrees
    d.press("Agree")
    assert (d.state.contract.max_level, d.state.level) == (2, 2)
    assert d.rows("level_changed") == [{"from_level": 3, "to_level": 2, "asked": True,
                                        "reason": "contract"}]


def test_at_night_it_waits_for_contract(d: Driver) -> None:
    d.advance(hours=14)  # 23:00 in the practice's time zone: quiet hours
    propose(d, assign="first-steps,setting-a-limit")
    assert d.texts() == [] and d.state.proposal is not None
    d.command("contract")
    assert "Exercises: First steps" in d.plain()
    d.press("Agree")
    assert d.state.contract.scripts == ["first-steps", "setting-a-limit"]


def test_contract_shows_the_agreement_and_its_history(d: Driver) -> None:
    d.command("contract")
    assert "Your therapist has proposed no changes so far" in d.plain()
    assert not d.labels() or "Agree" not in d.labels()
    propose(d, max_level="4")
    d.press("Agree")
    at = d.now
    d.state.contract_history = history([
        LedgerRow(1, "test:ada", at, PROPOSED, {"number": 1, "by": THERAPIST,
                                                "change": {"max_level": 4}}),
        LedgerRow(2, "test:ada", at, ANSWERED, {"number": 1, "answer": "agreed"})])
    d.command("contract")
    text = d.plain()
    assert "up to level 4 of 5" in text
    assert f"{d.local_time(at)}: your therapist proposed Exercises may go up to level 4" in text
    assert "You agreed." in text


def test_settings_show_the_current_agreement(d: Driver) -> None:
    d.command("settings")
    assert "Your agreement with your therapist" in d.plain()
    assert "up to level 3 of 5" in d.plain() and "/contract shows how it came about" in d.plain()
    propose(d, max_level="4")
    d.command("settings")
    assert "Your therapist has proposed a change: /contract shows it." in d.plain()


def test_history_reads_each_proposal_and_what_became_of_it() -> None:
    def row(seq: int, kind: str, **data: object) -> LedgerRow:
        return LedgerRow(seq, "c", T0 + timedelta(days=seq), kind, data)

    rows = [row(1, PROPOSED, number=1, by="tg:1", change={"max_level": 4}),
            row(2, "consent", opt="core"),
            row(3, PROPOSED, number=2, by="tg:1", change={"session_minutes": 20}),
            row(4, ANSWERED, number=2, answer="talk_first"),
            row(5, PROPOSED, number=3, by="tg:1", change={"max_level": 9}),  # no longer valid
            row(6, PROPOSED, number=4, by="tg:1", change={"sessions_per_day": 2}),
            row(7, ANSWERED, number=4, answer="agreed")]
    found = history(rows)
    assert [(a.number, a.status) for a in found] == [(1, "replaced"), (2, "talk_first"),
                                                     (4, "agreed")]
    assert found[2].answered_at == T0 + timedelta(days=7)
    assert found[0].change == ContractChange(max_level=4)


@pytest.mark.parametrize(("written", "error"), [
    ({}, "no term given"),
    ({"colour": "blue"}, "unknown term 'colour'"),
    ({"max_level": "6"}, "max_level: Input should be less than or equal to 5"),
    ({"max_level": "four"}, "max_level: Input should be a valid integer"),
    ({"assign": "no-such-script"}, "no script 'no-such-script'"),
    ({"assign": "none"}, "assign needs at least one script"),
    ({"off_limits": "Family Stuff"}, "off_limits.0: String should match pattern"),
    ({"session_minutes": "90"}, "session_minutes: Input should be less than or equal to 60"),
])
def test_a_written_change_is_checked(loaded: Loaded, written: dict[str, str],
                                     error: str) -> None:
    with pytest.raises(ValueError, match=error):
        change_from(written, scripts=loaded.scripts)


def test_off_limits_none_clears_the_list(loaded: Loaded) -> None:
    assert change_from({"off_limits": "none"}, scripts=()) == ContractChange(off_limits=[])
