"""The step runner: each step kind does what the script says, with the real texts.

Say, ask (buttons, variables, branches, free text with validation), check-ins before and
after (expected vs. actual, relief, body cues), exercises, role-play (frame, hints, examples,
check-ins every N turns and after hostile lines, stepping out, debrief), graded prompts (no
repeats, off-limit topics), the connection log, the end, /progress, and scripts edited under a
running session.
"""

from __future__ import annotations

from pathlib import Path

from bot.app import Loaded
from bot.script import load_script
from tests.support.engine_driver import (
    Driver,
    engine_for_files,
    engine_with,
    script_beside_library,
)

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "scripts" / "library.yaml"


def _client(loaded: Loaded, script_id: str, **consent: bool) -> Driver:
    d = Driver.new(loaded.engine)
    d.consent(**consent)  # type: ignore[arg-type]
    d.pick(script_id)
    return d


def test_say_steps_go_on_or_pause(loaded: Loaded) -> None:
    d = _client(loaded, "first-steps")
    assert d.step == "welcome"
    assert d.labels() == [d.label("go_on"), d.label("pause")]
    assert "Hi Ada." in d.texts()[-1]  # the client's name, from the edge, never stored
    assert "Ada" not in d.state.model_dump_json()
    assert [e.kind for e in d.last.ledger] == ["session_started"]
    d.press("go")
    assert d.step == "how-it-works"


def test_ask_saves_the_choice_and_branches(loaded: Loaded) -> None:
    d = _client(loaded, "setting-a-limit")
    d.at("choose-version")
    d.press(d.button("Gentle version").data.partition(":")[2])
    assert d.step == "scene-gentle"
    assert d.rows("answer")[-1] == {"step": "choose-version", "choice": "Gentle version"}
    d.at("how-was-it")
    d.press("c3")  # "I felt fairly steady", value "steady": the branch takes `steady`
    session = d.state.session
    assert session is not None and session.vars["pull"] == "steady"
    assert d.step == "steady"
    other = _client(loaded, "setting-a-limit")
    other.at("how-was-it")
    other.press("c0")
    assert other.step == "pulls-make-sense"


def test_a_choice_can_set_variables(loaded: Loaded) -> None:
    d = _client(loaded, "story-of-connection", free_text=True)
    d.at("chapter-title")
    d.press(d.button("Skip this one").data.partition(":")[2])
    session = d.state.session
    assert session is not None and session.vars["chapter"] == ""
    assert d.step == "garden" and "“" not in d.texts()[-1].split(":")[0]


_NUMBER = """\
script: {id: numbers, title: Numbers, version: 1, author: Tests, level: 1,
         summary: A number question., calm: [paced-breathing]}
includes: [library.yaml]
steps:
  - id: check
    checkin: {moment: before}
  - id: how-many
    ask:
      text: How many people did you talk to today?
      free_text: {number: true, min: 0, max: 20, save_as: people}
  - id: echo
    say: "You talked to {{ people }} people."
  - id: done
    end: Done.
"""


def test_free_text_number_is_validated(tmp_path: Path) -> None:
    path = script_beside_library(tmp_path, "numbers.yaml", _NUMBER)
    d = Driver.new(engine_for_files([path]))
    d.consent()
    d.pick("numbers")
    d.at("how-many")
    for bad in ("21", "-1", "two", "2.5"):
        d.text(bad)
        assert d.texts() == [d.render("unexpected.out_of_range", low=0, high=20),
                             d.texts()[1]]
        assert d.step == "how-many"
    d.text("4")
    assert d.step == "echo" and d.texts()[-1].startswith("You talked to 4 people.")
    assert d.rows("answer")[-1] == {"step": "how-many", "free_text": True}


def test_checkin_before_and_after(loaded: Loaded) -> None:
    d = _client(loaded, "first-steps")
    d.at("checkin-before", "rating")
    assert d.texts()[-1] == d.render("checkin.question")
    assert [b.label for b in d.keyboard] == [str(i) for i in range(11)]
    d.press("r3")
    assert d.texts() == [d.render("checkin.expected")] and d.part == "expected"
    d.text("6")
    assert d.said("checkin.thanks") and d.step == "prompt-1"
    d.at("after-prompt-1")
    d.press("c1")
    d.at("checkin-after", "rating")
    d.text("2")
    assert d.texts() == [d.render("checkin.actual")]
    d.text("4")
    assert d.texts() == [d.render("checkin.relief")]
    assert d.labels() == [d.label("relief_yes"), d.label("relief_little"), d.label("relief_no")]
    d.press("l1")
    assert d.state.session is None and d.said("exercise.done", title="First steps in sharing")
    assert d.rows("checkin") == [
        {"step": "checkin-before", "distress": 3, "moment": "before", "round": 0},
        {"step": "checkin-after", "distress": 2, "moment": "after", "round": 0}]
    assert d.rows("checkin_expected") == [{"step": "checkin-before", "expected": 6}]
    assert d.rows("checkin_actual") == [{"step": "checkin-after", "actual": 4}]
    assert d.rows("relief") == [{"step": "checkin-after", "relief": "a-little"}]
    ended = d.rows("session_ended")[-1]
    assert ended == {"script": "first-steps", "completed": True, "reason": "end", "level": 1,
                     "distress_before": 3, "distress_after": 2, "expected": 6, "actual": 4}
    assert d.state.progress.exercises_done == 1
    assert d.state.progress.completed_at_level == {"1": 1}


def test_body_cues_are_ticked_in_place(loaded: Loaded) -> None:
    d = _client(loaded, "noticing-the-body")
    d.at("checkin-before", "cues")
    assert d.texts() == [d.render("checkin.body_cues")]
    assert len(d.codes()) == 9 and d.codes()[-1] == "kd"
    d.press("kracing_heart")
    assert d.messages[0].replace_keyboard
    assert f"✓ {d.label('cue_racing_heart')}" in d.labels()
    d.press("ktense_jaw")
    d.press("kracing_heart")  # untick
    assert f"✓ {d.label('cue_racing_heart')}" not in d.labels()
    assert f"✓ {d.label('cue_tense_jaw')}" in d.labels()
    d.press("kd")
    assert d.texts()[0] == d.render("checkin.body_info", cues=[d.label("cue_tense_jaw")],
                                    under=False)
    assert d.rows("body_cues") == [{"step": "checkin-before", "cues": ["tense_jaw"]}]
    assert d.step == "cues-are-information"


def test_exercise_pages(loaded: Loaded) -> None:
    d = _client(loaded, "noticing-the-body")
    d.at("breathe", "page")
    pages = loaded.scripts["noticing-the-body"].exercises["paced-breathing"].pages
    for page in pages[:-1]:
        assert page.button is not None and d.labels() == [page.button]
        d.press("go")
    assert d.labels() == [d.label("go_on")]  # the last page has no button of its own
    d.press("go")
    assert d.rows("exercise_done") == [{"exercise": "paced-breathing", "calming": False}]
    assert d.step == "what-did-you-learn"


def test_journaling_pages_take_text_or_skip(loaded: Loaded) -> None:
    d = _client(loaded, "story-of-connection")
    d.at("story", "page")
    d.press("go")
    assert d.codes() == ["sk"]
    d.text("I asked a question")
    assert d.state.session is not None and d.state.session.frame.page == 2
    d.press("sk")
    assert d.state.session is not None and d.state.session.frame.page == 3


def test_roleplay_frame_hint_example_and_checkins(loaded: Loaded) -> None:
    d = _client(loaded, "telling-a-friend")
    d.at("checkin-before", "expected")
    d.text("3")
    play = loaded.scripts["telling-a-friend"].steps["scene"].roleplay
    assert play is not None
    scene = loaded.renderer.text(play.scene, {"character": "Robin"})
    assert d.said("roleplay.frame", character="Robin", scene=scene)
    assert "roleplay_started" in d.kinds()
    assert d.codes() == ["st", "pa"]  # at a gentle pace the scene waits for "Start"
    d.press("st")
    assert d.codes() == ["sd", "hi", "ex", "sm", "sk", "pa"]
    d.press("hi")
    assert play.turns[0].hint is not None
    assert d.texts()[0] == d.render("roleplay.hint",
                                    hint=loaded.renderer.text(play.turns[0].hint, {}))
    d.press("ex")
    assert play.turns[0].example is not None
    assert d.texts()[0] == d.render("roleplay.example",
                                    example=loaded.renderer.text(play.turns[0].example, {}))
    assert [r["help"] for r in d.rows("roleplay_help")] == ["hint", "example"]
    d.text("Honestly, a bit up and down.")
    assert d.part == "turn" and d.state.session is not None
    assert d.state.session.frame.turn == 1
    d.press("sd")  # two turns answered: a check-in (checkin_every: 2)
    assert d.part == "rating"
    d.text("2")
    assert d.part == "turn"
    d.press("sd")  # the last turn: step out of the role, then the closing check-in
    assert d.texts()[0] == d.render("roleplay.step_out", character="Robin")
    assert d.part == "rating"
    d.text("2")
    assert play.debrief is not None
    assert str(loaded.renderer.text(play.debrief, {})).strip() in d.texts()
    assert d.step == "relief"
    assert [r["response"] for r in d.rows("roleplay_turn")] == ["text", "said-it", "said-it"]


def test_a_hostile_line_is_followed_by_a_checkin(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.state.level = 2
    d.consent()
    d.pick("setting-a-limit")
    d.at("choose-version")
    d.press("c0")  # the full scene, with the hostile line third
    d.at("scene-full", "turn")
    d.press("sd")
    d.press("sd")
    assert d.part == "rating"  # checkin_every: 2
    d.text("1")
    turn = d.state.session.frame.turn if d.state.session else None
    play = loaded.scripts["setting-a-limit"].steps["scene-full"].roleplay
    assert play is not None and turn is not None and play.turns[turn].hostile
    d.press("sd")  # right after the hostile line: a check-in, whatever the count
    assert d.part == "rating"


def test_roleplay_turns_are_capped_by_the_contract(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.state.contract.roleplay_turns = 1
    d.consent()
    d.pick("telling-a-friend")
    d.at("scene", "turn")
    d.press("sd")
    assert d.texts()[0] == d.render("roleplay.step_out", character="Robin")
    assert d.part == "rating"
    assert len(d.rows("roleplay_turn")) == 1


def test_prompts_are_not_repeated(loaded: Loaded) -> None:
    d = _client(loaded, "first-steps")
    d.walk_to_end()
    shown = [r["prompt"] for r in d.rows("prompt")]
    assert len(shown) == 3 and len(set(shown)) == 3
    assert d.state.progress.used_prompts == shown
    d.pick("first-steps")
    d.walk_to_end()
    again = [r["prompt"] for r in d.rows("prompt")][3:]
    level_1 = {p.id for p in loaded.scripts["first-steps"].prompts.values() if p.level == 1}
    assert set(again[:2]) == level_1 - set(shown)  # fresh ones first, then old ones again
    assert again[2] in shown


def test_off_limit_topics_are_never_drawn(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.state.contract.off_limit_topics = ["likes", "daily-life", "feelings", "people"]
    d.consent()
    d.pick("first-steps")
    d.walk_to_end()
    script = loaded.scripts["first-steps"]
    assert {script.prompts[str(r["prompt"])].topic for r in d.rows("prompt")} == {"needs"}
    blocked = Driver.new(loaded.engine)
    blocked.state.contract.off_limit_topics = sorted({p.topic for p in script.prompts.values()})
    blocked.consent()
    blocked.pick("first-steps")
    blocked.at("checkin-before", "rating")
    blocked.text("1")
    blocked.text("1")
    assert blocked.said("prompt.none_left") and blocked.step == "after-prompt-1"
    assert not blocked.rows("prompt")


def test_prompt_intro_then_text_and_answers(loaded: Loaded) -> None:
    d = _client(loaded, "first-steps")
    d.at("prompt-1", "prompt")
    assert d.texts()[-2] == "Here's a first one."
    assert d.codes() == ["sh", "sm", "sk", "pa"]
    d.text("A long walk on Sunday")
    assert d.rows("prompt")[-1]["response"] == "text"
    assert d.said("prompt.ack")
    assert d.state.progress.prompts_shared == 1


def test_connection_log(loaded: Loaded) -> None:
    d = _client(loaded, "story-of-connection")
    d.at("note-it", "connection")
    assert d.codes() == ["sk", "pa"]
    d.text("coffee with Sam")
    assert d.state.progress.connections == 1
    assert d.rows("connection_noted") == [{"step": "note-it"}]
    d.walk_to_end()
    d.pick("story-of-connection")
    d.at("checkin-before", "expected")
    d.text("2")
    assert d.step == "remember"  # the branch sees the count
    assert "1 moment of" in d.texts()[-1]


def test_progress_celebrates_without_failure_counts(loaded: Loaded) -> None:
    d = _client(loaded, "first-steps")
    d.at("prompt-1")
    d.command("smaller")
    d.press("sh")
    d.press("c1")
    d.walk_to_end()
    d.command("progress")
    text = d.texts()[0]
    assert text == d.render("progress", exercises_done=1, smaller_steps=1, connections=0,
                            level=1, max_level=3, prompts_shared=1, held=False,
                            held_until="", support_only=False)
    for word in ("fail", "missed", "skipped", "streak", "only"):
        assert word not in text.lower()
    fresh = Driver.new(loaded.engine)
    fresh.consent()
    fresh.command("progress")
    assert fresh.texts()[0] == fresh.render("progress", exercises_done=0, smaller_steps=0,
                                            connections=0, level=1, max_level=3,
                                            prompts_shared=0, held=False, held_until="",
                                            support_only=False)


def test_a_script_edited_under_a_running_session(loaded: Loaded, tmp_path: Path) -> None:
    source = (ROOT / "scripts" / "first-steps.yaml").read_text(encoding="utf-8")
    edited = tmp_path / "first-steps.yaml"
    (tmp_path / "library.yaml").write_text(LIBRARY.read_text(encoding="utf-8"),
                                           encoding="utf-8")
    version = load_script(ROOT / "scripts" / "first-steps.yaml").meta.version

    def at_version(text: str, number: int) -> str:
        return text.replace(f"  version: {version}\n", f"  version: {number}\n", 1)

    edited.write_text(at_version(source, version + 1), encoding="utf-8")
    newer = load_script(edited)
    d = _client(loaded, "first-steps")
    d.at("how-it-works")
    d.engine = engine_with(loaded.engine, scripts={**loaded.scripts, "first-steps": newer})
    d.press("go")
    assert d.kinds()[0] == "script_updated" and d.step == "privacy-is-a-choice"
    gone = source.replace("  - id: privacy-is-a-choice\n", "  - id: privacy-renamed\n", 1)
    edited.write_text(at_version(gone, version + 2), encoding="utf-8")
    d.engine = engine_with(loaded.engine,
                           scripts={**loaded.scripts, "first-steps": load_script(edited)})
    d.press("go")
    assert d.texts() == [d.render("session.closed")]
    assert d.state.session is None
    assert d.rows("session_ended")[-1]["reason"] == "script-changed"
