"""Consent: before the first exercise, separate versioned opt-ins, withdrawal, free text.

Real engine, real texts; a small tmp script where a script must require an opt-in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.config import load_config
from bot.engine import ConsentQuestion, DeleteQuestion, Effect, MenuQuestion, Opt
from tests.support.engine_driver import (
    Driver,
    engine_for_files,
    engine_with,
    script_beside_library,
)

OPT_INS = (Opt.STORE_FREE_TEXT, Opt.SHARE_WITH_THERAPIST, Opt.REMINDERS, Opt.ALERT_THERAPIST)
OPT_TEXTS = ("consent.free_text", "consent.share", "consent.reminders", "consent.alert")


#: The consent text's version the shipped configuration has.
VERSION = load_config(None, {}).consent.version


def _intro(d: Driver) -> str:
    policy = d.engine.resources.policy
    return d.render("consent.intro", retention_days=policy.retention_days,
                    answers_days=policy.answers_days, therapist_delay=policy.therapist_delay,
                    crisis_hold_hours=policy.crisis_hold_hours)


def _consent_rows(d: Driver) -> list[dict[str, object]]:
    return [e.data for e in d.all_ledger() if e.kind == "consent"]


def test_consent_comes_before_anything_else(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.start()
    assert d.texts() == [_intro(d)]
    assert d.labels() == [d.label("agree"), d.label("decline")]
    assert d.state.pending == ConsentQuestion() and d.state.session is None
    for act in ("hello", "1", "first-steps"):
        d.text(act)
        assert d.state.session is None and d.state.pending == ConsentQuestion()
    d.press_data("99:m0")  # a forged menu press gets nowhere
    assert d.state.session is None and d.said("unexpected.stale_button")
    d.command("skip")
    assert d.state.session is None


def test_opt_ins_are_separate_and_none_is_preselected(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    version = d.engine.resources.policy.consent_version
    d.start()
    d.press(d.label("agree"))
    assert d.texts() == [d.render("consent.adult")]
    assert not d.state.consents  # nothing holds before the age is confirmed
    d.press(d.label("yes"))
    for opt, key in zip(OPT_INS, OPT_TEXTS, strict=True):
        minutes = int(d.engine.resources.policy.alert_min.total_seconds() // 60)
        assert d.texts()[-1] == d.render(key, alert_minutes=minutes)
        assert d.labels() == [d.label("opt_in"), d.label("opt_out")]
        assert not any("✓" in label for label in d.labels())
        assert not d.state.has(opt, version)  # asked, never assumed
        d.press(d.label("opt_out"))
    assert d.state.consents == {Opt.CORE.value: version}
    assert d.texts()[0] == d.render("consent.done", opt_ins=[])
    assert d.state.pending == MenuQuestion()
    assert _consent_rows(d) == [
        {"opt": "core", "given": True, "version": version},
        {"opt": "store_free_text", "given": False, "version": version},
        {"opt": "share_with_therapist", "given": False, "version": version},
        {"opt": "reminders", "given": False, "version": version},
        {"opt": "alert_therapist", "given": False, "version": version},
    ]
    assert [e.data for e in d.all_ledger() if e.kind == "age_confirmed"] == [{"adult": True}]


@pytest.mark.parametrize("chosen", [(True, False, False, False), (False, True, False, False),
                                    (False, False, False, True), (True, True, True, True)])
def test_each_opt_in_is_recorded_with_its_version(
        loaded: Loaded, chosen: tuple[bool, bool, bool, bool]) -> None:
    engine = engine_with(loaded.engine, consent_version=7)
    d = Driver.new(engine)
    free_text, share, reminders, alert = chosen
    d.consent(free_text=free_text, share=share, reminders=reminders, alert=alert)
    for opt, wanted in zip(OPT_INS, chosen, strict=True):
        assert d.state.has(opt, 7) == wanted
    rows = _consent_rows(d)
    assert rows and all(r["version"] == 7 for r in rows)
    assert [r["given"] for r in rows] == [True, *chosen]


def test_start_cannot_skip_the_age_question(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.start()
    d.press(d.label("agree"))
    d.start()  # trying to get past "are you 18 or older?"
    assert d.state.pending == ConsentQuestion() and d.texts() == [_intro(d)]
    assert not d.state.has(Opt.CORE, VERSION)
    d.command("settings")  # and no opt-ins before the terms are agreed to
    assert d.state.pending == ConsentQuestion() and not d.state.consents


def test_declining(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.start()
    d.press(d.label("decline"))
    assert d.texts() == [d.render("consent.declined")]
    assert d.state.consent_declined and not d.state.consents
    assert _consent_rows(d) == [{"opt": "core", "given": False, "version": VERSION}]
    d.start()  # asked again, from the start, only when the client comes back
    assert d.texts() == [_intro(d)]
    assert d.state.session is None


def test_under_18_is_refused(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.start()
    d.press(d.label("agree"))
    d.press(d.label("no"))
    assert d.texts() == [d.render("consent.minor_refused")]
    assert not d.state.consents and d.state.adult is False
    assert _consent_rows(d)[-1] == {"opt": "core", "given": False, "version": VERSION,
                                    "reason": "minor"}
    d.text("please")
    assert d.state.session is None and d.state.pending != MenuQuestion()
    allowed = Driver.new(engine_with(loaded.engine, allow_minors=True))
    allowed.start()
    allowed.press(allowed.label("agree"))
    allowed.press(allowed.label("no"))
    assert allowed.texts() == [allowed.render("consent.guardian_needed")]
    assert not allowed.state.consents


def test_a_changed_consent_text_asks_again_before_the_next_exercise(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(free_text=True)
    d.pick("first-steps")
    d.walk_to_end()
    d.engine = engine_with(loaded.engine, consent_version=VERSION + 1)
    d.start()
    assert d.texts() == [d.render("consent.changed"), _intro(d)]
    assert d.state.session is None
    assert not d.state.has(Opt.STORE_FREE_TEXT, VERSION + 1)  # old opt-ins do not carry over
    d.press(d.label("agree"))
    # an adult already: straight to the opt-ins, each asked again
    assert d.texts() == [d.render("consent.free_text")]
    for _ in OPT_INS:
        d.press(d.label("opt_out"))
    assert d.state.consents == {"core": VERSION + 1}
    assert all(r["version"] == VERSION + 1 for r in _consent_rows(d)[-4:])


def test_a_changed_consent_text_while_the_menu_shows(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.engine = engine_with(loaded.engine, consent_version=VERSION + 1)
    d.press("m0")
    assert d.state.session is None
    assert d.texts() == [d.render("consent.changed"), _intro(d)]


_NEEDS_TEXT = """\
script:
  id: keeps-text
  title: Keeps what you type
  version: 1
  author: Tests
  level: 1
  summary: Needs the free-text opt-in.
  consent: [core, store_free_text]
  calm: [paced-breathing]
includes: [library.yaml]
steps:
  - id: check
    checkin: {moment: before}
  - id: note
    ask:
      text: Write a word.
      free_text: {save_as: word}
  - id: done
    end: Done.
"""


def test_a_script_needing_free_text_is_refused_without_the_opt_in(tmp_path: Path) -> None:
    path = script_beside_library(tmp_path, "keeps.yaml", _NEEDS_TEXT)
    engine = engine_for_files([path])
    d = Driver.new(engine)
    d.consent()
    d.pick("keeps-text")
    assert d.texts() == [d.render("menu.needs_consent", missing=["store_free_text"])]
    assert d.state.session is None
    ok = Driver.new(engine)
    ok.consent(free_text=True)
    ok.pick("keeps-text")
    assert ok.state.session is not None
    ok.at("note")
    ok.text("marigold")
    assert [a.text for a in ok.last.answers] == ["marigold"]


def test_withdrawal_from_the_stop_confirmation(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(free_text=True, share=True, reminders=True, alert=True)
    d.pick("first-steps")
    d.command("stop")
    d.press(d.label("withdraw"))
    assert d.texts() == [d.render("stop.withdraw"), d.render("delete.confirm")]
    assert d.state.consents == {}
    withdrawn = [r for r in d.ledger() if r.kind == "consent"]
    assert {r.data["opt"] for r in withdrawn} == {"core", "store_free_text",
                                                  "share_with_therapist", "reminders",
                                                  "alert_therapist"}
    assert all(r.data["given"] is False and r.data["reason"] == "withdrawn" for r in withdrawn)
    assert d.state.pending == DeleteQuestion()
    d.press(d.label("delete_confirm"))
    assert Effect.ERASE in d.last.effects and d.kinds() == ["erase_requested"]


def test_only_this_exercise_keeps_reminders(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(reminders=True)
    d.pick("first-steps")
    d.command("stop")
    d.press(d.label("only_this"))
    assert d.texts() == [d.render("stop.only_this")]
    assert not d.state.halted and d.state.has(Opt.REMINDERS, VERSION)
    assert any(t.kind == "reminder" for t in d.last.timers_set)
    assert [e.data for e in d.ledger() if e.kind == "stop_undone"] == [{"keep": "reminders"}]


# -- free text is kept only with the opt-in ------------------------------------------------------

MARK = "zebra-quartz-1234"


def _type_everywhere(d: Driver, script_id: str) -> None:
    """Walk a script typing MARK at every place that takes free text."""
    d.pick(script_id)
    for _ in range(200):
        if d.state.session is None:
            return
        script = d.engine.resources.scripts[script_id]
        step = script.steps[d.step or ""]
        takes_text = (d.part in ("prompt", "turn", "connection")
                      or (d.part == "ask" and step.ask is not None
                          and step.ask.free_text is not None and not step.ask.free_text.number)
                      or (d.part == "page" and d.codes() == ["sk"]))
        if takes_text:
            d.text(f"{MARK} {d.step}")
        else:
            d.answer_current()
    raise AssertionError("did not finish")


FREE_TEXT_SCRIPTS = ("story-of-connection", "noticing-the-body", "first-steps",
                     "telling-a-friend")


@pytest.mark.parametrize("script_id", FREE_TEXT_SCRIPTS)
def test_free_text_is_never_kept_without_the_opt_in(loaded: Loaded, script_id: str) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    _type_everywhere(d, script_id)
    typed = [e for out in d.history for e in out.answers]
    assert typed == []
    for out in d.history:
        assert MARK not in out.state.model_dump_json()
        assert MARK not in json.dumps([e.data for e in out.ledger])
    assert d.state.progress.last_connection is None


@pytest.mark.parametrize("script_id", FREE_TEXT_SCRIPTS)
def test_free_text_is_kept_with_the_opt_in(loaded: Loaded, script_id: str) -> None:
    d = Driver.new(loaded.engine)
    d.consent(free_text=True)
    _type_everywhere(d, script_id)
    answers = [a for out in d.history for a in out.answers]
    assert answers and all(a.text.startswith(MARK) for a in answers)
    assert {a.step for a in answers} == {a.text.split()[1] for a in answers}
    for out in d.history:  # never in the ledger, opt-in or not
        assert MARK not in json.dumps([e.data for e in out.ledger])


def test_free_text_in_variables_and_connection_log(loaded: Loaded) -> None:
    kept = Driver.new(loaded.engine)
    kept.consent(free_text=True)
    kept.pick("story-of-connection")
    kept.at("note-it")
    kept.text(MARK)
    assert kept.state.progress.last_connection == MARK
    kept.at("chapter-title")
    kept.text(f"{MARK} chapter")
    session = kept.state.session
    assert session is not None and session.vars["chapter"] == f"{MARK} chapter"
    assert MARK in kept.texts()[0]  # and the script can show it back

    dropped = Driver.new(loaded.engine)
    dropped.consent()
    dropped.pick("story-of-connection")
    dropped.at("note-it")
    dropped.text(MARK)
    assert dropped.state.progress.connections == 1
    assert dropped.state.progress.last_connection is None
    dropped.at("chapter-title")
    dropped.text(f"{MARK} chapter")
    session = dropped.state.session
    assert session is not None and session.vars["chapter"] == ""
    assert MARK not in dropped.plain()


def test_the_connection_note_is_never_part_of_the_stored_state(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent(free_text=True)
    d.pick("story-of-connection")
    d.at("note-it")
    d.text(MARK)
    [answer] = d.last.answers
    assert (answer.text, answer.kind) == (MARK, "connection")
    assert d.state.progress.last_connection == MARK  # for this event's texts only
    assert MARK not in d.state.model_dump_json()  # what the store gets


@pytest.mark.parametrize("choice", ["delete_answers", "keep_answers"])
def test_switching_keeping_off_asks_what_to_do_with_what_was_kept(
        loaded: Loaded, choice: str) -> None:
    d = Driver.new(loaded.engine)
    d.consent(free_text=True)
    d.pick("story-of-connection")
    d.at("chapter-title")
    d.text(f"{MARK} chapter")
    session = d.state.session
    assert session is not None and session.vars["chapter"] == f"{MARK} chapter"
    d.command("settings")
    d.press(d.label("change_free_text"))
    assert d.said("settings.kept_answers")
    assert d.labels() == [d.label("delete_answers"), d.label("keep_answers")]
    assert Opt.STORE_FREE_TEXT.value not in d.state.consents
    d.press(d.label(choice))
    deleted = choice == "delete_answers"
    assert (Effect.DROP_ANSWERS in d.last.effects) is deleted
    assert [e.data for e in d.last.ledger] == [{"choice": "delete" if deleted else "keep"}]
    days = loaded.engine.resources.policy.answers_days
    assert d.said("settings.answers_deleted") if deleted else d.said("settings.answers_kept",
                                                                    answers_days=days)
    assert "Keep what you type: no" in d.texts()[-1]  # and the settings again
    session = d.state.session
    assert session is not None
    assert session.vars["chapter"] == ("" if deleted else f"{MARK} chapter")
